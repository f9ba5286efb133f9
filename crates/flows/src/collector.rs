//! The collector: ctnetlink events and periodic dumps of the current network namespace's
//! conntrack table, fed through the [`Tracker`](crate::tracker::Tracker).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use slicelab_model::time::now;
use tracing::{debug, warn};

use crate::error::{FlowError, IoContext};
use crate::nl::{self, EventKind, Message};
use crate::socket::{NlSocket, Recv};
use crate::tracker::{Resolver, Tracker, TrackerConfig};
use crate::FlowRecord;

/// How the collector runs. `Default` is what a node should use.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// Every this often the table is dumped and long flows get a `done: false` record (with
    /// cumulative counters) if they are at least this old and moved since their last record.
    pub update_interval: Duration,
    /// Receive buffer of the event socket. Big, so that a burst of short flows is queued rather
    /// than dropped while we are busy (destroy events are redelivered anyway, see
    /// `reliable_destroy`).
    pub rcvbuf_bytes: usize,
    /// Write `nf_conntrack_acct=1`, `nf_conntrack_timestamp=1` (and turn events back on if they
    /// are off) in this network namespace. Both only apply to entries created afterwards, so
    /// they are set before the first flow of a sliver.
    pub configure_sysctls: bool,
    /// Ask for reliable destroy events (NETLINK_BROADCAST_ERROR): the kernel keeps a dead entry
    /// and re-sends its destroy event until it fits in our buffer.
    pub reliable_destroy: bool,
    /// A tracked flow missing from two dumps over at least this long is closed with its last
    /// known counters (its destroy event was lost).
    pub gc_grace: Duration,
    /// `next_batch` returns early once it holds this many records.
    pub max_batch: usize,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        CollectorOptions {
            update_interval: Duration::from_secs(30),
            rcvbuf_bytes: 32 << 20,
            configure_sysctls: true,
            reliable_destroy: true,
            gc_grace: Duration::from_secs(120),
            max_batch: 10_000,
        }
    }
}

/// Counters for `/metrics` and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectorStats {
    pub events: u64,
    pub dumps: u64,
    pub records: u64,
    /// Times the kernel said our event buffer overflowed (each followed by a resync dump).
    pub overruns: u64,
    pub parse_errors: u64,
    pub skipped_datagrams: u64,
    pub closed_without_destroy: u64,
    /// Flows of ours being tracked now.
    pub live_flows: u64,
    /// The receive buffer the kernel granted.
    pub rcvbuf_bytes: u64,
}

pub struct Collector {
    events: NlSocket,
    dump: NlSocket,
    tracker: Tracker,
    resolve: Box<Resolver>,
    opts: CollectorOptions,
    next_dump: Instant,
    need_resync: bool,
    dump_seq: u32,
    buf: Vec<u8>,
    /// Records produced outside `next_batch` (by `open`), handed out by the next call.
    carry: Vec<FlowRecord>,
    stats: CollectorStats,
}

/// The conntrack sysctls of the calling thread's network namespace.
const SYSCTL_DIR: &str = "/proc/sys/net/netfilter";

fn sysctl_set(name: &str, want: &str, only_if: impl Fn(&str) -> bool) -> Result<(), FlowError> {
    let path = PathBuf::from(SYSCTL_DIR).join(name);
    let cur = std::fs::read_to_string(&path).map_err(|source| FlowError::Sysctl {
        path: path.clone(),
        source,
    })?;
    if only_if(cur.trim()) {
        std::fs::write(&path, want).map_err(|source| FlowError::Sysctl { path, source })?;
    }
    Ok(())
}

impl Collector {
    /// Starts auditing the conntrack table of the calling thread's network namespace (the node
    /// manager's, where sliver traffic is NATed). `resolve` maps a sliver address to its slice.
    ///
    /// Order matters: sysctls first (they apply to new entries only), then the event
    /// subscription, then a dump, so that no flow falls between what the dump shows and what the
    /// events tell.
    pub fn open(
        opts: CollectorOptions,
        resolve: impl Fn(IpAddr) -> Option<String> + Send + Sync + 'static,
    ) -> Result<Collector, FlowError> {
        if opts.configure_sysctls {
            sysctl_set("nf_conntrack_acct", "1", |c| c != "1")?;
            sysctl_set("nf_conntrack_timestamp", "1", |c| c != "1")?;
            // 0 = no events at all; 1 and 2 ("when someone listens", the default) both do.
            sysctl_set("nf_conntrack_events", "2", |c| c == "0")?;
        }
        let groups = [nl::NFNLGRP_CONNTRACK_NEW, nl::NFNLGRP_CONNTRACK_DESTROY];
        let events = NlSocket::open(&groups).ctx(|| "opening the conntrack event socket".into())?;
        let granted = events
            .set_rcvbuf(opts.rcvbuf_bytes)
            .ctx(|| "sizing the conntrack event socket".into())?;
        if opts.reliable_destroy {
            events
                .set_broadcast_error()
                .ctx(|| "asking for reliable conntrack events".into())?;
        }
        let dump = NlSocket::open(&[]).ctx(|| "opening the conntrack dump socket".into())?;
        let update_after = opts.update_interval.as_secs().max(1) as i64;
        let tracker = Tracker::new(TrackerConfig {
            update_after,
            gc_grace: opts.gc_grace.as_secs() as i64,
            tombstone_ttl: (opts.gc_grace.as_secs() as i64).max(update_after) * 4,
        });
        let mut c = Collector {
            events,
            dump,
            tracker,
            resolve: Box::new(resolve),
            next_dump: Instant::now() + opts.update_interval,
            opts,
            need_resync: true,
            dump_seq: 0,
            // Dump datagrams are at most ~32 KiB, events far smaller.
            buf: vec![0; 256 << 10],
            carry: Vec::new(),
            stats: CollectorStats {
                rcvbuf_bytes: granted as u64,
                ..Default::default()
            },
        };
        // The initial dump learns flows that exist already; it reports nothing by itself.
        // (A first dump cannot close anything — that takes two — but keep whatever it gives.)
        c.carry = c.run_dump(false)?;
        c.need_resync = false;
        Ok(c)
    }

    pub fn stats(&self) -> CollectorStats {
        let mut s = self.stats.clone();
        s.closed_without_destroy = self.tracker.stats.closed_without_destroy;
        s.live_flows = self.tracker.live_flows() as u64;
        s
    }

    /// Collects records for up to `max_wait` (less if `max_batch` records are ready). Never
    /// blocks longer than `max_wait`, except for a dump that is due (milliseconds per thousand
    /// entries). An empty vector is normal.
    pub fn next_batch(&mut self, max_wait: Duration) -> Result<Vec<FlowRecord>, FlowError> {
        let deadline = Instant::now() + max_wait;
        let mut out = std::mem::take(&mut self.carry);
        loop {
            if self.need_resync {
                // Events were lost: learn the table again. Destroys were not lost with
                // `reliable_destroy`, they come again; the tracker's safety net covers the rest.
                out.extend(self.run_dump(false)?);
                self.need_resync = false;
            }
            if Instant::now() >= self.next_dump {
                out.extend(self.run_dump(true)?);
                self.next_dump = Instant::now() + self.opts.update_interval;
            }
            self.drain_events(&mut out, Duration::ZERO)?;
            let now = Instant::now();
            if out.len() >= self.opts.max_batch || now >= deadline {
                break;
            }
            // Sleep in poll until an event, the deadline or the next dump.
            let wake = deadline.min(self.next_dump);
            self.drain_events(&mut out, wake.saturating_duration_since(now))?;
        }
        self.stats.records += out.len() as u64;
        Ok(out)
    }

    /// Dumps the table now and reports long flows (as the periodic timer would). For tests and
    /// for a final report before shutdown.
    pub fn report_now(&mut self) -> Result<Vec<FlowRecord>, FlowError> {
        let mut out = std::mem::take(&mut self.carry);
        self.drain_events(&mut out, Duration::ZERO)?;
        out.extend(self.run_dump(true)?);
        self.drain_events(&mut out, Duration::ZERO)?;
        self.stats.records += out.len() as u64;
        Ok(out)
    }

    /// Reads whatever events are queued; waits up to `first_wait` for the first one.
    fn drain_events(
        &mut self,
        out: &mut Vec<FlowRecord>,
        first_wait: Duration,
    ) -> Result<(), FlowError> {
        let mut wait = first_wait;
        while out.len() < self.opts.max_batch {
            let got = self
                .events
                .recv(&mut self.buf, wait)
                .ctx(|| "reading conntrack events".into())?;
            wait = Duration::ZERO;
            match got {
                Recv::Empty => return Ok(()),
                Recv::Skipped => self.stats.skipped_datagrams += 1,
                Recv::Overrun => {
                    self.stats.overruns += 1;
                    warn!("conntrack event buffer overflowed; resynchronising with a dump");
                    self.need_resync = true;
                    return Ok(());
                }
                Recv::Data(n) => {
                    let now = now();
                    for m in nl::parse_datagram(&self.buf[..n]) {
                        match m {
                            Ok(Message::Conntrack(kind, ct)) => {
                                self.stats.events += 1;
                                if let Some(r) =
                                    self.tracker.observe(kind, *ct, now, &*self.resolve)
                                {
                                    out.push(r);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                self.stats.parse_errors += 1;
                                debug!("bad conntrack event: {e}");
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One full dump of the table through the tracker; `periodic` dumps report long flows.
    fn run_dump(&mut self, periodic: bool) -> Result<Vec<FlowRecord>, FlowError> {
        self.dump_seq = self.dump_seq.wrapping_add(1);
        let seq = self.dump_seq;
        // The rest of an earlier dump that failed midway may still be queued (the kernel goes on
        // as we read): read it away so it is not taken for this one.
        while let Ok(Recv::Data(_) | Recv::Skipped) = self.dump.recv(&mut self.buf, Duration::ZERO)
        {
        }
        self.dump
            .send(&nl::dump_request(seq))
            .ctx(|| "requesting a conntrack dump".into())?;
        self.tracker.begin_dump(periodic);
        self.stats.dumps += 1;
        let mut out = Vec::new();
        // A dump that stalls this long means something is badly wrong; give up and retry later.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.need_resync = true;
                return Err(FlowError::Timeout("conntrack dump"));
            }
            let got = self
                .dump
                .recv(&mut self.buf, left)
                .ctx(|| "reading a conntrack dump".into())?;
            let n = match got {
                Recv::Data(n) => n,
                Recv::Empty | Recv::Skipped => continue,
                // The dump socket has no subscriptions; an overrun would be a kernel surprise.
                Recv::Overrun => {
                    self.need_resync = true;
                    return Err(FlowError::Netlink {
                        context: "conntrack dump",
                        errno: libc::ENOBUFS,
                    });
                }
            };
            let now = now();
            let mut done = false;
            for m in nl::parse_datagram(&self.buf[..n]) {
                match m {
                    Ok(Message::Conntrack(EventKind::Dumped, ct)) => {
                        if let Some(r) =
                            self.tracker
                                .observe(EventKind::Dumped, *ct, now, &*self.resolve)
                        {
                            out.push(r);
                        }
                    }
                    Ok(Message::Done) => done = true,
                    Ok(Message::Error { errno, seq: s }) if errno != 0 && s == seq => {
                        return Err(FlowError::Netlink {
                            context: "conntrack dump",
                            errno,
                        });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        self.stats.parse_errors += 1;
                        debug!("bad conntrack dump entry: {e}");
                    }
                }
            }
            if done {
                break;
            }
        }
        out.extend(self.tracker.finish_dump(now()));
        Ok(out)
    }
}

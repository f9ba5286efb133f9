//! The accountant: usage samples of every sliver and of the node, their on-disk queue to central,
//! and bwmon (PlanetLab's daily egress cap, `net_max_kbyte`).
//!
//! Every sampling round ([`Accountant::tick`], about every 10 s) reads cumulative counters —
//! `cpuacct.usage` of the sliver's cgroup, memory in use, the writable layer's disk use, and the
//! host end of its veth (host rx = sliver tx) — and turns their growth since the last round into
//! one [`UsageSample`] per sliver plus one for the node (`/proc/stat`, memory, the state dir's
//! filesystem, the default-route interface). A counter that went *down* belongs to a new
//! incarnation (cgroup or veth recreated) and counts from zero.
//!
//! Crash safety and exactly-once: each round becomes a batch with the next `seq` in a spool
//! (`slicelab_spool`, directory `<state_dir>/usage`), written atomically *together with the
//! counters it ends at*, so a crash either keeps the batch and its new baseline or neither (never
//! counting a delta twice or losing it). Batches are sent oldest first and deleted once central
//! acknowledges their `seq`; while central is down they accumulate. Central stores a `seq` once,
//! so a resend (e.g. after a crash between its commit and our delete) is acknowledged and ignored.
//!
//! bwmon: tx bytes are summed per sliver per "day" (`day_s` seconds, default 86 400, days start
//! at multiples of it since the epoch, i.e. at UTC midnight). Past `net_max_kbyte` × 1024 bytes the
//! sliver is throttled to [`net::THROTTLE_RATE`] until the day rolls over; the throttle is kept in
//! the sliver's record (so restarts keep it) and shown in its status message.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use slicelab_client::{Client, ClientError};
use slicelab_model::time::now;
use slicelab_model::{UsageBatch, UsageSample};
use slicelab_spool::{write_atomic, Seq, Spool};
use tracing::warn;

use crate::disk;
use crate::error::{IoContext, NodeError};
use crate::host::MemInfo;
use crate::names;
use crate::net::{self, VethCounters};
use crate::runtime::LinuxRuntime;
use crate::state;

/// Default length of bwmon's accounting day.
pub const DAY_S: i64 = 86_400;

/// Central rejects samples older than this; a batch that old is dropped instead of blocking
/// the queue forever.
const MAX_AGE_S: i64 = slicelab_model::usage::ACCEPT_PAST - 3600;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SliverCounters {
    cpu_ns: u64,
    veth: Option<VethCounters>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct NodeCounters {
    /// Busy jiffies of all CPUs (`/proc/stat`).
    cpu_ticks: u64,
    /// Uplink interface name → its counters.
    uplink: Option<(String, VethCounters)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Bwmon {
    /// Index of the current accounting day (`time / day_s`).
    day: i64,
    /// Slice → bytes sent during that day.
    sent: BTreeMap<String, u64>,
}

/// Where the last round ended: the baseline of the next one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Counters {
    /// Unix seconds of the last round; 0 before the first.
    time: i64,
    node: NodeCounters,
    slivers: BTreeMap<String, SliverCounters>,
    bwmon: Bwmon,
}

/// A queued batch with the counters it ends at (see the module doc for why both).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Queued {
    batch: UsageBatch,
    counters: Counters,
}

/// `<state_dir>/usage/state.json`: the counters of the last round, and the batch they end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Saved {
    /// The batch `counters` belong to: the highest `seq` issued when written.
    seq: Seq,
    counters: Counters,
}

/// A change of a sliver's throttle made by one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleChange {
    pub slice: String,
    /// `Some(reason)`: throttled now; `None`: released.
    pub reason: Option<String>,
}

/// What one sampling round did.
#[derive(Debug, Clone, Default)]
pub struct Tick {
    pub seq: Seq,
    pub samples: Vec<UsageSample>,
    pub throttles: Vec<ThrottleChange>,
}

pub struct Accountant {
    queue: Spool,
    day_s: i64,
    /// Expected seconds between rounds (the first sample's interval).
    every_s: u32,
    saved: Saved,
}

impl Accountant {
    /// Opens (or creates) the queue under `<state_dir>/usage`, resuming from the newest of the
    /// saved state and the queued batches.
    pub fn open(state_dir: &Path, every_s: u32, day_s: i64) -> Result<Accountant, NodeError> {
        let mut queue = Spool::open(&state_dir.join("usage"))?;
        let mut saved: Saved = fs::read(queue.dir().join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        // A crash after writing a batch but before the state file: the batch is the truth.
        if let Some(seq) = queue.pending().last().copied() {
            if seq > saved.seq {
                if let Some(q) = read_queued(&queue, seq) {
                    saved = Saved {
                        seq,
                        counters: q.counters,
                    };
                }
            }
        }
        // The state file may know a higher `seq` than the queue (a queue written before it was a
        // spool, whose acknowledged batches left no trace): never reuse a number.
        queue.issue_after(saved.seq);
        Ok(Accountant {
            queue,
            day_s: day_s.max(1),
            every_s: every_s.clamp(1, 86_400),
            saved,
        })
    }

    /// Queued batches, oldest first.
    pub fn pending(&self) -> Vec<Seq> {
        self.queue.pending()
    }

    /// Highest `seq` issued so far.
    pub fn seq(&self) -> Seq {
        self.queue.last_issued()
    }

    /// One sampling round at `now` (Unix seconds): queues a batch and applies bwmon.
    pub fn tick(&mut self, rt: &LinuxRuntime, now: i64) -> Result<Tick, NodeError> {
        let state_dir = rt.config().state_dir.clone();
        let cg = rt.cgroups();
        let prev = &self.saved.counters;
        let interval = if prev.time > 0 && now > prev.time {
            (now - prev.time).min(86_400) as u32
        } else {
            self.every_s
        };
        let mut slices = state::list_slices(&state_dir)?;
        slices.extend(
            cg.list()
                .into_iter()
                .filter(|s| names::check_slice_name(s).is_ok()),
        );
        slices.sort();
        slices.dedup();

        let mut next = Counters {
            time: now,
            ..Default::default()
        };
        let day = now.div_euclid(self.day_s);
        next.bwmon.day = day;
        let mut samples = Vec::new();
        let spoofed = net::spoofed_packets(&rt.config().names);
        for s in &slices {
            let old = prev.slivers.get(s).cloned().unwrap_or_default();
            let cpu_ns = cg.cpu_usage_ns(s).unwrap_or(old.cpu_ns);
            // Lower than before: a new cgroup, whose whole count is new.
            let cpu_delta = if cpu_ns >= old.cpu_ns {
                cpu_ns - old.cpu_ns
            } else {
                cpu_ns
            };
            let veth = net::veth_counters(s).map(|v| VethCounters {
                spoofed_pkts: spoofed.get(&names::veth_name(s)).copied().unwrap_or(0),
                ..v
            });
            let d = veth_delta(old.veth.as_ref(), veth.as_ref());
            let dir = names::sliver_dir(&state_dir, s);
            let disk_bytes =
                disk::used(&dir).unwrap_or_else(|| disk::tree_bytes(&dir.join("upper")));
            samples.push(UsageSample {
                slice: Some(s.clone()),
                time: now,
                interval_s: interval,
                cpu_s: cpu_delta as f64 / 1e9,
                mem_bytes: cg.mem_usage(s).unwrap_or(0),
                disk_bytes,
                tx_bytes: d.tx_bytes,
                rx_bytes: d.rx_bytes,
                tx_pkts: d.tx_pkts,
                rx_pkts: d.rx_pkts,
                spoofed_pkts: d.spoofed_pkts,
            });
            next.slivers.insert(
                s.clone(),
                SliverCounters {
                    cpu_ns,
                    // A vanished veth (sliver stopped) keeps no baseline: the next one is new.
                    veth,
                },
            );
            let sent_before = if prev.bwmon.day == day {
                prev.bwmon.sent.get(s).copied().unwrap_or(0)
            } else {
                0
            };
            next.bwmon
                .sent
                .insert(s.clone(), sent_before.saturating_add(d.tx_bytes));
        }
        let (node_sample, node_counters) = node_sample(&prev.node, &state_dir, now, interval);
        samples.push(node_sample);
        next.node = node_counters;

        let seq = self.queue.next_seq();
        let queued = Queued {
            batch: UsageBatch {
                seq,
                samples: samples.clone(),
            },
            counters: next.clone(),
        };
        let bytes = serde_json::to_vec(&queued).map_err(|e| NodeError::Invalid {
            what: "usage batch",
            message: e.to_string(),
        })?;
        self.queue.push(&bytes)?;
        self.saved = Saved {
            seq,
            counters: next,
        };
        self.save_state()?;

        let mut throttles = Vec::new();
        for s in &slices {
            let Ok(Some(rec)) = state::load(&state_dir, s) else {
                continue;
            };
            let sent = self.saved.counters.bwmon.sent.get(s).copied().unwrap_or(0);
            let want = throttle_reason(rec.spec.resources.net_max_kbyte, sent);
            if rec.throttled != want {
                rt.set_throttle(s, want.clone())?;
                throttles.push(ThrottleChange {
                    slice: s.clone(),
                    reason: want,
                });
            }
        }
        Ok(Tick {
            seq,
            samples,
            throttles,
        })
    }

    fn save_state(&self) -> Result<(), NodeError> {
        let bytes = serde_json::to_vec(&self.saved).map_err(|e| NodeError::Invalid {
            what: "usage state",
            message: e.to_string(),
        })?;
        let path = self.queue.dir().join("state.json");
        write_atomic(&path, &bytes).ctx(|| format!("writing {}", path.display()))
    }

    /// Central holds a higher `seq` than we ever issued (our state dir was reset): continue
    /// above it, renumbering what is queued so central does not ignore it.
    fn skip_to(&mut self, acked: Seq) -> Result<(), NodeError> {
        self.queue.renumber_after(acked, |seq, bytes| {
            // An unreadable batch is dropped (`flush` would drop it too).
            let mut q: Queued = serde_json::from_slice(bytes).ok()?;
            q.batch.seq = seq;
            serde_json::to_vec(&q).ok()
        })?;
        self.saved.seq = self.queue.last_issued();
        self.save_state()
    }

    /// Forgets batch `seq`: acknowledged by central (`acked`), or never to be sent.
    fn done(&mut self, seq: Seq, acked: bool) -> Result<(), NodeError> {
        if acked {
            self.queue.ack(seq)?;
        } else {
            self.queue.discard(seq)?;
        }
        Ok(())
    }
}

fn read_queued(queue: &Spool, seq: Seq) -> Option<Queued> {
    serde_json::from_slice(&queue.read(seq).ok()?).ok()
}

/// Sends the queued batches oldest first, deleting each once acknowledged. Stops at the first
/// one central cannot take now (it is kept for the next round). Returns how many were delivered.
pub async fn flush(
    acct: &std::sync::Mutex<Accountant>,
    client: &Client,
) -> Result<usize, NodeError> {
    let lock = || acct.lock().unwrap_or_else(|p| p.into_inner());
    let pending = lock().pending();
    let mut sent = 0;
    for seq in pending {
        let queued = read_queued(&lock().queue, seq);
        let Some(q) = queued else {
            warn!(seq, "unreadable usage batch dropped");
            let _ = lock().done(seq, false);
            continue;
        };
        let newest = q.batch.samples.iter().map(|s| s.time).max().unwrap_or(0);
        if newest < now() - MAX_AGE_S {
            warn!(seq, "usage batch too old for central; dropped");
            lock().done(seq, false)?;
            continue;
        }
        match client.send_usage(&q.batch).await {
            Ok(ack) => {
                let issued = lock().seq();
                if ack.acked_seq > issued {
                    // Nothing of ours was stored; renumber and let the next round send it.
                    lock().skip_to(ack.acked_seq)?;
                    return Ok(sent);
                }
                lock().done(seq, true)?;
                sent += 1;
            }
            Err(ClientError::Api {
                status, message, ..
            }) if matches!(status, 400 | 413 | 422) => {
                // Central will never take it; keeping it would block every later batch.
                warn!(seq, status, %message, "usage batch rejected by central; dropped");
                lock().done(seq, false)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sent)
}

/// Growth of veth counters; a new veth (other ifindex, or counters that went down) counts from
/// zero, a missing one counts nothing.
fn veth_delta(old: Option<&VethCounters>, new: Option<&VethCounters>) -> VethCounters {
    let Some(n) = new else {
        return VethCounters::default();
    };
    match old {
        Some(o)
            if o.ifindex == n.ifindex && n.tx_bytes >= o.tx_bytes && n.rx_bytes >= o.rx_bytes =>
        {
            VethCounters {
                ifindex: n.ifindex,
                tx_bytes: n.tx_bytes - o.tx_bytes,
                rx_bytes: n.rx_bytes - o.rx_bytes,
                tx_pkts: n.tx_pkts.saturating_sub(o.tx_pkts),
                rx_pkts: n.rx_pkts.saturating_sub(o.rx_pkts),
                spoofed_pkts: n.spoofed_pkts.saturating_sub(o.spoofed_pkts),
            }
        }
        _ => *n,
    }
}

/// bwmon's verdict: why the sliver is throttled, or `None` if it is not. `cap_kbyte` is
/// `net_max_kbyte` (KB of 1024 bytes, as PlanetLab's bwmon counted).
pub fn throttle_reason(cap_kbyte: Option<u64>, sent_today: u64) -> Option<String> {
    let cap = cap_kbyte?;
    (sent_today > cap.saturating_mul(1024)).then(|| {
        format!(
            "throttled to {} kbit/s until the day rolls over: daily egress cap of {cap} KB reached",
            net::THROTTLE_RATE / 1000
        )
    })
}

/// The node's own sample: all CPUs, memory, the state dir's filesystem, the uplink.
fn node_sample(
    prev: &NodeCounters,
    state_dir: &Path,
    now: i64,
    interval: u32,
) -> (UsageSample, NodeCounters) {
    let ticks = busy_ticks().unwrap_or(prev.cpu_ticks);
    let hz = clock_ticks_per_s();
    let cpu_s = ticks.saturating_sub(prev.cpu_ticks) as f64 / hz;
    let cpu_s = if prev.cpu_ticks == 0 { 0.0 } else { cpu_s };
    let mem = MemInfo::read().used();
    let disk = nix::sys::statvfs::statvfs(state_dir)
        .map(|s| s.blocks().saturating_sub(s.blocks_free()) * s.fragment_size())
        .unwrap_or(0);
    let uplink = uplink_counters();
    let d = match (&prev.uplink, &uplink) {
        (Some((pn, p)), Some((n, c))) if pn == n => veth_delta(Some(p), Some(c)),
        // First look at this uplink: its counters since boot are not ours to report.
        _ => VethCounters::default(),
    };
    (
        UsageSample {
            slice: None,
            time: now,
            interval_s: interval,
            cpu_s,
            mem_bytes: mem,
            disk_bytes: disk,
            tx_bytes: d.tx_bytes,
            rx_bytes: d.rx_bytes,
            tx_pkts: d.tx_pkts,
            rx_pkts: d.rx_pkts,
            spoofed_pkts: 0,
        },
        NodeCounters {
            cpu_ticks: ticks,
            uplink,
        },
    )
}

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// user + nice + system + irq + softirq + steal of the `cpu` line of `/proc/stat`.
fn busy_ticks() -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    Some([0, 1, 2, 5, 6, 7].iter().filter_map(|i| f.get(*i)).sum())
}

/// The interface of the default route and its counters (tx as the node sends).
fn uplink_counters() -> Option<(String, VethCounters)> {
    let routes = fs::read_to_string("/proc/net/route").ok()?;
    let iface = routes.lines().skip(1).find_map(|l| {
        let mut f = l.split_whitespace();
        let iface = f.next()?;
        (f.next()? == "00000000").then(|| iface.to_string())
    })?;
    let c = net::link_counters(&iface)?;
    Some((iface, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ifindex: u64, tx: u64) -> VethCounters {
        VethCounters {
            ifindex,
            tx_bytes: tx,
            rx_bytes: tx / 2,
            tx_pkts: tx / 100,
            rx_pkts: 1,
            spoofed_pkts: 0,
        }
    }

    #[test]
    fn veth_deltas_count_new_incarnations_from_zero() {
        assert_eq!(veth_delta(Some(&v(3, 100)), Some(&v(3, 250))).tx_bytes, 150);
        // Recreated veth: everything it counted is new.
        assert_eq!(veth_delta(Some(&v(3, 100)), Some(&v(9, 40))).tx_bytes, 40);
        assert_eq!(veth_delta(None, Some(&v(9, 40))).tx_bytes, 40);
        assert_eq!(veth_delta(Some(&v(3, 100)), None).tx_bytes, 0);
    }

    #[test]
    fn bwmon_throttles_past_the_cap_only() {
        assert_eq!(throttle_reason(None, u64::MAX), None);
        assert_eq!(throttle_reason(Some(100), 100 * 1024), None);
        let r = throttle_reason(Some(100), 100 * 1024 + 1).unwrap();
        assert!(r.contains("daily egress cap of 100 KB"), "{r}");
        assert!(r.contains("64 kbit/s"), "{r}");
    }

    #[test]
    fn queue_resumes_from_the_newest_batch() {
        let dir = tempfile::tempdir().unwrap();
        let acct = Accountant::open(dir.path(), 10, DAY_S).unwrap();
        assert_eq!(acct.seq(), 0);
        // A batch written just before a crash, with no state file update.
        let q = Queued {
            batch: UsageBatch {
                seq: 7,
                samples: vec![],
            },
            counters: Counters {
                time: 1234,
                ..Default::default()
            },
        };
        write_atomic(
            &dir.path()
                .join("usage")
                .join(slicelab_spool::batch_file_name(7)),
            &serde_json::to_vec(&q).unwrap(),
        )
        .unwrap();
        let mut acct = Accountant::open(dir.path(), 10, DAY_S).unwrap();
        assert_eq!(acct.seq(), 7);
        assert_eq!(acct.saved.counters.time, 1234);
        acct.skip_to(40).unwrap();
        let p = acct.pending();
        assert_eq!(p, vec![41]);
        assert_eq!(read_queued(&acct.queue, 41).unwrap().batch.seq, 41);
        assert_eq!(Accountant::open(dir.path(), 10, DAY_S).unwrap().seq(), 41);
    }
}

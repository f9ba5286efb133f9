//! The flow table: turns conntrack events and dumps into [`FlowRecord`]s. Pure (the clock is a
//! parameter), so every rule below is unit-tested without a kernel.
//!
//! Rules:
//! - A flow is *ours* when its original source resolves to a slice. The slice is resolved when the
//!   flow is first seen and remembered, so a flow that outlives its sliver (or whose address is
//!   handed to another slice meanwhile) stays with the slice that started it.
//! - `Destroy` emits the one `done` record of a flow, with the final counters the kernel sends.
//! - A *periodic* dump emits a `done: false` record for every flow of ours that is at least
//!   `update_after` old and whose counters moved since its last record — long flows are reported
//!   periodically, short ones only once, when they end.
//! - Safety net for lost destroy events (entries that predate the collector have no event
//!   extension; a socket overrun): a tracked flow absent from two consecutive dumps, over at least
//!   `gc_grace`, is closed with its last known counters. A tombstone then suppresses a late
//!   destroy event of the same flow, so it still appears exactly once.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::nl::{Conntrack, Counters, EventKind, Tuple};
use crate::FlowRecord;

/// Maps a sliver's address to its slice; `None` for anything else (the host's own traffic).
pub type Resolver = dyn Fn(IpAddr) -> Option<String> + Send + Sync;

#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// A live flow gets `done: false` records once it is this old (seconds).
    pub update_after: i64,
    /// Minimum time (seconds) a tracked flow must have been missing from dumps before it is closed
    /// without a destroy event.
    pub gc_grace: i64,
    /// How long (seconds) a flow closed by the safety net suppresses its late destroy event.
    pub tombstone_ttl: i64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            update_after: 30,
            gc_grace: 60,
            tombstone_ttl: 600,
        }
    }
}

/// Identifies one conntrack entry: the kernel id is a hash and may repeat for a reused entry, so
/// the original tuple goes with it.
type Key = (u32, Tuple);

#[derive(Debug)]
struct Live {
    slice: String,
    /// Unix seconds, from the kernel's timestamp when there is one, else when we first saw it.
    start: i64,
    /// Start in ns when the kernel gave one: tells a reused entry (same id and tuple) apart.
    start_ns: Option<u64>,
    last: Box<Conntrack>,
    last_seen: i64,
    reported: Option<(Counters, Counters)>,
    /// Generation of the dump during which it became known, and of the last dump that listed it.
    known_since: u64,
    seen_in: u64,
    missing: u32,
    missing_since: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub events: u64,
    pub dumped: u64,
    pub records: u64,
    /// Flows closed by the safety net (their destroy event never came).
    pub closed_without_destroy: u64,
    pub late_destroys_suppressed: u64,
}

pub struct Tracker {
    cfg: TrackerConfig,
    live: HashMap<Key, Live>,
    /// (key, start_ns or start) → expiry, for flows closed by the safety net.
    tombstones: HashMap<(Key, u64), i64>,
    gen: u64,
    dump_emits_updates: bool,
    pub stats: Stats,
}

fn secs(ns: u64) -> i64 {
    i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX)
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Tracker {
        Tracker {
            cfg,
            live: HashMap::new(),
            tombstones: HashMap::new(),
            gen: 0,
            dump_emits_updates: false,
            stats: Stats::default(),
        }
    }

    /// Number of flows of ours currently tracked.
    pub fn live_flows(&self) -> usize {
        self.live.len()
    }

    /// Handles one decoded event or dump entry; returns the record it produces, if any.
    pub fn observe(
        &mut self,
        kind: EventKind,
        ct: Conntrack,
        now: i64,
        resolve: &Resolver,
    ) -> Option<FlowRecord> {
        let key = (ct.id, ct.orig);
        match kind {
            EventKind::Destroy => {
                self.stats.events += 1;
                let tomb = (key, ct.start_ns.unwrap_or(0));
                if self.tombstones.remove(&tomb).is_some() {
                    self.stats.late_destroys_suppressed += 1;
                    self.live.remove(&key);
                    return None;
                }
                let (slice, start) = match self.live.remove(&key) {
                    Some(l) => (l.slice, l.start),
                    None => {
                        // Never seen alive (its NEW was lost or it predates us): resolve now.
                        let slice = resolve(ct.orig.src)?;
                        (slice, ct.start_ns.map(secs).unwrap_or(now))
                    }
                };
                let end = ct.stop_ns.map(secs).unwrap_or(now);
                Some(self.record(&ct, slice, start, end, true))
            }
            EventKind::New | EventKind::Update | EventKind::Dumped => {
                let dumped = kind == EventKind::Dumped;
                if dumped {
                    self.stats.dumped += 1;
                } else {
                    self.stats.events += 1;
                }
                let gen = self.gen;
                let reused = self.live.get(&key).is_some_and(|l| {
                    l.start_ns.is_some() && ct.start_ns.is_some() && l.start_ns != ct.start_ns
                });
                if reused {
                    // The same id and tuple but another start: a reused entry whose
                    // predecessor's destroy we missed. Start over.
                    self.live.remove(&key);
                }
                if !self.live.contains_key(&key) {
                    self.insert(key, &ct, now, resolve)?;
                }
                let l = self.live.get_mut(&key)?;
                l.last_seen = now;
                if dumped {
                    l.seen_in = gen;
                    l.missing = 0;
                    l.missing_since = None;
                }
                let counters = (
                    ct.counters_orig.unwrap_or_default(),
                    ct.counters_reply.unwrap_or_default(),
                );
                let due = dumped
                    && self.dump_emits_updates
                    && now - l.start >= self.cfg.update_after
                    && l.reported != Some(counters);
                *l.last = ct;
                if !due {
                    return None;
                }
                l.reported = Some(counters);
                let (slice, start, last) = (l.slice.clone(), l.start, l.last.clone());
                Some(self.record(&last, slice, start, now, false))
            }
        }
    }

    fn insert(&mut self, key: Key, ct: &Conntrack, now: i64, resolve: &Resolver) -> Option<()> {
        let slice = resolve(ct.orig.src)?;
        let l = Live {
            slice,
            start: ct.start_ns.map(secs).unwrap_or(now),
            start_ns: ct.start_ns,
            last: Box::new(ct.clone()),
            last_seen: now,
            reported: None,
            known_since: self.gen,
            seen_in: 0,
            missing: 0,
            missing_since: None,
        };
        self.live.insert(key, l);
        Some(())
    }

    /// Starts a dump; `periodic` dumps emit `done: false` records, resynchronisation dumps (after
    /// lost events) only refresh the table.
    pub fn begin_dump(&mut self, periodic: bool) {
        self.gen += 1;
        self.dump_emits_updates = periodic;
    }

    /// Ends a complete dump: flows known before it began and not listed by it are missing; those
    /// missing long enough are closed with their last known counters.
    pub fn finish_dump(&mut self, now: i64) -> Vec<FlowRecord> {
        let gen = self.gen;
        self.dump_emits_updates = false;
        self.tombstones.retain(|_, exp| *exp > now);
        let mut closed = Vec::new();
        for (key, l) in self.live.iter_mut() {
            if l.seen_in == gen || l.known_since >= gen {
                continue;
            }
            l.missing += 1;
            let since = *l.missing_since.get_or_insert(now);
            if l.missing >= 2 && now - since >= self.cfg.gc_grace {
                closed.push(*key);
            }
        }
        let mut out = Vec::new();
        for key in closed {
            if let Some(l) = self.live.remove(&key) {
                self.stats.closed_without_destroy += 1;
                let tomb = (key, l.start_ns.unwrap_or(0));
                self.tombstones.insert(tomb, now + self.cfg.tombstone_ttl);
                out.push(self.record(&l.last, l.slice, l.start, l.last_seen, true));
            }
        }
        out
    }

    fn record(
        &mut self,
        ct: &Conntrack,
        slice: String,
        start: i64,
        end: i64,
        done: bool,
    ) -> FlowRecord {
        self.stats.records += 1;
        let o = ct.counters_orig.unwrap_or_default();
        let r = ct.counters_reply.unwrap_or_default();
        FlowRecord {
            slice,
            proto: ct.orig.proto,
            src: ct.orig.src,
            sport: ct.orig.sport,
            dst: ct.orig.dst,
            dport: ct.orig.dport,
            nat_src: ct.reply.map(|t| t.dst),
            nat_sport: ct.reply.map(|t| t.dport),
            ct_id: ct.id,
            start,
            // Central rejects end < start; clocks (ours vs. the kernel's stamp) may disagree by a
            // second.
            end: end.max(start),
            done,
            tx_bytes: o.bytes,
            tx_pkts: o.packets,
            rx_bytes: r.bytes,
            rx_pkts: r.packets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nl::build::sample;

    fn resolver() -> Box<Resolver> {
        Box::new(|ip: IpAddr| match ip.to_string().as_str() {
            "10.77.0.2" => Some("pl_a".to_string()),
            "10.77.0.3" => Some("pl_b".to_string()),
            _ => None,
        })
    }

    fn cfg() -> TrackerConfig {
        TrackerConfig {
            update_after: 10,
            gc_grace: 30,
            tombstone_ttl: 100,
        }
    }

    fn with_counters(mut ct: Conntrack, tx: u64, rx: u64) -> Conntrack {
        ct.counters_orig = Some(Counters {
            packets: tx / 100,
            bytes: tx,
        });
        ct.counters_reply = Some(Counters {
            packets: rx / 100,
            bytes: rx,
        });
        ct
    }

    #[test]
    fn short_flow_gives_exactly_one_done_record() {
        let r = resolver();
        let mut t = Tracker::new(cfg());
        let mut ct = sample();
        ct.stop_ns = None;
        assert_eq!(t.observe(EventKind::New, ct.clone(), 100, &*r), None);
        let fin = sample();
        let rec = t
            .observe(EventKind::Destroy, fin, 105, &*r)
            .expect("record");
        assert_eq!(rec.slice, "pl_a");
        assert!(rec.done);
        assert_eq!((rec.start, rec.end), (1_700_000_000, 1_700_000_005));
        assert_eq!((rec.tx_bytes, rec.tx_pkts), (1_000_520, 10));
        assert_eq!((rec.rx_bytes, rec.rx_pkts), (416, 8));
        assert_eq!(rec.nat_src, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(rec.nat_sport, Some(40001));
        assert_eq!((rec.sport, rec.dport, rec.proto), (40000, 9000, 6));
        assert_eq!(t.live_flows(), 0);
    }

    #[test]
    fn host_traffic_is_ignored() {
        let r = resolver();
        let mut t = Tracker::new(cfg());
        let mut ct = sample();
        ct.orig.src = "192.0.2.1".parse().unwrap();
        assert_eq!(t.observe(EventKind::New, ct.clone(), 1, &*r), None);
        assert_eq!(t.observe(EventKind::Destroy, ct, 2, &*r), None);
        assert_eq!(t.live_flows(), 0);
    }

    #[test]
    fn destroy_without_new_is_still_reported() {
        let r = resolver();
        let mut t = Tracker::new(cfg());
        let rec = t
            .observe(EventKind::Destroy, sample(), 5, &*r)
            .expect("record");
        assert!(rec.done);
        assert_eq!(rec.slice, "pl_a");
    }

    #[test]
    fn slice_is_the_one_resolved_when_the_flow_began() {
        let mut t = Tracker::new(cfg());
        let before = resolver();
        t.observe(EventKind::New, sample(), 1, &*before);
        let after: Box<Resolver> = Box::new(|_| Some("pl_new_owner".to_string()));
        let rec = t.observe(EventKind::Destroy, sample(), 2, &*after).unwrap();
        assert_eq!(rec.slice, "pl_a");
    }

    #[test]
    fn long_flow_reported_periodically_when_counters_move() {
        let r = resolver();
        let mut t = Tracker::new(cfg());
        let mut ct = sample();
        ct.start_ns = Some(1_000 * 1_000_000_000);
        ct.stop_ns = None;
        t.observe(
            EventKind::New,
            with_counters(ct.clone(), 100, 0),
            1_000,
            &*r,
        );
        // Too young at the first dump.
        t.begin_dump(true);
        assert_eq!(
            t.observe(
                EventKind::Dumped,
                with_counters(ct.clone(), 200, 50),
                1_005,
                &*r
            ),
            None
        );
        assert!(t.finish_dump(1_005).is_empty());
        // Old enough: one update with cumulative counters.
        t.begin_dump(true);
        let u = t
            .observe(
                EventKind::Dumped,
                with_counters(ct.clone(), 300, 60),
                1_012,
                &*r,
            )
            .expect("update");
        assert!(!u.done);
        assert_eq!(
            (u.start, u.end, u.tx_bytes, u.rx_bytes),
            (1_000, 1_012, 300, 60)
        );
        assert!(t.finish_dump(1_012).is_empty());
        // Idle since: no new record.
        t.begin_dump(true);
        assert_eq!(
            t.observe(
                EventKind::Dumped,
                with_counters(ct.clone(), 300, 60),
                1_020,
                &*r
            ),
            None
        );
        t.finish_dump(1_020);
        // A resync dump never emits.
        t.begin_dump(false);
        assert_eq!(
            t.observe(
                EventKind::Dumped,
                with_counters(ct.clone(), 400, 60),
                1_021,
                &*r
            ),
            None
        );
        t.finish_dump(1_021);
        // The final record, same identity.
        let mut fin = with_counters(ct.clone(), 500, 70);
        fin.stop_ns = Some(1_030 * 1_000_000_000);
        let d = t
            .observe(EventKind::Destroy, fin, 1_030, &*r)
            .expect("done");
        assert!(d.done);
        assert_eq!((d.ct_id, d.start), (u.ct_id, u.start));
        assert_eq!((d.end, d.tx_bytes), (1_030, 500));
    }

    #[test]
    fn missing_flow_is_closed_once_and_its_late_destroy_suppressed() {
        let r = resolver();
        let mut t = Tracker::new(cfg());
        let mut ct = sample();
        ct.start_ns = Some(90 * 1_000_000_000);
        ct.stop_ns = None;
        t.observe(EventKind::New, with_counters(ct.clone(), 10, 10), 100, &*r);
        // Missing from one dump only: kept (its destroy may still sit in the socket).
        t.begin_dump(true);
        assert!(t.finish_dump(110).is_empty());
        // Missing twice but not long enough.
        t.begin_dump(true);
        assert!(t.finish_dump(120).is_empty());
        // Twice and past the grace time: closed with the last known counters.
        t.begin_dump(true);
        let closed = t.finish_dump(150);
        assert_eq!(closed.len(), 1);
        assert!(closed[0].done);
        assert_eq!(
            (closed[0].tx_bytes, closed[0].start, closed[0].end),
            (10, 90, 100)
        );
        assert_eq!(t.stats.closed_without_destroy, 1);
        // The destroy event turns up after all: not a second record.
        ct.stop_ns = Some(140 * 1_000_000_000);
        assert_eq!(t.observe(EventKind::Destroy, ct, 151, &*r), None);
        assert_eq!(t.stats.late_destroys_suppressed, 1);
    }

    #[test]
    fn flow_first_seen_during_a_dump_is_not_missing_from_it() {
        let r = resolver();
        let mut t = Tracker::new(cfg());
        t.begin_dump(true);
        let mut ct = sample();
        ct.stop_ns = None;
        // NEW event read while the dump runs; the dump snapshot predates it.
        t.observe(EventKind::New, ct.clone(), 100, &*r);
        assert!(t.finish_dump(100).is_empty());
        t.begin_dump(true);
        t.observe(EventKind::Dumped, ct, 200, &*r);
        assert!(t.finish_dump(200).is_empty());
        assert_eq!(t.live_flows(), 1);
    }

    #[test]
    fn reused_entry_with_another_start_is_a_new_flow() {
        let r = resolver();
        let mut t = Tracker::new(cfg());
        let mut a = sample();
        a.stop_ns = None;
        t.observe(EventKind::New, a.clone(), 100, &*r);
        let mut b = a.clone();
        b.start_ns = Some(a.start_ns.unwrap() + 50_000_000_000);
        t.observe(EventKind::New, b.clone(), 150, &*r);
        b.stop_ns = Some(b.start_ns.unwrap() + 1);
        let rec = t.observe(EventKind::Destroy, b, 151, &*r).unwrap();
        assert_eq!(rec.start, 1_700_000_050);
        assert_eq!(t.live_flows(), 0);
    }

    #[test]
    fn without_timestamps_start_is_first_seen_and_end_never_precedes_it() {
        let r = resolver();
        let mut t = Tracker::new(cfg());
        let mut ct = sample();
        ct.start_ns = None;
        ct.stop_ns = None;
        t.observe(EventKind::New, ct.clone(), 500, &*r);
        let rec = t.observe(EventKind::Destroy, ct, 499, &*r).unwrap();
        assert_eq!((rec.start, rec.end), (500, 500));
    }
}

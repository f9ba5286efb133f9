//! The node's packet auditor (PlanetLab's PlanetFlow): every network flow a sliver starts is
//! recorded — protocol, original (pre-NAT) source and destination, the NATed source, start, end,
//! packets and bytes each way — and attributed to the sliver's slice.
//!
//! Where records come from: ctnetlink, the kernel's conntrack interface over a
//! `NETLINK_NETFILTER` socket (no text files, no polling of the table for short flows):
//! - *destroy* events carry a flow's final counters and start/stop timestamps, and are delivered
//!   reliably (the kernel re-sends one that did not fit in our buffer), so short flows are not
//!   missed;
//! - *new* events tell us a flow exists and which slice it belongs to at that moment;
//! - a periodic dump of the table reports long flows (`done: false`, cumulative counters) and
//!   resynchronises after an event overrun.
//!
//! Pieces, from pure to kernel:
//! - [`nl`]: the ctnetlink wire format (parser and dump request), unit-tested on crafted bytes;
//! - [`tracker`]: the flow table rules (attribution, periodic reports, exactly-once `done`);
//! - [`Collector`]: sockets + tracker, for the calling thread's network namespace;
//! - [`FlowJournal`]: batches on disk until central acknowledges them;
//! - [`Auditor`]: a thread that moves records from a collector into a journal.
//!
//! How the node manager uses it: see this crate's `README.md` and [`Auditor`].

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

mod auditor;
mod collector;
mod error;
pub mod journal;
pub mod nl;
mod socket;
pub mod tracker;

pub use auditor::Auditor;
pub use collector::{Collector, CollectorOptions, CollectorStats};
pub use error::FlowError;
pub use journal::{FlowBatch, FlowJournal};
pub use tracker::Resolver;

/// One network flow seen by the node's conntrack, attributed to the slice whose sliver sent it.
/// A long flow is reported several times (`done: false`) with growing counters, then once with
/// `done: true`; `(ct_id, start)` identifies it across those records.
///
/// Same shape as `slicelab_model::flows::FlowRecord` (the wire type); kept here until the lead
/// unifies them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowRecord {
    /// The attributed slice.
    pub slice: String,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub proto: u8,
    /// Original (pre-NAT) source: the sliver's own address.
    pub src: IpAddr,
    /// For ICMP: the echo id.
    pub sport: u16,
    /// The remote end.
    pub dst: IpAddr,
    pub dport: u16,
    /// The source as seen outside (the reply tuple's destination).
    pub nat_src: Option<IpAddr>,
    pub nat_sport: Option<u16>,
    /// The kernel's conntrack id: with `start`, identifies the flow across periodic records.
    pub ct_id: u32,
    /// Unix seconds, first seen (the kernel's timestamp when `nf_conntrack_timestamp` is on).
    pub start: i64,
    /// Unix seconds, last seen, or destroyed when `done`.
    pub end: i64,
    /// True on the last record of the flow (the entry was destroyed).
    pub done: bool,
    /// Original direction (sliver → remote), IP-layer bytes (headers included) and packets.
    pub tx_bytes: u64,
    pub tx_pkts: u64,
    /// Reply direction (remote → sliver).
    pub rx_bytes: u64,
    pub rx_pkts: u64,
}

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

mod auditor;
mod collector;
mod error;
pub mod journal;
pub mod nl;
pub mod snapshot;
mod socket;
pub mod tracker;

pub use auditor::Auditor;
pub use collector::{Collector, CollectorOptions, CollectorStats};
pub use error::FlowError;
pub use journal::FlowJournal;
pub use snapshot::snapshot;
pub use tracker::Resolver;

/// The wire types central stores: one flow attributed to a slice (`(ct_id, start)` identifies a
/// long flow across its periodic (`done: false`) records and its last one), and the numbered
/// batch of them that is one journal file and one `POST /api/v1/node/flows` body.
pub use slicelab_model::{FlowBatch, FlowRecord};

//! The slicelab domain, shared by central, node manager and CLI.
//!
//! Everything here is plain data and pure functions: no I/O, and rules take `now` as an argument
//! (the only clock read is [`time::now`], for the shells to call), so validation, permission and
//! expiry rules are unit-tested without a database or root.

#![forbid(unsafe_code)]

pub mod capture;
pub mod defaults;
pub mod error;
pub mod flows;
pub mod image;
pub mod names;
pub mod objects;
pub mod peer;
pub mod policy;
pub mod schema;
pub mod sliver;
pub mod ssh_key;
pub mod tags;
pub mod time;
pub mod traffic;
pub mod usage;
pub mod wire;

pub use capture::{CaptureEnd, CaptureLimits, CaptureRequest, CaptureSummary};
pub use error::{Invalid, ValidationError};
pub use flows::{Flow, FlowBatch, FlowRecord, FlowTotal, LookupResult};
pub use names::SliceName;
pub use objects::*;
pub use policy::{Actor, Denied};
pub use sliver::{DesiredSlivers, NodeHealth, NodeReport, SliverSpec, SliverState, SliverStatus};
pub use tags::{Resources, TagName};
pub use usage::{UsageBatch, UsagePoint, UsageSample, UsageSeries, UsageTotal};

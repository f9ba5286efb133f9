//! Resource accounting: usage samples from nodes, and the series central answers with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Resources one sliver (or the whole node) used over one sampling interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageSample {
    /// The slice; `None` for the node's own totals.
    pub slice: Option<String>,
    /// End of the interval, Unix seconds.
    pub time: i64,
    #[schema(minimum = 1, maximum = 86400)]
    pub interval_s: u32,
    /// CPU seconds used during the interval.
    #[schema(minimum = 0)]
    pub cpu_s: f64,
    /// Memory in use at the end of the interval.
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub mem_bytes: u64,
    /// Disk in use (writable layer) at the end of the interval.
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub disk_bytes: u64,
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub tx_bytes: u64,
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub rx_bytes: u64,
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub tx_pkts: u64,
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub rx_pkts: u64,
    /// Packets the sliver sent with a forged source address, dropped on the node.
    #[serde(default, deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub spoofed_pkts: u64,
}

/// A batch of usage samples. Like reports, batches carry an increasing `seq`; central stores a
/// batch once and acknowledges the highest `seq` it holds, so resending never double-counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    #[schema(minimum = 1)]
    pub seq: i64,
    #[schema(max_items = 100000)]
    pub samples: Vec<UsageSample>,
}

/// Oldest and newest sample times accepted, relative to central's clock: a node that was cut off
/// for a few days still delivers its backlog; a node with a wild clock does not pollute series.
pub const ACCEPT_PAST: i64 = 7 * crate::time::DAY;
pub const ACCEPT_FUTURE: i64 = 5 * crate::time::MINUTE;
pub const MAX_SAMPLES: usize = 100_000;

impl UsageBatch {
    pub fn validate(&self, now: i64) -> crate::Invalid<()> {
        use crate::ValidationError as E;
        if self.seq < 1 {
            return Err(E::new("seq", "seq starts at 1"));
        }
        if self.samples.len() > MAX_SAMPLES {
            return Err(E::new(
                "samples",
                format!("at most {MAX_SAMPLES} samples per batch"),
            ));
        }
        for s in &self.samples {
            if !(s.cpu_s.is_finite() && s.cpu_s >= 0.0) {
                return Err(E::new("cpu_s", "must be a non-negative number"));
            }
            if s.interval_s == 0 || s.interval_s > 86_400 {
                return Err(E::new("interval_s", "must be 1..=86400"));
            }
            if s.time < now - ACCEPT_PAST || s.time > now + ACCEPT_FUTURE {
                return Err(E::new(
                    "time",
                    format!("{} is outside the accepted window (7 days back, 5 minutes ahead of central)", s.time),
                ));
            }
        }
        Ok(())
    }
}

/// Usage summed over one step of a series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsagePoint {
    /// Start of the step, Unix seconds.
    pub t: i64,
    pub cpu_s: f64,
    /// Average cores busy during the step (`cpu_s / step`).
    pub cpu_load: f64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_pkts: u64,
    pub rx_pkts: u64,
    /// Highest memory in use seen during the step.
    pub mem_bytes: u64,
    pub disk_bytes: u64,
    /// Forged-source packets dropped during the step.
    #[serde(default)]
    pub spoofed_pkts: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageSeries {
    /// What was measured: `platform`, `site:<login_base>`, `node:<hostname>`, `slice:<name>`.
    pub scope: String,
    pub from: i64,
    pub to: i64,
    pub step: i64,
    /// Steps with data, in time order.
    pub points: Vec<UsagePoint>,
    pub total_cpu_s: f64,
    pub total_tx_bytes: u64,
    pub total_rx_bytes: u64,
}

/// One slice's totals over a window, for "top consumers".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageTotal {
    pub slice: String,
    pub cpu_s: f64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

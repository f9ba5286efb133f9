//! Packet auditing (PlanetLab's PlanetFlow): flow records attributed to slices, and the public
//! "who sent this?" lookup.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Invalid, ValidationError};

/// One network flow seen by a node's conntrack, attributed to the slice whose sliver sent it.
/// A long flow is reported several times (`done: false`) with growing counters; `(ct_id, start)`
/// identifies it, so central keeps one record per flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowRecord {
    #[schema(max_length = 32)]
    pub slice: String,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    #[schema(maximum = 255)]
    pub proto: u8,
    /// Original source: the sliver's own (pre-NAT) address.
    #[schema(value_type = String)]
    pub src: IpAddr,
    #[schema(maximum = 65535)]
    pub sport: u16,
    /// The remote end.
    #[schema(value_type = String)]
    pub dst: IpAddr,
    #[schema(maximum = 65535)]
    pub dport: u16,
    /// The source as the remote saw it (after NAT).
    #[schema(value_type = Option<String>)]
    pub nat_src: Option<IpAddr>,
    #[schema(maximum = 65535)]
    pub nat_sport: Option<u16>,
    #[schema(format = Int64, maximum = 4294967295_u64)]
    pub ct_id: u32,
    /// First seen, Unix seconds.
    pub start: i64,
    /// Last seen (or destroyed), Unix seconds.
    pub end: i64,
    pub done: bool,
    /// Sliver → remote.
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub tx_bytes: u64,
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub tx_pkts: u64,
    /// Remote → sliver.
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub rx_bytes: u64,
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub rx_pkts: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowBatch {
    #[schema(minimum = 1)]
    pub seq: i64,
    #[schema(max_items = 100000)]
    pub flows: Vec<FlowRecord>,
}

pub const MAX_FLOWS_PER_BATCH: usize = 100_000;

impl FlowBatch {
    pub fn validate(&self, now: i64) -> Invalid<()> {
        if self.seq < 1 {
            return Err(ValidationError::new("seq", "seq starts at 1"));
        }
        if self.flows.len() > MAX_FLOWS_PER_BATCH {
            return Err(ValidationError::new(
                "flows",
                format!("at most {MAX_FLOWS_PER_BATCH} flows per batch"),
            ));
        }
        for f in &self.flows {
            if f.end < f.start {
                return Err(ValidationError::new(
                    "end",
                    "a flow cannot end before it starts",
                ));
            }
            if f.end > now + crate::usage::ACCEPT_FUTURE {
                return Err(ValidationError::new(
                    "end",
                    "is in the future by central's clock",
                ));
            }
            if f.slice.chars().count() > crate::names::SLICE_NAME_MAX {
                return Err(ValidationError::new(
                    "slice",
                    "is longer than any slice name",
                ));
            }
        }
        Ok(())
    }
}

/// A stored flow, as researchers and operators query it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Flow {
    pub node: String,
    pub flow: FlowRecord,
}

/// Someone responsible for a slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    pub name: String,
    pub email: String,
    pub role: String,
}

/// One slice that exchanged traffic with the remote address in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LookupMatch {
    pub slice: String,
    pub description: String,
    pub url: String,
    pub site: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub flows: i64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// The slice's site PIs: who answers for it (for a peer's slice: the contact its
    /// authority gave).
    pub contacts: Vec<Contact>,
    /// The peer authority whose slice it is (federation); absent for our own slices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

/// The answer to "who sent this?": only what concerns the asked remote address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LookupResult {
    pub node: String,
    pub remote: String,
    pub from: i64,
    pub to: i64,
    pub matches: Vec<LookupMatch>,
}

/// A slice's traffic on one day, kept after raw flows expire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FlowTotal {
    pub slice: String,
    /// Start of the day, Unix seconds (UTC).
    pub day: i64,
    pub flows: i64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

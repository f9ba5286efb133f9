//! Packet capture on a node (`slicelab capture SLICE --node NODE`): what a caller may ask for
//! ([`CaptureRequest`]), the bounds a node enforces ([`CaptureLimits`], from
//! [`CaptureRequest::validate`]) and what a finished capture reports ([`CaptureSummary`]).
//!
//! The node records the sliver's packets on the host side of its veth, the filter compiled to
//! classic BPF and applied in the kernel, and streams them as pcapng. Every capture is bounded in
//! time and size here, whatever the caller asked.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Invalid, ValidationError};

/// A capture runs this long unless the request says otherwise.
pub const DEFAULT_DURATION_S: u32 = 30;
/// The longest capture: one hour.
pub const MAX_DURATION_S: u32 = 3600;
/// The most packets one capture may ask for (and the bound when it asks for none).
pub const MAX_PACKETS: u64 = 10_000_000;
/// The most pcapng bytes one capture writes (1 GiB).
pub const MAX_BYTES: u64 = 1 << 30;
/// Bytes kept of each packet unless the request says otherwise (tcpdump's default).
pub const DEFAULT_SNAPLEN: u32 = 262_144;
/// The snap length is clamped into this range.
pub const MIN_SNAPLEN: u32 = 64;
pub const MAX_SNAPLEN: u32 = 262_144;
/// The longest filter expression, in characters.
pub const MAX_FILTER_LEN: usize = 1024;

/// What a caller asks for: a tcpdump filter expression and bounds. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// A tcpdump (pcap-filter) expression such as `udp port 53`; none or empty: every packet.
    #[schema(max_length = 1024)]
    pub filter: Option<String>,
    /// Seconds to capture (default 30, at most 3600).
    #[schema(minimum = 1, maximum = 3600)]
    pub duration_s: Option<u32>,
    /// Stop after this many packets (default: only the duration and size bounds).
    #[schema(minimum = 1, maximum = 10000000)]
    pub packets: Option<u64>,
    /// Bytes kept of each packet (default 262144; clamped to 64..=262144).
    pub snaplen: Option<u32>,
}

/// The bounds a node enforces on one capture: a validated [`CaptureRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureLimits {
    /// The filter expression; empty means every packet.
    pub filter: String,
    pub duration: Duration,
    pub max_packets: u64,
    /// Bound on the pcapng bytes written (headers included).
    pub max_bytes: u64,
    pub snaplen: u32,
}

impl Default for CaptureLimits {
    fn default() -> Self {
        Self {
            filter: String::new(),
            duration: Duration::from_secs(u64::from(DEFAULT_DURATION_S)),
            max_packets: MAX_PACKETS,
            max_bytes: MAX_BYTES,
            snaplen: DEFAULT_SNAPLEN,
        }
    }
}

impl CaptureRequest {
    /// The bounded limits of this request, or why it is refused. The filter's syntax is checked
    /// where it is compiled (the node, by libpcap); here only its size and characters.
    pub fn validate(&self) -> Invalid<CaptureLimits> {
        let filter = match &self.filter {
            None => String::new(),
            Some(f) => check_filter(f)?,
        };
        let duration_s = self.duration_s.unwrap_or(DEFAULT_DURATION_S);
        if duration_s == 0 || duration_s > MAX_DURATION_S {
            return Err(ValidationError::new(
                "duration_s",
                format!("1..={MAX_DURATION_S} seconds, got {duration_s}"),
            ));
        }
        let max_packets = match self.packets {
            None => MAX_PACKETS,
            Some(n) if (1..=MAX_PACKETS).contains(&n) => n,
            Some(n) => {
                return Err(ValidationError::new(
                    "packets",
                    format!("1..={MAX_PACKETS}, got {n}"),
                ))
            }
        };
        let snaplen = self
            .snaplen
            .unwrap_or(DEFAULT_SNAPLEN)
            .clamp(MIN_SNAPLEN, MAX_SNAPLEN);
        Ok(CaptureLimits {
            filter,
            duration: Duration::from_secs(u64::from(duration_s)),
            max_packets,
            max_bytes: MAX_BYTES,
            snaplen,
        })
    }
}

fn check_filter(f: &str) -> Invalid<String> {
    if f.chars().count() > MAX_FILTER_LEN {
        return Err(ValidationError::new(
            "filter",
            format!("at most {MAX_FILTER_LEN} characters"),
        ));
    }
    if let Some(c) = f.chars().find(|c| c.is_control()) {
        return Err(ValidationError::new(
            "filter",
            format!("control character {c:?} not allowed"),
        ));
    }
    Ok(f.trim().to_string())
}

/// `POST /api/v1/slices/{slice}/captures`: a capture of the slice's sliver on `node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureCreate {
    /// Id or hostname of the node whose sliver to capture.
    pub node: String,
    #[serde(default)]
    pub request: CaptureRequest,
}

/// How the caller reaches the capture: an SSH login on the node that the node itself checks
/// again (a person of the slice as `SLICE`, anyone else allowed as `site_admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptureVia {
    /// `ssh -s SLICE@NODE slicelab-capture`, the request as one JSON line on standard input.
    Slice,
    /// `ssh site_admin@NODE "capture SLICE …"`.
    SiteAdmin,
}

/// Central's answer: allowed, recorded as an event, and where to go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CaptureTicket {
    pub slice: String,
    /// The node's hostname.
    pub node: String,
    pub via: CaptureVia,
    /// The SSH user to log in as on the node.
    pub ssh_user: String,
    /// The request as the node will apply it (bounds filled in).
    pub request: CaptureRequest,
}

/// Why a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CaptureEnd {
    /// The duration ran out.
    Duration,
    /// The packet count was reached.
    Packets,
    /// The next packet would have passed the size bound.
    Bytes,
    /// The client went away (its stream closed) or the caller stopped the capture.
    Client,
}

/// What a finished capture reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureSummary {
    /// Packets written.
    #[schema(maximum = 9223372036854775807_i64)]
    pub packets: u64,
    /// pcapng bytes written (headers included).
    #[schema(maximum = 9223372036854775807_i64)]
    pub bytes: u64,
    /// Packets that matched the filter but the kernel dropped (buffer full).
    #[schema(maximum = 9223372036854775807_i64)]
    pub dropped: u64,
    pub ended: CaptureEnd,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> Invalid<CaptureLimits> {
        serde_json::from_str::<CaptureRequest>(json)
            .expect("parses")
            .validate()
    }

    #[test]
    fn an_empty_request_gets_the_defaults() {
        let l = req("{}").expect("valid");
        assert_eq!(l, CaptureLimits::default());
        assert_eq!(l.duration, Duration::from_secs(30));
        assert_eq!(l.snaplen, 262_144);
        assert_eq!(l.max_packets, MAX_PACKETS);
        assert_eq!(l.max_bytes, 1 << 30);
        assert_eq!(l.filter, "");
    }

    #[test]
    fn bounds_are_checked_and_snaplen_clamped() {
        let l = req(r#"{"filter":" udp port 5001 ","duration_s":3600,"packets":5,"snaplen":10}"#)
            .expect("valid");
        assert_eq!(l.filter, "udp port 5001");
        assert_eq!(l.duration, Duration::from_secs(3600));
        assert_eq!(l.max_packets, 5);
        assert_eq!(l.snaplen, 64);
        assert_eq!(
            req(r#"{"snaplen":9999999}"#).expect("valid").snaplen,
            262_144
        );
        assert_eq!(req(r#"{"duration_s":0}"#).unwrap_err().field, "duration_s");
        assert_eq!(
            req(r#"{"duration_s":3601}"#).unwrap_err().field,
            "duration_s"
        );
        assert_eq!(req(r#"{"packets":0}"#).unwrap_err().field, "packets");
        assert_eq!(req(r#"{"packets":10000001}"#).unwrap_err().field, "packets");
    }

    #[test]
    fn filters_are_bounded_and_printable() {
        let long = "a".repeat(MAX_FILTER_LEN + 1);
        let r = CaptureRequest {
            filter: Some(long),
            ..Default::default()
        };
        assert_eq!(r.validate().unwrap_err().field, "filter");
        for bad in ["udp\0", "udp\nport 5", "tcp\u{1b}[0m", "\u{7f}"] {
            let r = CaptureRequest {
                filter: Some(bad.into()),
                ..Default::default()
            };
            assert_eq!(r.validate().unwrap_err().field, "filter", "{bad:?}");
        }
        let ok = CaptureRequest {
            filter: Some("host 10.0.0.1 and (tcp[13] & 2 != 0 or icmp)".into()),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn unknown_fields_are_refused_and_summaries_serialize() {
        assert!(serde_json::from_str::<CaptureRequest>(r#"{"filtre":"udp"}"#).is_err());
        let s = CaptureSummary {
            packets: 3,
            bytes: 400,
            dropped: 0,
            ended: CaptureEnd::Packets,
        };
        let j = serde_json::to_string(&s).expect("serializes");
        assert_eq!(
            j,
            r#"{"packets":3,"bytes":400,"dropped":0,"ended":"packets"}"#
        );
        assert_eq!(
            serde_json::from_str::<CaptureSummary>(&j).expect("parses"),
            s
        );
    }
}

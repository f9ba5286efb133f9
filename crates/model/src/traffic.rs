//! Traffic generation (`slicelab traffic`): what the CLI asks a node's `slicelab-traffic`
//! service for, what each side answers, and the report made of both answers.
//!
//! Protocol: the client writes ONE [`TrafficRequest`] as a JSON line on the service's input;
//! the service writes [`TrafficLine`]s as JSON lines: a receiver first `{"listening":{"port":P}}`
//! (the node port the sender must aim at) once bound, then its result; a sender its result.
//! A failure is `{"error":"…"}` and a non-zero exit status.
//!
//! Byte counts are L4 payload (UDP datagram payload, TCP stream bytes), as iperf3 counts them.

use serde::{Deserialize, Serialize};

use crate::error::{Invalid, ValidationError};

/// Highest rate a run may ask for, bits/s (10 Gbit/s).
pub const MAX_RATE: u64 = 10_000_000_000;
/// Lowest rate, bits/s.
pub const MIN_RATE: u64 = 1_000;
/// Longest run, seconds.
pub const MAX_DURATION: u32 = 3600;
/// Smallest UDP payload: a sequence number and a send timestamp (8 bytes each).
pub const MIN_UDP_SIZE: u32 = 16;
/// Largest UDP payload over IPv4.
pub const MAX_UDP_SIZE: u32 = 65_507;
/// Largest TCP write.
pub const MAX_TCP_SIZE: u32 = 4 << 20;
/// Default UDP payload: a full 1500-byte frame's worth (iperf3's default for UDP is 1460).
pub const DEFAULT_UDP_SIZE: u32 = 1460;
/// Default TCP write (iperf3's default).
pub const DEFAULT_TCP_SIZE: u32 = 128 * 1024;

/// Which end of the run a service plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Sender,
    Receiver,
}

/// The transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// How the sender spaces its packets (or writes), always averaging `rate` over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// Fixed gaps.
    #[default]
    Constant,
    /// Exponentially distributed gaps with the constant pattern's mean.
    Poisson,
    /// Alternating 1 s at twice the rate and 1 s silent (same average).
    OnOff,
}

impl Pattern {
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Constant => "constant",
            Pattern::Poisson => "poisson",
            Pattern::OnOff => "on-off",
        }
    }
}

/// What the client asks one side's service for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficRequest {
    pub role: Role,
    pub proto: Proto,
    /// Bits per second (of payload).
    pub rate: u64,
    /// Seconds of sending.
    pub duration: u32,
    #[serde(default)]
    pub pattern: Pattern,
    /// UDP payload per datagram, or TCP bytes per write.
    pub size: u32,
    /// Sender only: where the receiver listens, `HOST:PORT` (the receiver node's name or address
    /// and the port of its `listening` line), resolved by the sender's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl TrafficRequest {
    /// Checks every bound; the error names the field.
    pub fn validate(&self) -> Invalid<()> {
        if !(MIN_RATE..=MAX_RATE).contains(&self.rate) {
            return Err(ValidationError::new(
                "rate",
                format!("must be {MIN_RATE}..={MAX_RATE} bit/s"),
            ));
        }
        if !(1..=MAX_DURATION).contains(&self.duration) {
            return Err(ValidationError::new(
                "duration",
                format!("must be 1..={MAX_DURATION} s"),
            ));
        }
        let (lo, hi) = match self.proto {
            Proto::Udp => (MIN_UDP_SIZE, MAX_UDP_SIZE),
            Proto::Tcp => (1, MAX_TCP_SIZE),
        };
        if !(lo..=hi).contains(&self.size) {
            return Err(ValidationError::new(
                "size",
                format!("must be {lo}..={hi} bytes for {}", self.proto.as_str()),
            ));
        }
        match (self.role, &self.to) {
            (Role::Sender, None) => Err(ValidationError::new("to", "a sender needs `to`")),
            (Role::Sender, Some(to)) if split_host_port(to).is_none() => {
                Err(ValidationError::new("to", "must be HOST:PORT"))
            }
            (Role::Receiver, Some(_)) => Err(ValidationError::new("to", "only a sender has `to`")),
            _ => Ok(()),
        }
    }
}

/// `HOST:PORT` → (host, port), the port non-zero.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0 && host.len() <= 253).then_some((host, port))
}

/// Three percentiles of a distribution, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// The sender's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SenderResult {
    pub packets: u64,
    pub bytes: u64,
    /// From the first send to the last.
    pub seconds: f64,
    /// `bytes` over `seconds`, bit/s: the rate it really paced at.
    pub rate: f64,
    /// Round-trip times: UDP probes echoed by the receiver, or TCP's own estimate (`TCP_INFO`).
    pub rtt_ms: Option<Percentiles>,
    pub rtt_samples: u64,
    /// TCP only: segments retransmitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retransmits: Option<u64>,
}

/// The receiver's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiverResult {
    pub packets: u64,
    pub bytes: u64,
    /// From the first arrival to the last.
    pub seconds: f64,
    /// Received payload over the receive interval, bit/s.
    pub throughput: f64,
    /// UDP only: |delay variation| between consecutive packets.
    pub jitter_ms: Option<Percentiles>,
    /// UDP only: RFC 3550 interarrival jitter at the end of the run.
    pub rfc3550_jitter_ms: Option<f64>,
    /// UDP only: packets that arrived after a later-sent one.
    pub out_of_order: u64,
    /// UDP only: the sender's count, when its end-of-run marker arrived.
    pub sent_packets: Option<u64>,
}

/// One line of a service's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficLine {
    Listening { port: u16 },
    Sender(SenderResult),
    Receiver(ReceiverResult),
    Error(String),
}

/// What `slicelab traffic` prints: both sides' results together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficReport {
    pub proto: Proto,
    pub pattern: Pattern,
    /// Asked-for rate, bit/s.
    pub rate: u64,
    pub duration: u32,
    pub size: u32,
    /// The receiver's throughput, bit/s (what iperf3 reports as the receiver's rate).
    pub throughput: f64,
    /// The rate the sender really paced at, bit/s.
    pub sent_rate: f64,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub received_packets: u64,
    pub received_bytes: u64,
    /// UDP: datagrams sent but not received; TCP: 0 (retransmits say what the path lost).
    pub lost_packets: u64,
    pub loss_ratio: f64,
    pub rtt_ms: Option<Percentiles>,
    pub jitter_ms: Option<Percentiles>,
    pub rfc3550_jitter_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retransmits: Option<u64>,
}

impl TrafficReport {
    /// Joins the two sides' results of the run `req` asked for.
    pub fn new(req: &TrafficRequest, s: &SenderResult, r: &ReceiverResult) -> Self {
        let (lost, ratio) = match req.proto {
            Proto::Udp => {
                let lost = s.packets.saturating_sub(r.packets);
                let ratio = if s.packets == 0 {
                    0.0
                } else {
                    lost as f64 / s.packets as f64
                };
                (lost, ratio)
            }
            Proto::Tcp => (0, 0.0),
        };
        TrafficReport {
            proto: req.proto,
            pattern: req.pattern,
            rate: req.rate,
            duration: req.duration,
            size: req.size,
            throughput: r.throughput,
            sent_rate: s.rate,
            sent_packets: s.packets,
            sent_bytes: s.bytes,
            received_packets: r.packets,
            received_bytes: r.bytes,
            lost_packets: lost,
            loss_ratio: ratio,
            rtt_ms: s.rtt_ms,
            jitter_ms: r.jitter_ms,
            rfc3550_jitter_ms: r.rfc3550_jitter_ms,
            retransmits: s.retransmits,
        }
    }
}

/// Parses a rate: a number with an optional unit, decimal like `tc` and iperf3 — `bit`, `kbit`,
/// `mbit`, `gbit` (also `k`, `m`, `g`, `K`, `M`, `G`); bits per second.
pub fn parse_rate(s: &str) -> Invalid<u64> {
    let bad = || ValidationError::new("rate", format!("{s:?}: expected e.g. 10mbit, 500k, 1G"));
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("bps")
        .or(t.strip_suffix("bit"))
        .unwrap_or(&t);
    let t = t.strip_suffix("/s").unwrap_or(t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1e3),
        Some((i, 'm')) => (&t[..i], 1e6),
        Some((i, 'g')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(bad());
    }
    Ok((n * mult).round() as u64)
}

/// Parses a duration in whole seconds: `10`, `10s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Invalid<u32> {
    let bad = || ValidationError::new("duration", format!("{s:?}: expected e.g. 10s, 2m"));
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        _ => (t, 1),
    };
    let n: u32 = num.parse().map_err(|_| bad())?;
    n.checked_mul(mult).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(role: Role, proto: Proto) -> TrafficRequest {
        TrafficRequest {
            role,
            proto,
            rate: 20_000_000,
            duration: 5,
            pattern: Pattern::Constant,
            size: 1460,
            to: (role == Role::Sender).then(|| "n2.example:61000".into()),
        }
    }

    #[test]
    fn bounds_name_the_field() {
        assert_eq!(req(Role::Sender, Proto::Udp).validate(), Ok(()));
        assert_eq!(req(Role::Receiver, Proto::Tcp).validate(), Ok(()));
        let field = |r: TrafficRequest| r.validate().unwrap_err().field;
        let mut r = req(Role::Sender, Proto::Udp);
        r.rate = MAX_RATE + 1;
        assert_eq!(field(r), "rate");
        let mut r = req(Role::Sender, Proto::Udp);
        r.duration = 0;
        assert_eq!(field(r.clone()), "duration");
        r.duration = 3601;
        assert_eq!(field(r), "duration");
        let mut r = req(Role::Sender, Proto::Udp);
        r.size = 15;
        assert_eq!(field(r.clone()), "size");
        r.size = 65_508;
        assert_eq!(field(r.clone()), "size");
        r.proto = Proto::Tcp;
        assert_eq!(r.validate(), Ok(()));
        let mut r = req(Role::Sender, Proto::Udp);
        r.to = None;
        assert_eq!(field(r.clone()), "to");
        r.to = Some("host".into());
        assert_eq!(field(r.clone()), "to");
        r.to = Some("host:0".into());
        assert_eq!(field(r), "to");
        let mut r = req(Role::Receiver, Proto::Udp);
        r.to = Some("h:1".into());
        assert_eq!(field(r), "to");
    }

    #[test]
    fn wire_format_is_one_json_object_per_line() {
        let r = req(Role::Receiver, Proto::Udp);
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"role":"receiver","proto":"udp","rate":20000000,"duration":5,"pattern":"constant","size":1460}"#
        );
        assert!(serde_json::from_str::<TrafficRequest>(r#"{"role":"x"}"#).is_err());
        let l = serde_json::to_string(&TrafficLine::Listening { port: 61000 }).unwrap();
        assert_eq!(l, r#"{"listening":{"port":61000}}"#);
        let e = serde_json::to_string(&TrafficLine::Error("no".into())).unwrap();
        assert_eq!(e, r#"{"error":"no"}"#);
        let p: Pattern = serde_json::from_str(r#""on-off""#).unwrap();
        assert_eq!(p, Pattern::OnOff);
    }

    #[test]
    fn rates_and_durations_parse_like_tc_and_iperf3() {
        assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("20M"), Ok(20_000_000));
        assert_eq!(parse_rate("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_rate("500k"), Ok(500_000));
        assert_eq!(parse_rate("64000"), Ok(64_000));
        assert_eq!(parse_rate("8bit"), Ok(8));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("-1m").is_err());
        assert_eq!(parse_duration("10s"), Ok(10));
        assert_eq!(parse_duration("10"), Ok(10));
        assert_eq!(parse_duration("2m"), Ok(120));
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn report_counts_udp_loss_from_both_sides() {
        let s = SenderResult {
            packets: 100,
            bytes: 146_000,
            seconds: 1.0,
            rate: 1_168_000.0,
            rtt_ms: None,
            rtt_samples: 0,
            retransmits: None,
        };
        let r = ReceiverResult {
            packets: 98,
            bytes: 143_080,
            seconds: 1.0,
            throughput: 1_144_640.0,
            jitter_ms: None,
            rfc3550_jitter_ms: None,
            out_of_order: 0,
            sent_packets: Some(100),
        };
        let rep = TrafficReport::new(&req(Role::Sender, Proto::Udp), &s, &r);
        assert_eq!(rep.lost_packets, 2);
        assert!((rep.loss_ratio - 0.02).abs() < 1e-9);
        let rep = TrafficReport::new(&req(Role::Sender, Proto::Tcp), &s, &r);
        assert_eq!(rep.lost_packets, 0);
    }
}

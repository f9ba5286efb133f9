//! Slice tags: typed, validated resource specs (PlanetLab's slice attributes).
//!
//! Tags are stored as strings in the registry (they are what a person typed), but every value is
//! parsed here on the way in, so a stored tag always parses again and nodes get typed `Resources`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Invalid, ValidationError};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TagName {
    /// Proportional CPU share under contention (1..=1024; default 1).
    CpuShare,
    /// Hard CPU cap, percent of one core (1..=10000).
    CpuPct,
    /// Guaranteed CPU, percent of one core; admission control never over-commits a node's cores.
    CpuReserve,
    /// Memory limit (bytes; suffixes K, M, G accepted).
    MemMax,
    /// Guaranteed memory (bytes); admission control never over-commits a node's memory.
    MemReserve,
    /// Maximum number of tasks in the sliver.
    PidsMax,
    /// Quota of the sliver's writable layer (bytes; suffixes accepted).
    DiskMax,
    /// Egress rate limit (bits/s; suffixes kbit, mbit, gbit accepted).
    NetMaxRate,
    /// Daily egress cap in kilobytes; past it the sliver is throttled until the day rolls over.
    NetMaxKbyte,
    /// Proportional share of the node's site bandwidth cap (`bwlimit`) under contention
    /// (1..=1024; default 1).
    NetShare,
    /// Program kept running as the sliver's service (shell script).
    Initscript,
    /// Name of the root filesystem image (PlanetLab's `vref`).
    Image,
    /// Node ports forwarded to the sliver: `NODEPORT[:SLIVERPORT][/tcp|/udp]`, comma-separated.
    Ports,
}

pub const ALL_TAGS: &[TagName] = &[
    TagName::CpuShare,
    TagName::CpuPct,
    TagName::CpuReserve,
    TagName::MemMax,
    TagName::MemReserve,
    TagName::PidsMax,
    TagName::DiskMax,
    TagName::NetMaxRate,
    TagName::NetMaxKbyte,
    TagName::NetShare,
    TagName::Initscript,
    TagName::Image,
    TagName::Ports,
];

impl TagName {
    pub fn as_str(self) -> &'static str {
        match self {
            TagName::CpuShare => "cpu_share",
            TagName::CpuPct => "cpu_pct",
            TagName::CpuReserve => "cpu_reserve",
            TagName::MemMax => "mem_max",
            TagName::MemReserve => "mem_reserve",
            TagName::PidsMax => "pids_max",
            TagName::DiskMax => "disk_max",
            TagName::NetMaxRate => "net_max_rate",
            TagName::NetMaxKbyte => "net_max_kbyte",
            TagName::NetShare => "net_share",
            TagName::Initscript => "initscript",
            TagName::Image => "image",
            TagName::Ports => "ports",
        }
    }

    pub fn parse(s: &str) -> Invalid<TagName> {
        ALL_TAGS
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ALL_TAGS.iter().map(|t| t.as_str()).collect();
                ValidationError::new(
                    "tag",
                    format!("unknown tag {s:?}; known tags: {}", names.join(", ")),
                )
            })
    }

    /// Tags that grant resources. Only a slice's PI (or an admin) may raise them: members may not
    /// give themselves more than their PI approved. The rest shape what runs in the sliver.
    pub fn is_resource(self) -> bool {
        !matches!(self, TagName::Initscript | TagName::Image | TagName::Ports)
    }
}

impl std::fmt::Display for TagName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port forwarded from the node to the sliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct PortForward {
    pub node_port: u16,
    pub sliver_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// Resolved resources of one sliver: what the node manager enforces.
/// `None` means "node default" (no limit beyond the node's own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpu_share: Option<u32>,
    pub cpu_pct: Option<u32>,
    pub cpu_reserve: Option<u32>,
    pub mem_max: Option<u64>,
    pub mem_reserve: Option<u64>,
    pub pids_max: Option<u64>,
    pub disk_max: Option<u64>,
    pub net_max_rate: Option<u64>,
    pub net_max_kbyte: Option<u64>,
    /// Weight of the sliver's egress under the node's `bwlimit` (`None`: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_share: Option<u32>,
    pub initscript: Option<String>,
    pub image: Option<String>,
    #[serde(default)]
    pub ports: Vec<PortForward>,
}

/// The image every sliver gets unless its slice names another.
pub const DEFAULT_IMAGE: &str = "base";

fn parse_u64(tag: TagName, s: &str) -> Invalid<u64> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| ValidationError::new(tag.as_str(), format!("{s:?} is not a whole number")))
}

fn in_range(tag: TagName, v: u64, lo: u64, hi: u64) -> Invalid<u64> {
    if v < lo || v > hi {
        return Err(ValidationError::new(
            tag.as_str(),
            format!("{v} is out of range {lo}..={hi}"),
        ));
    }
    Ok(v)
}

/// `512M`, `2G`, `1048576` → bytes (binary multiples).
pub fn parse_bytes(tag: TagName, s: &str) -> Invalid<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let unit = t[i..].trim().to_ascii_lowercase();
            let m = match unit.as_str() {
                "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                "t" | "tb" | "tib" => 1 << 40,
                _ => {
                    return Err(ValidationError::new(
                        tag.as_str(),
                        format!("{s:?}: unknown unit {unit:?}; use K, M, G or T"),
                    ))
                }
            };
            (&t[..i], m)
        }
    };
    let n = parse_u64(tag, num)?;
    n.checked_mul(mult)
        .ok_or_else(|| ValidationError::new(tag.as_str(), format!("{s:?} is too large")))
}

/// `5mbit`, `100kbit`, `1gbit`, `800000` → bits per second (decimal multiples, as `tc` uses).
pub fn parse_rate(tag: TagName, s: &str) -> Invalid<u64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t.as_str(), 1u64),
        Some((i, _)) => {
            let m = match t[i..].trim() {
                "bit" | "bps" => 1,
                "kbit" | "k" => 1_000,
                "mbit" | "m" => 1_000_000,
                "gbit" | "g" => 1_000_000_000,
                u => {
                    return Err(ValidationError::new(
                        tag.as_str(),
                        format!("{s:?}: unknown unit {u:?}; use kbit, mbit or gbit"),
                    ))
                }
            };
            (&t[..i], m)
        }
    };
    let n = parse_u64(tag, num)?;
    n.checked_mul(mult)
        .ok_or_else(|| ValidationError::new(tag.as_str(), format!("{s:?} is too large")))
}

/// Bits per second as [`parse_rate`] reads them back, in the largest exact unit: `30mbit`.
pub fn format_rate(bits: u64) -> String {
    for (m, unit) in [
        (1_000_000_000, "gbit"),
        (1_000_000, "mbit"),
        (1_000, "kbit"),
    ] {
        if bits >= m && bits.is_multiple_of(m) {
            return format!("{}{unit}", bits / m);
        }
    }
    format!("{bits}bit")
}

pub fn parse_ports(s: &str) -> Invalid<Vec<PortForward>> {
    let tag = TagName::Ports;
    let mut out: Vec<PortForward> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (ports, proto) = match item.split_once('/') {
            Some((p, "tcp")) => (p, Protocol::Tcp),
            Some((p, "udp")) => (p, Protocol::Udp),
            Some((_, other)) => {
                return Err(ValidationError::new(
                    tag.as_str(),
                    format!("{item:?}: protocol {other:?} must be tcp or udp"),
                ))
            }
            None => (item, Protocol::Tcp),
        };
        let port = |p: &str| -> Invalid<u16> {
            p.parse::<u16>().ok().filter(|v| *v > 0).ok_or_else(|| {
                ValidationError::new(
                    tag.as_str(),
                    format!("{item:?}: {p:?} is not a port number"),
                )
            })
        };
        let (node_port, sliver_port) = match ports.split_once(':') {
            Some((n, v)) => (port(n)?, port(v)?),
            None => (port(ports)?, port(ports)?),
        };
        if node_port < 1024 {
            return Err(ValidationError::new(
                tag.as_str(),
                format!("{item:?}: node ports below 1024 are reserved for the node"),
            ));
        }
        let fwd = PortForward {
            node_port,
            sliver_port,
            protocol: proto,
        };
        if out
            .iter()
            .any(|o| o.node_port == node_port && o.protocol == proto)
        {
            return Err(ValidationError::new(
                tag.as_str(),
                format!("{item:?}: node port given twice"),
            ));
        }
        out.push(fwd);
    }
    if out.len() > 64 {
        return Err(ValidationError::new(
            tag.as_str(),
            "at most 64 forwarded ports",
        ));
    }
    Ok(out)
}

/// Checks a tag value; returns it normalised (trimmed) for storage.
pub fn validate(tag: TagName, value: &str) -> Invalid<String> {
    let mut r = Resources::default();
    apply(&mut r, tag, value)?;
    Ok(match tag {
        TagName::Initscript => value.to_string(),
        _ => value.trim().to_string(),
    })
}

/// Parses `value` for `tag` into `r`.
pub fn apply(r: &mut Resources, tag: TagName, value: &str) -> Invalid<()> {
    match tag {
        TagName::CpuShare => {
            r.cpu_share = Some(in_range(tag, parse_u64(tag, value)?, 1, 1024)? as u32)
        }
        TagName::CpuPct => {
            r.cpu_pct = Some(in_range(tag, parse_u64(tag, value)?, 1, 10_000)? as u32)
        }
        TagName::CpuReserve => {
            r.cpu_reserve = Some(in_range(tag, parse_u64(tag, value)?, 1, 100_000)? as u32)
        }
        TagName::MemMax => {
            r.mem_max = Some(in_range(tag, parse_bytes(tag, value)?, 4 << 20, 1 << 50)?)
        }
        TagName::MemReserve => {
            r.mem_reserve = Some(in_range(tag, parse_bytes(tag, value)?, 1 << 20, 1 << 50)?)
        }
        TagName::PidsMax => r.pids_max = Some(in_range(tag, parse_u64(tag, value)?, 8, 4_194_304)?),
        TagName::DiskMax => {
            r.disk_max = Some(in_range(tag, parse_bytes(tag, value)?, 1 << 20, 1 << 50)?)
        }
        TagName::NetMaxRate => {
            r.net_max_rate = Some(in_range(
                tag,
                parse_rate(tag, value)?,
                8_000,
                100_000_000_000,
            )?)
        }
        TagName::NetMaxKbyte => {
            r.net_max_kbyte = Some(in_range(tag, parse_u64(tag, value)?, 1, 1 << 40)?)
        }
        TagName::NetShare => {
            r.net_share = Some(in_range(tag, parse_u64(tag, value)?, 1, 1024)? as u32)
        }
        TagName::Initscript => {
            if value.len() > 64 * 1024 {
                return Err(ValidationError::new(tag.as_str(), "is longer than 64 KiB"));
            }
            if value.contains('\0') {
                return Err(ValidationError::new(
                    tag.as_str(),
                    "must not contain NUL bytes",
                ));
            }
            r.initscript = Some(value.to_string())
        }
        TagName::Image => {
            crate::names::image(value.trim())?;
            r.image = Some(value.trim().to_string())
        }
        TagName::Ports => r.ports = parse_ports(value)?,
    }
    Ok(())
}

/// One stored tag as the resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagValue<'a> {
    pub name: TagName,
    pub value: &'a str,
    /// `Some(node)` if the tag applies to one node only.
    pub node_id: Option<i64>,
}

/// Resolves a slice's tags for one node: node-specific values override slice-wide ones.
/// Stored values were validated on the way in; one that no longer parses (a rule tightened since)
/// is skipped rather than failing the whole sliver.
pub fn resolve<'a>(tags: impl IntoIterator<Item = TagValue<'a>>, node_id: i64) -> Resources {
    let mut tags: Vec<_> = tags
        .into_iter()
        .filter(|t| t.node_id.is_none() || t.node_id == Some(node_id))
        .collect();
    // Slice-wide first, then node-specific, so the latter win.
    tags.sort_by_key(|t| t.node_id.is_some());
    let mut r = Resources::default();
    for t in tags {
        let _ = apply(&mut r, t.name, t.value);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rates() {
        assert_eq!(parse_bytes(TagName::MemMax, "512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes(TagName::MemMax, "2G").unwrap(), 2 << 30);
        assert_eq!(parse_bytes(TagName::MemMax, "4096").unwrap(), 4096);
        assert!(parse_bytes(TagName::MemMax, "12X").is_err());
        assert!(parse_bytes(TagName::MemMax, "99999999999999999999G").is_err());
        assert_eq!(parse_rate(TagName::NetMaxRate, "5mbit").unwrap(), 5_000_000);
        assert_eq!(parse_rate(TagName::NetMaxRate, "100kbit").unwrap(), 100_000);
        assert!(parse_rate(TagName::NetMaxRate, "5 furlongs").is_err());
        assert_eq!(format_rate(30_000_000), "30mbit");
        assert_eq!(format_rate(1_500_000), "1500kbit");
        assert_eq!(format_rate(999), "999bit");
        for r in [30_000_000, 1_500_000, 999, 2_000_000_000] {
            assert_eq!(parse_rate(TagName::NetMaxRate, &format_rate(r)).unwrap(), r);
        }
    }

    #[test]
    fn ranges_are_enforced() {
        assert!(validate(TagName::CpuShare, "3").is_ok());
        assert!(validate(TagName::CpuShare, "0").is_err());
        assert!(validate(TagName::CpuShare, "-1").is_err());
        assert!(validate(TagName::CpuShare, "lots").is_err());
        assert!(validate(TagName::NetShare, "1024").is_ok());
        assert!(validate(TagName::NetShare, "0").is_err());
        assert!(validate(TagName::NetShare, "1025").is_err());
        assert!(TagName::NetShare.is_resource());
        assert!(validate(TagName::MemMax, "1K").is_err());
        assert!(validate(TagName::PidsMax, "2").is_err());
        assert!(validate(TagName::Image, "Ubuntu 22").is_err());
        assert!(validate(TagName::Image, "debian-12").is_ok());
        assert!(TagName::parse("cpu_shares")
            .unwrap_err()
            .message
            .contains("known tags"));
    }

    #[test]
    fn ports() {
        let p = parse_ports("8080:80/tcp, 5353/udp").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].node_port, 8080);
        assert_eq!(p[0].sliver_port, 80);
        assert_eq!(p[1].protocol, Protocol::Udp);
        assert!(parse_ports("80").is_err(), "privileged node port");
        assert!(parse_ports("8080/sctp").is_err());
        assert!(parse_ports("8080,8080").is_err());
        assert!(parse_ports("70000").is_err());
    }

    #[test]
    fn node_specific_tags_override_slice_wide() {
        let tags = vec![
            TagValue {
                name: TagName::MemMax,
                value: "1G",
                node_id: Some(7),
            },
            TagValue {
                name: TagName::MemMax,
                value: "256M",
                node_id: None,
            },
            TagValue {
                name: TagName::CpuShare,
                value: "4",
                node_id: None,
            },
            TagValue {
                name: TagName::CpuShare,
                value: "9",
                node_id: Some(8),
            },
        ];
        let r7 = resolve(tags.clone(), 7);
        assert_eq!(r7.mem_max, Some(1 << 30));
        assert_eq!(r7.cpu_share, Some(4));
        let r8 = resolve(tags, 8);
        assert_eq!(r8.mem_max, Some(256 << 20));
        assert_eq!(r8.cpu_share, Some(9));
    }
}

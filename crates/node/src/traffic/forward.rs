//! The receiver's temporary port forward: a node port from [`PORTS`] (none of the node's slices'
//! `ports` tags, none another run holds, none bound on the host) DNAT-ed to the sliver's same
//! port for the run. Its rules are commented `sl-<slice>/traffic/<port>`, so `slicelab node
//! cleanup` (every `sl-` rule) finds one left by a crash; [`Forward`] deletes them when dropped.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::Mutex;

use serde_json::Value;
use slicelab_model::traffic::Proto;

use crate::cmd::run;
use crate::error::NodeError;
use crate::names::{self, NodeNames};

/// Node ports reserved for traffic runs.
pub const PORTS: RangeInclusive<u16> = 61000..=61999;

/// Choosing a port and adding its rules is one step per process.
static CHOOSING: Mutex<()> = Mutex::new(());

/// The comment of a run's rules.
pub fn comment(slice: &str, port: u16) -> String {
    format!("{}/traffic/{port}", names::nft_comment(slice))
}

/// The port of a traffic run's rule comment.
fn port_of(comment: &str) -> Option<u16> {
    let (head, port) = comment.rsplit_once("/traffic/")?;
    head.starts_with("sl-").then_some(())?;
    port.parse().ok()
}

/// The first port of [`PORTS`] from `start` on (wrapping) that is not `taken` and that `free`
/// accepts.
pub fn choose(start: u16, taken: &BTreeSet<u16>, free: impl Fn(u16) -> bool) -> Option<u16> {
    let (lo, n) = (*PORTS.start(), PORTS.len() as u32);
    (0..n)
        .map(|i| lo + ((u32::from(start) + i) % n) as u16)
        .find(|p| !taken.contains(p) && free(*p))
}

/// The nft commands adding the forward of `port` to `addr:port`.
pub fn script(n: &NodeNames, slice: &str, addr: Ipv4Addr, proto: Proto, port: u16) -> String {
    let (t, c, p) = (&n.nft_table, comment(slice, port), proto.as_str());
    let body = format!("{p} dport {port} dnat ip to {addr}:{port} comment \"{c}\"");
    format!(
        "add rule inet {t} prerouting fib daddr type local {body}\n\
         add rule inet {t} output ip daddr != 127.0.0.0/8 fib daddr type local {body}\n"
    )
}

/// Whether nothing on the host is bound to `port` (TCP and UDP).
fn host_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
        && UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// A run's forward; its rules are deleted on drop.
#[derive(Debug)]
pub struct Forward {
    names: NodeNames,
    comment: String,
    pub port: u16,
}

impl Forward {
    /// Forwards a free node port to the sliver at `addr`. `tagged`: every node port of the
    /// node's slices' `ports` tags.
    pub fn open(
        n: &NodeNames,
        slice: &str,
        addr: Ipv4Addr,
        proto: Proto,
        tagged: &BTreeSet<u16>,
    ) -> Result<Forward, NodeError> {
        let _g = CHOOSING.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = tagged.clone();
        taken.extend(traffic_rules(n)?.iter().filter_map(|(_, _, c)| port_of(c)));
        let start = (super::seed() % PORTS.len() as u64) as u16;
        let port = choose(start, &taken, host_free).ok_or_else(|| NodeError::Invalid {
            what: "traffic port",
            message: format!("no free node port in {}..={}", PORTS.start(), PORTS.end()),
        })?;
        run(
            "nft",
            &["-f", "-"],
            Some(&script(n, slice, addr, proto, port)),
        )?;
        Ok(Forward {
            names: n.clone(),
            comment: comment(slice, port),
            port,
        })
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let Ok(rules) = traffic_rules(&self.names) else {
            return;
        };
        let batch: String = rules
            .iter()
            .filter(|(_, _, c)| *c == self.comment)
            .map(|(chain, h, _)| {
                format!(
                    "delete rule inet {} {chain} handle {h}\n",
                    self.names.nft_table
                )
            })
            .collect();
        if !batch.is_empty() {
            if let Err(e) = run("nft", &["-f", "-"], Some(&batch)) {
                tracing::warn!("removing traffic forward {}: {e}", self.comment);
            }
        }
    }
}

/// (chain, handle, comment) of every traffic run's rule of the node's table.
fn traffic_rules(n: &NodeNames) -> Result<Vec<(String, u64, String)>, NodeError> {
    let Ok(out) = run(
        "nft",
        &["-j", "-a", "list", "table", "inet", &n.nft_table],
        None,
    ) else {
        return Ok(vec![]);
    };
    let v: Value = serde_json::from_str(&out).map_err(|e| NodeError::Invalid {
        what: "nft output",
        message: e.to_string(),
    })?;
    Ok(v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let rule = item.get("rule")?;
            let c = rule["comment"].as_str()?;
            port_of(c)?;
            Some((
                rule["chain"].as_str()?.to_string(),
                rule["handle"].as_u64()?,
                c.to_string(),
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_skip_taken_and_wrap() {
        let taken: BTreeSet<u16> = [61000, 61001].into();
        assert_eq!(choose(0, &taken, |_| true), Some(61002));
        assert_eq!(choose(999, &BTreeSet::new(), |_| true), Some(61999));
        assert_eq!(choose(999, &BTreeSet::new(), |p| p != 61999), Some(61000));
        assert_eq!(choose(0, &BTreeSet::new(), |_| false), None);
    }

    #[test]
    fn rules_are_named_from_the_sliver() {
        let n = NodeNames {
            gateway_if: "slbr7".into(),
            subnet: Ipv4Addr::new(10, 77, 7, 0),
            nft_table: "slicelab_7".into(),
            cgroup_parent: "x".into(),
        };
        let s = script(&n, "pl_a", Ipv4Addr::new(10, 77, 7, 2), Proto::Udp, 61005);
        assert!(s.contains("add rule inet slicelab_7 prerouting fib daddr type local udp dport 61005 dnat ip to 10.77.7.2:61005 comment \"sl-pl_a/traffic/61005\""));
        assert!(s.contains("add rule inet slicelab_7 output ip daddr != 127.0.0.0/8"));
        assert_eq!(port_of("sl-pl_a/traffic/61005"), Some(61005));
        assert_eq!(port_of("sl-pl_a"), None);
        assert_eq!(port_of("sl-pl_a/spoof"), None);
    }
}

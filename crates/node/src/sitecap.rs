//! The site's bandwidth cap (`bwlimit`): what all slivers of the node may send together, shared
//! by their `net_share` weights, with a reserved part for the node's own traffic — PlanetLab's
//! HTB on the node's uplink.
//!
//! Design: one HTB tree on the **uplink's egress** (the device of the default route in the node
//! manager's network namespace, or `--uplink`), handle [`HANDLE`]:
//!
//! ```text
//! 5ca:1  rate = ceil = bwlimit
//! ├── 5ca:2  management: rate = reserve, ceil = bwlimit, prio 0 — the default class (the node's
//! │          own traffic: node manager to central, SSH gateway, anything unclassified)
//! └── 5ca:3  slivers: rate = bwlimit − reserve, ceil = bwlimit, prio 1
//!     ├── 5ca:100           slivers without a class of their own yet (weight: the least share)
//!     └── 5ca:1xx           one per running sliver, xx = last octet of its address:
//!                           rate ∝ net_share, quantum ∝ net_share, ceil = bwlimit
//! ```
//!
//! Leaf rates add up to their parent's, so the cap holds even when every class sends at its
//! guaranteed rate; what an idle class leaves is borrowed by the busy ones in proportion to
//! their quantum, so under contention each sliver gets bwlimit − reserve (plus the management
//! class's unused part) split by weight. Sliver packets are classified without tc filters:
//! rules in the node's nft table (chain [`CHAIN`], forward hook) set `meta priority` to the
//! sliver's class, matched by the input interface (its host veth `sl-<slice>`); HTB takes a
//! packet whose priority names one of its classes straight to that class. `ip_forward` resets a
//! forwarded packet's priority before the hook, so a sliver cannot choose its own class, and the
//! mark survives masquerade. Every per-sliver rule is commented `sl-<slice>/cap` (removed with
//! the sliver's other rules); the chain goes with the node's table. The uplink in use is written
//! to `<state_dir>/sitecap.json` first, so `cleanup` finds the qdisc after a crash.
//!
//! Applied from the daemon after each reconcile (off the sliver start path), only when the plan
//! changed: a new `bwlimit`, a `net_share` changed, a sliver started or stopped.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde_json::Value;

use crate::cmd::run;
use crate::error::{IoContext, NodeError};
use crate::names::{self, NodeNames};

/// The HTB qdisc's handle (major number) on the uplink; class ids and packet marks use it.
pub const HANDLE: u16 = 0x5ca;
/// The nft chain (in the node's table) that marks sliver packets with their class.
pub const CHAIN: &str = "sitecap";
/// Comment of the rule that sends slivers without a class of their own to [`FALLBACK`].
const FALLBACK_COMMENT: &str = "sitecap";
const ROOT: u16 = 1;
const MGMT: u16 = 2;
const SLIVERS: u16 = 3;
/// Class of slivers that have none of their own yet (started since the last apply).
const FALLBACK: u16 = 0x100;
/// Full-size Ethernet frame: the unit of HTB quanta and bursts.
const MTU: u64 = 1514;

/// The node's own traffic keeps this much of `bwlimit`, bits/s: 5%, at least 1 Mbit/s, at most
/// half.
pub fn reserve(bwlimit: u64) -> u64 {
    (bwlimit / 20).max(1_000_000).min(bwlimit / 2)
}

/// A running sliver as the cap sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapSliver {
    pub slice: String,
    pub address: Ipv4Addr,
    /// Its `net_share` (1 if untagged).
    pub share: u32,
}

/// One HTB class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapClass {
    pub minor: u16,
    /// Minor of the parent class; `None`: the qdisc itself.
    pub parent: Option<u16>,
    pub rate: u64,
    pub ceil: u64,
    pub prio: u8,
    pub quantum: u64,
    /// A leaf (gets its own queue).
    pub leaf: bool,
}

/// Everything the cap installs: HTB classes on the uplink and the slivers' marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapPlan {
    pub bwlimit: u64,
    pub classes: Vec<CapClass>,
    /// (slice, class minor) of each running sliver.
    pub marks: Vec<(String, u16)>,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn class(
    minor: u16,
    parent: Option<u16>,
    rate: u64,
    ceil: u64,
    prio: u8,
    quantum: u64,
) -> CapClass {
    CapClass {
        minor,
        parent,
        rate: rate.max(8),
        ceil,
        prio,
        quantum,
        leaf: minor == MGMT || minor >= FALLBACK,
    }
}

/// The classes and marks for `bwlimit` (bits/s) shared by `slivers` (pure).
pub fn plan(bwlimit: u64, slivers: &[CapSliver]) -> CapPlan {
    let reserve = reserve(bwlimit);
    let shared = bwlimit - reserve;
    let mut slivers: Vec<&CapSliver> = slivers.iter().collect();
    slivers.sort_by_key(|s| s.address);
    slivers.dedup_by_key(|s| s.address);
    let weight = |s: &CapSliver| u64::from(s.share.clamp(1, 1024));
    let fallback = slivers.iter().map(|s| weight(s)).min().unwrap_or(1);
    let total: u64 = fallback + slivers.iter().map(|s| weight(s)).sum::<u64>();
    // Quanta in the smallest whole ratio of the weights (borrowing is split by quantum).
    let unit = slivers.iter().fold(fallback, |g, s| gcd(g, weight(s)));
    let leaf = |minor: u16, w: u64| {
        let rate =
            u64::try_from(u128::from(shared) * u128::from(w) / u128::from(total)).unwrap_or(shared);
        class(minor, Some(SLIVERS), rate, bwlimit, 1, MTU * (w / unit))
    };
    let mut classes = vec![
        class(ROOT, None, bwlimit, bwlimit, 0, MTU),
        class(MGMT, Some(ROOT), reserve, bwlimit, 0, MTU),
        class(SLIVERS, Some(ROOT), shared, bwlimit, 1, MTU),
        leaf(FALLBACK, fallback),
    ];
    let mut marks = Vec::new();
    for s in slivers {
        let minor = FALLBACK + u16::from(s.address.octets()[3]);
        classes.push(leaf(minor, weight(s)));
        marks.push((s.slice.clone(), minor));
    }
    CapPlan {
        bwlimit,
        classes,
        marks,
    }
}

fn classid(minor: u16) -> String {
    format!("{HANDLE:x}:{minor:x}")
}

/// Burst of a class: 10 ms at `rate`, at least a few full-size frames.
fn burst(rate: u64) -> u64 {
    (rate / 8 / 100).max(4 * MTU)
}

/// The `tc` batch that makes the uplink's HTB tree what `plan` says. `installed`: our qdisc is
/// already the root; `existing`: the class minors it has (new leaves get a `leaf_qdisc`,
/// classes no longer planned are deleted).
pub fn tc_script(
    uplink: &str,
    plan: &CapPlan,
    installed: bool,
    existing: &BTreeSet<u16>,
    leaf_qdisc: &str,
) -> String {
    let mut s = String::new();
    if !installed {
        s.push_str(&format!(
            "qdisc replace dev {uplink} root handle {HANDLE:x}: htb default {MGMT:x}\n"
        ));
    }
    for c in &plan.classes {
        let parent = match c.parent {
            Some(p) => classid(p),
            None => format!("{HANDLE:x}:"),
        };
        s.push_str(&format!(
            "class replace dev {uplink} parent {parent} classid {} htb rate {}bit ceil {}bit \
             burst {} cburst {} prio {} quantum {}\n",
            classid(c.minor),
            c.rate,
            c.ceil,
            burst(c.rate),
            burst(c.ceil),
            c.prio,
            c.quantum
        ));
        if c.leaf && !(installed && existing.contains(&c.minor)) {
            s.push_str(&format!(
                "qdisc replace dev {uplink} parent {} {leaf_qdisc}\n",
                classid(c.minor)
            ));
        }
    }
    let planned: BTreeSet<u16> = plan.classes.iter().map(|c| c.minor).collect();
    if installed {
        for m in existing.iter().filter(|m| !planned.contains(m)) {
            s.push_str(&format!("class del dev {uplink} classid {}\n", classid(*m)));
        }
    }
    s
}

/// Comment of a sliver's cap rule: starts like every sliver rule, so `cleanup` finds it.
pub fn rule_comment(slice: &str) -> String {
    format!("{}/cap", names::nft_comment(slice))
}

/// The nft batch that (re)makes the marking chain: the fallback rule for the sliver range, then
/// one rule per sliver (later rules win). `None`: the chain emptied and removed.
pub fn nft_script(n: &NodeNames, plan: Option<&CapPlan>) -> String {
    let t = &n.nft_table;
    let mut s = format!(
        "add chain inet {t} {CHAIN} {{ type filter hook forward priority 10; policy accept; }}\n\
         flush chain inet {t} {CHAIN}\n"
    );
    let Some(plan) = plan else {
        s.push_str(&format!("delete chain inet {t} {CHAIN}\n"));
        return s;
    };
    s.push_str(&format!(
        "add rule inet {t} {CHAIN} ip saddr {} meta priority set {} comment \"{FALLBACK_COMMENT}\"\n",
        n.subnet_cidr(),
        classid(FALLBACK)
    ));
    for (slice, minor) in &plan.marks {
        s.push_str(&format!(
            "add rule inet {t} {CHAIN} iifname \"{}\" meta priority set {} comment \"{}\"\n",
            names::veth_name(slice),
            classid(*minor),
            rule_comment(slice)
        ));
    }
    s
}

/// Checks an uplink name before it goes into a `tc` batch.
pub fn check_uplink(name: &str) -> Result<(), NodeError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NodeError::Invalid {
            what: "uplink",
            message: format!("{name:?}: 1..15 characters of [A-Za-z0-9_.-]"),
        })
    }
}

/// The device of the default route in this network namespace.
pub fn default_uplink() -> Result<String, NodeError> {
    let out = run("ip", &["-j", "-4", "route", "show", "default"], None)?;
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    let dev = v
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|r| r["dev"].as_str())
        .ok_or_else(|| NodeError::Invalid {
            what: "uplink",
            message: "no default route: give the node manager --uplink IF".into(),
        })?;
    check_uplink(dev)?;
    Ok(dev.to_string())
}

/// Whether our HTB is the root qdisc of `uplink`, and the classes it has.
fn installed(uplink: &str) -> Result<(bool, BTreeSet<u16>), NodeError> {
    let q = run("tc", &["qdisc", "show", "dev", uplink, "root"], None)?;
    if !q.contains(&format!("qdisc htb {HANDLE:x}: root")) {
        return Ok((false, BTreeSet::new()));
    }
    let c = run("tc", &["class", "show", "dev", uplink], None)?;
    let prefix = format!("{HANDLE:x}:");
    let classes = c
        .lines()
        .filter_map(|l| l.strip_prefix("class htb "))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|id| id.strip_prefix(&prefix))
        .filter_map(|m| u16::from_str_radix(m, 16).ok())
        .collect();
    Ok((true, classes))
}

/// Removes our qdisc from `uplink` (if it is ours and the device exists).
pub fn remove_qdisc(uplink: &str) -> Result<bool, NodeError> {
    if check_uplink(uplink).is_err() || !crate::net::link_exists(uplink) {
        return Ok(false);
    }
    if !installed(uplink)?.0 {
        return Ok(false);
    }
    run("tc", &["qdisc", "del", "dev", uplink, "root"], None)?;
    Ok(true)
}

/// Where the uplink in use is recorded (for `cleanup`).
fn state_file(state_dir: &Path) -> PathBuf {
    state_dir.join("sitecap.json")
}

fn recorded_uplink(state_dir: &Path) -> Option<String> {
    let b = std::fs::read(state_file(state_dir)).ok()?;
    let v: Value = serde_json::from_slice(&b).ok()?;
    v["uplink"].as_str().map(String::from)
}

/// `cleanup`'s part: our qdisc off the recorded uplink, and the record (the nft chain goes with
/// the node's table). Whether a qdisc was removed.
pub fn cleanup(state_dir: &Path) -> Result<bool, NodeError> {
    let removed = match recorded_uplink(state_dir) {
        Some(u) => remove_qdisc(&u)?,
        None => false,
    };
    let f = state_file(state_dir);
    if f.exists() {
        std::fs::remove_file(&f).ctx(|| format!("removing {}", f.display()))?;
    }
    Ok(removed)
}

/// Whether the kernel lacks `fq_codel` (then leaves get a short `pfifo`), learnt once.
static NO_FQ_CODEL: AtomicBool = AtomicBool::new(false);

fn leaf_qdisc() -> &'static str {
    if NO_FQ_CODEL.load(Ordering::Relaxed) {
        "pfifo limit 256"
    } else {
        "fq_codel"
    }
}

/// The cap of one node instance, with what was last applied (applied again only on change).
#[derive(Debug)]
pub struct SiteCap {
    state_dir: PathBuf,
    names: NodeNames,
    /// `--uplink`; `None`: the device of the default route.
    uplink: Option<String>,
    /// `None`: unknown (start, or the last apply failed); `Some((uplink, plan))` as applied.
    applied: Mutex<Option<Option<(String, CapPlan)>>>,
}

impl SiteCap {
    pub fn new(state_dir: &Path, names: &NodeNames, uplink: Option<String>) -> Self {
        Self {
            state_dir: state_dir.to_path_buf(),
            names: names.clone(),
            uplink,
            applied: Mutex::new(None),
        }
    }

    /// Makes the uplink's shaping what `bwlimit` and the running `slivers` call for (`None`:
    /// no cap: our qdisc and marks removed). A no-op when nothing changed since the last call.
    pub fn apply(&self, bwlimit: Option<u64>, slivers: &[CapSliver]) -> Result<(), NodeError> {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        if bwlimit.is_none() && matches!(*applied, Some(None)) {
            return Ok(());
        }
        let want = match bwlimit {
            None => None,
            Some(b) => {
                let uplink = match &self.uplink {
                    Some(u) => u.clone(),
                    None => default_uplink()?,
                };
                Some((uplink, plan(b, slivers)))
            }
        };
        if applied.as_ref() == Some(&want) {
            return Ok(());
        }
        let old = applied.take();
        let result = self.install(old.flatten().map(|(u, _)| u), want.as_ref());
        if result.is_ok() {
            *applied = Some(want);
        }
        result
    }

    fn install(
        &self,
        old: Option<String>,
        want: Option<&(String, CapPlan)>,
    ) -> Result<(), NodeError> {
        // A cap moved to another device (or removed) leaves nothing on the old one.
        let old = old.or_else(|| recorded_uplink(&self.state_dir));
        if let Some(o) = old.filter(|o| want.is_none_or(|(u, _)| u != o)) {
            remove_qdisc(&o)?;
        }
        let Some((uplink, plan)) = want else {
            if run(
                "nft",
                &["list", "chain", "inet", &self.names.nft_table, CHAIN],
                None,
            )
            .is_ok()
            {
                run("nft", &["-f", "-"], Some(&nft_script(&self.names, None)))?;
            }
            return cleanup(&self.state_dir).map(|_| ());
        };
        check_uplink(uplink)?;
        let record = serde_json::json!({ "uplink": uplink }).to_string();
        crate::state::write_atomic(&state_file(&self.state_dir), record.as_bytes())?;
        let (is_ours, existing) = installed(uplink)?;
        let script = tc_script(uplink, plan, is_ours, &existing, leaf_qdisc());
        if let Err(e) = run("tc", &["-batch", "-"], Some(&script)) {
            if NO_FQ_CODEL.load(Ordering::Relaxed) || !e.to_string().contains("unknown") {
                return Err(e);
            }
            NO_FQ_CODEL.store(true, Ordering::Relaxed);
            let (is_ours, existing) = installed(uplink)?;
            let script = tc_script(uplink, plan, is_ours, &existing, leaf_qdisc());
            run("tc", &["-batch", "-"], Some(&script))?;
        }
        run(
            "nft",
            &["-f", "-"],
            Some(&nft_script(&self.names, Some(plan))),
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sliver(slice: &str, octet: u8, share: u32) -> CapSliver {
        CapSliver {
            slice: slice.into(),
            address: Ipv4Addr::new(10, 77, 0, octet),
            share,
        }
    }

    #[test]
    fn leaves_share_by_weight_and_never_overcommit_the_cap() {
        let p = plan(
            30_000_000,
            &[
                sliver("pl_a", 2, 10),
                sliver("pl_b", 3, 20),
                sliver("pl_c", 4, 30),
            ],
        );
        assert_eq!(reserve(30_000_000), 1_500_000);
        let by = |m: u16| p.classes.iter().find(|c| c.minor == m).expect("class");
        assert_eq!((by(ROOT).rate, by(ROOT).ceil), (30_000_000, 30_000_000));
        assert_eq!((by(MGMT).rate, by(MGMT).prio), (1_500_000, 0));
        assert_eq!(by(SLIVERS).rate, 28_500_000);
        // Weights 10 (fallback: the least share), 10, 20, 30.
        assert_eq!(by(0x102).rate, 4_071_428);
        assert_eq!(by(0x103).rate, 8_142_857);
        assert_eq!(by(0x104).rate, 12_214_285);
        assert_eq!(by(0x102).quantum * 3, by(0x104).quantum);
        assert_eq!(by(0x102).quantum, MTU);
        let leaves: u64 = p
            .classes
            .iter()
            .filter(|c| c.minor >= FALLBACK)
            .map(|c| c.rate)
            .sum();
        assert!(leaves <= by(SLIVERS).rate);
        assert!(by(MGMT).rate + by(SLIVERS).rate <= 30_000_000);
        assert!(p.classes.iter().all(|c| c.ceil == 30_000_000));
        assert_eq!(p.marks[1], ("pl_b".to_string(), 0x103));
        assert_eq!(reserve(1_000_000), 500_000);
        assert_eq!(reserve(1_000_000_000), 50_000_000);
    }

    #[test]
    fn scripts_build_the_tree_then_only_change_it() {
        let p = plan(30_000_000, &[sliver("pl_a", 2, 1)]);
        let fresh = tc_script("eth0", &p, false, &BTreeSet::new(), "fq_codel");
        assert!(fresh.starts_with("qdisc replace dev eth0 root handle 5ca: htb default 2\n"));
        assert!(fresh.contains(
            "class replace dev eth0 parent 5ca:3 classid 5ca:102 htb rate 14250000bit ceil 30000000bit"
        ));
        assert!(fresh.contains("qdisc replace dev eth0 parent 5ca:102 fq_codel\n"));
        assert!(fresh.contains("qdisc replace dev eth0 parent 5ca:2 fq_codel\n"));
        let existing: BTreeSet<u16> = [1, 2, 3, 0x100, 0x102, 0x105].into();
        let again = tc_script("eth0", &p, true, &existing, "fq_codel");
        assert!(!again.contains("qdisc replace"));
        assert!(again.ends_with("class del dev eth0 classid 5ca:105\n"));
        let n = NodeNames::default();
        let nft = nft_script(&n, Some(&p));
        assert!(nft.contains("flush chain inet slicelab sitecap\n"));
        assert!(
            nft.contains("iifname \"sl-pl_a\" meta priority set 5ca:102 comment \"sl-pl_a/cap\"")
        );
        assert!(nft.contains("ip saddr 10.77.0.0/24 meta priority set 5ca:100"));
        assert!(nft_script(&n, None).ends_with("delete chain inet slicelab sitecap\n"));
        assert!(check_uplink("eth0").is_ok());
        assert!(check_uplink("eth0 root").is_err());
        assert!(check_uplink("").is_err());
    }
}

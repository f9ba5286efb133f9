//! Sliver networking.
//!
//! Design: a *routed* veth per sliver. The host end `sl-<slice>` carries the node's gateway
//! address (`.1` of the sliver /24, as a /32) and a /32 route to the sliver; the other end is
//! `eth0` in the sliver's netns with the sliver's address and a default route via the gateway.
//! Every packet between two slivers therefore crosses the host's IP forward path, where the nft
//! forward chain drops it unless it was DNAT-ed to a node port (the public way in, hairpin-
//! masqueraded). A bridge was tried first: with `br_netfilter` loaded (as on these machines) the
//! kernel turns a DNAT back onto the same bridge into an L2 forward, which bridge port isolation
//! then drops, so the public-port path between slivers broke depending on a host module; the
//! routed design behaves the same with or without it. Outbound traffic is masqueraded to the
//! node's uplink. Port forwards are rules commented `sl-<slice>`, found and deleted by name.
//! `NodeNames::gateway_if` is a port-less bridge holding the gateway address (and a blackhole
//! /24 route for unused sliver addresses) even when no sliver runs; a bridge because every kernel
//! has it, unlike `dummy`.
//!
//! A sliver's start and destroy go through netlink (`crate::netlink`), without child processes;
//! the node's table, chains and sets are made once at node start by `nft`, and the other listings
//! and live changes (port forwards, shaping) still run `nft`/`tc` (`crate::cmd`).

use std::net::Ipv4Addr;

use serde_json::Value;
use slicelab_model::tags::{PortForward, Protocol};

use crate::cmd::run;
use crate::error::NodeError;
use crate::names::{self, NodeNames};
use crate::netlink::nft::{Elem, Key, Nft, Rule};
use crate::netlink::route::Route;

/// Whether interface `name` exists in this network namespace. Asked of the kernel directly
/// (`if_nametoindex`, an ioctl in the caller's namespace): no process on the start path, and
/// right even where /sys shows another namespace (the local testbed's node managers).
pub fn link_exists(name: &str) -> bool {
    ifindex(name).is_some()
}

/// The index of interface `name` in this network namespace, if it exists.
pub(crate) fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads a valid NUL-terminated string and returns 0 or an index.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

fn table_exists(n: &NodeNames) -> bool {
    run("nft", &["list", "table", "inet", &n.nft_table], None).is_ok()
}

/// Fast check before a sliver starts: the node's gateway interface exists (it is made together
/// with the nft table, and `cleanup` removes both), else [`ensure_node`]. A table removed
/// behind our back is recreated by [`install_rules`].
pub fn ensure_node_quick(n: &NodeNames) -> Result<(), NodeError> {
    if link_exists(&n.gateway_if) {
        return Ok(());
    }
    ensure_node(n)
}

/// Creates the gateway interface, enables forwarding and installs the node's nft table. Idempotent.
pub fn ensure_node(n: &NodeNames) -> Result<(), NodeError> {
    if !link_exists(&n.gateway_if) {
        let gw = format!("{}/24", n.gateway());
        let batch = format!(
            "link add {b} type bridge\naddr add {gw} dev {b}\nlink set {b} up\n",
            b = n.gateway_if
        );
        if let Err(e) = run("ip", &["-batch", "-"], Some(&batch)) {
            // Another node manager instance may have raced us; only fail if it is still missing.
            if !link_exists(&n.gateway_if) {
                return Err(e);
            }
        }
    }
    // NAT needs forwarding; it is a host-wide knob (or per netns in the local testbed).
    let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
    if !table_exists(n) {
        run("nft", &["-f", "-"], Some(&table_script(n)))?;
    }
    Ok(())
}

fn table_script(n: &NodeNames) -> String {
    format!(
        r#"table inet {t} {{
  chain prerouting {{ type nat hook prerouting priority -100; policy accept; }}
  chain output {{ type nat hook output priority -100; policy accept; }}
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    ip saddr {net} ip daddr != {net} masquerade
    ip saddr {net} ip daddr {net} ct status dnat masquerade
  }}
  set {ifs} {{ type ifname; counter; }}
  set {addrs} {{ type ifname . ipv4_addr; }}
  chain antispoof {{
    type filter hook prerouting priority -300; policy accept;
{spoof}  }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    ip daddr {net} ct state established,related accept
    ip daddr {net} ct status dnat accept
    ip daddr {net} drop
  }}
}}
"#,
        t = n.nft_table,
        net = n.subnet_cidr(),
        ifs = SLIVER_IFS,
        addrs = SLIVER_ADDRS,
        spoof = ANTISPOOF_RULES
            .iter()
            .map(|r| format!("    {r}\n"))
            .collect::<String>(),
    )
}

/// The chain doing PlanetLab's "safe raw sockets", on the host side where the sliver cannot
/// touch it: a packet entering from a sliver's veth with any source but the sliver's own address
/// (IPv4) or a link-local address (IPv6: slivers have no routable IPv6) is counted and dropped
/// before conntrack, routing or NAT see it. Raw sockets keep working with the sliver's own address.
///
/// The rules are fixed, made once with the table; a sliver only adds two set elements (by netlink,
/// no `nft` process on its start path): its veth to [`SLIVER_IFS`] and (veth, address) to
/// [`SLIVER_ADDRS`]. `accept` only ends this chain (the others still see the packet), and the
/// drop's lookup in [`SLIVER_IFS`] counts per element: the per-sliver count of forged packets.
const ANTISPOOF: &str = "antispoof";
/// Set of the running slivers' host-side veths (with a counter per element).
const SLIVER_IFS: &str = "sliver_ifs";
/// Set of (veth, sliver address) pairs: the only IPv4 source each veth may send from.
const SLIVER_ADDRS: &str = "sliver_addrs";
const ANTISPOOF_RULES: [&str; 3] = [
    "iifname . ip saddr @sliver_addrs accept",
    "meta nfproto ipv6 ip6 saddr fe80::/10 accept",
    "iifname @sliver_ifs drop",
];

/// Brings the anti-spoofing sets and chain of a table (possibly made by an older node manager,
/// with per-sliver rules) to the current form. Idempotent; callers re-add the running slivers'
/// elements ([`allow_sliver`]).
pub fn ensure_antispoof_chain(n: &NodeNames) -> Result<(), NodeError> {
    let t = &n.nft_table;
    let mut script = format!(
        "add set inet {t} {SLIVER_IFS} {{ type ifname; counter; }}\n\
         add set inet {t} {SLIVER_ADDRS} {{ type ifname . ipv4_addr; }}\n\
         add chain inet {t} {ANTISPOOF} {{ type filter hook prerouting priority -300; policy accept; }}\n\
         flush chain inet {t} {ANTISPOOF}\n"
    );
    for r in ANTISPOOF_RULES {
        script.push_str(&format!("add rule inet {t} {ANTISPOOF} {r}\n"));
    }
    run("nft", &["-f", "-"], Some(&script)).map(|_| ())
}

/// The sliver's anti-spoofing set elements.
fn antispoof_elems(slice: &str, addr: Option<Ipv4Addr>) -> Vec<Elem<'static>> {
    let veth = names::veth_name(slice);
    let mut v = vec![Elem {
        set: SLIVER_IFS,
        key: Key::default().ifname(&veth),
    }];
    if let Some(a) = addr {
        v.push(Elem {
            set: SLIVER_ADDRS,
            key: Key::default().ifname(&veth).ipv4(a),
        });
    }
    v
}

/// Comment of a sliver's anti-spoofing rules as older node managers made them (one pair per
/// sliver): still removed, so an upgraded node leaves none behind.
fn antispoof_comment(slice: &str) -> String {
    format!("{}/spoof", names::nft_comment(slice))
}

pub(crate) fn nl_err(what: &str, e: std::io::Error) -> NodeError {
    NodeError::Io {
        context: format!("netlink: {what}"),
        source: e,
    }
}

/// The node manager's nfnetlink socket, kept open for the life of the process (one per network
/// namespace it is used from). Not closed after each use: closing an nfnetlink socket while
/// deleted set elements or rules await their RCU grace period waits for that grace period
/// (`nft_rcv_nl_event` flushes the destroy work), ~10 ms on a sliver's start or destroy path.
static NFT: std::sync::Mutex<Option<(u64, Nft)>> = std::sync::Mutex::new(None);

/// Runs `f` on the kept nfnetlink socket (opened on first use, or anew in another network
/// namespace). A socket whose request failed is dropped (replies may be left queued on it).
fn with_nft<T>(f: impl FnOnce(&mut Nft) -> std::io::Result<T>) -> std::io::Result<T> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
    let mut kept = NFT.lock().unwrap_or_else(|p| p.into_inner());
    let mut nl = match kept.take() {
        Some((id, nl)) if id == ns => nl,
        _ => Nft::open()?,
    };
    let r = f(&mut nl);
    if r.is_ok() {
        *kept = Some((ns, nl));
    }
    r
}

/// Puts the sliver under anti-spoofing with `addr` as its only source (fresh counter).
pub fn allow_sliver(n: &NodeNames, slice: &str, addr: Ipv4Addr) -> Result<(), NodeError> {
    with_nft(|nl| allow_sliver_on(nl, n, slice, addr))
        .map_err(|e| nl_err("adding anti-spoofing elements", e))
}

fn allow_sliver_on(
    nl: &mut Nft,
    n: &NodeNames,
    slice: &str,
    addr: Ipv4Addr,
) -> std::io::Result<()> {
    let elems = antispoof_elems(slice, Some(addr));
    nl.replace_elems(&n.nft_table, &elems, &elems)
}

/// Removes every rule and set element of the sliver: port forwards, anti-spoofing and its
/// site-cap mark (one netlink listing, one transaction). `addr`: the sliver's address, if known.
pub fn remove_sliver_rules(
    n: &NodeNames,
    slice: &str,
    addr: Option<Ipv4Addr>,
) -> Result<(), NodeError> {
    let (ports_c, spoof_c) = (names::nft_comment(slice), antispoof_comment(slice));
    let cap_c = crate::sitecap::rule_comment(slice);
    let t = &n.nft_table;
    with_nft(|nl| {
        let rules: Vec<Rule> = nl
            .rules(t)?
            .into_iter()
            .filter(|r| r.comment == ports_c || r.comment == spoof_c || r.comment == cap_c)
            .collect();
        nl.delete_rules(t, &rules)?;
        match nl.replace_elems(t, &antispoof_elems(slice, addr), &[]) {
            // No table (cleaned up), or no such set (a table of an older node manager).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r,
        }
    })
    .map_err(|e| nl_err("removing the sliver's rules and anti-spoofing elements", e))
}

/// Forged packets dropped per sliver veth (by interface name, see `names::veth_name`) since its
/// anti-spoofing elements were added (its current incarnation), for every sliver of the node at
/// once: the per-element counters of `SLIVER_IFS`.
pub fn spoofed_packets(n: &NodeNames) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(out_json) = run(
        "nft",
        &["-j", "list", "set", "inet", &n.nft_table, SLIVER_IFS],
        None,
    ) else {
        return out;
    };
    let Ok(v) = serde_json::from_str::<Value>(&out_json) else {
        return out;
    };
    for item in v["nftables"].as_array().into_iter().flatten() {
        for e in item["set"]["elem"].as_array().into_iter().flatten() {
            let (Some(veth), Some(packets)) = (
                e["elem"]["val"].as_str(),
                e["elem"]["counter"]["packets"].as_u64(),
            ) else {
                continue;
            };
            out.insert(veth.to_string(), packets);
        }
    }
    out
}

/// Every nft rule and set element of a starting sliver — anti-spoofing elements and port
/// forwards — replacing any left by a previous incarnation. By netlink only, unless the sliver
/// has port forwards: those are rules written by one `nft` process.
pub fn install_rules(
    n: &NodeNames,
    slice: &str,
    addr: Ipv4Addr,
    ports: &[PortForward],
) -> Result<(), NodeError> {
    match install_rules_once(n, slice, addr, ports) {
        // The node's table was deleted behind our back: make it again, once.
        Err(_) if !table_exists(n) => {
            ensure_node(n)?;
            ensure_antispoof_chain(n)?;
            install_rules_once(n, slice, addr, ports)
        }
        r => r,
    }
}

fn install_rules_once(
    n: &NodeNames,
    slice: &str,
    addr: Ipv4Addr,
    ports: &[PortForward],
) -> Result<(), NodeError> {
    let (ports_c, spoof_c) = (names::nft_comment(slice), antispoof_comment(slice));
    with_nft(|nl| {
        let stale: Vec<Rule> = nl
            .rules(&n.nft_table)?
            .into_iter()
            .filter(|r| r.comment == ports_c || r.comment == spoof_c)
            .collect();
        nl.delete_rules(&n.nft_table, &stale)?;
        allow_sliver_on(nl, n, slice, addr)
    })
    .map_err(|e| {
        nl_err(
            "installing the sliver's rules and anti-spoofing elements",
            e,
        )
    })?;
    if !ports.is_empty() {
        run(
            "nft",
            &["-f", "-"],
            Some(&ports_script(n, slice, addr, ports)),
        )?;
    }
    Ok(())
}

/// Egress rate of a throttled sliver (bwmon, past its daily `net_max_kbyte`): 64 kbit/s, enough
/// for an interactive shell, useless for bulk transfer. PlanetLab's bwmon likewise fell back to a
/// low per-sliver cap until the day rolled over.
pub const THROTTLE_RATE: u64 = 64_000;

/// The egress rate to enforce on a sliver, bits/s: its `net_max_rate`, lowered to
/// [`THROTTLE_RATE`] while it is throttled; `None`: unshaped.
pub fn effective_rate(net_max_rate: Option<u64>, throttled: bool) -> Option<u64> {
    match (net_max_rate, throttled) {
        (r, false) => r,
        (Some(r), true) => Some(r.min(THROTTLE_RATE)),
        (None, true) => Some(THROTTLE_RATE),
    }
}

/// The `tc` batch that shapes (or unshapes) the sliver's `eth0`. Egress of the sliver is what
/// leaves its `eth0`, so the qdisc sits on that side, in the sliver's netns, where the sliver
/// (without CAP_NET_ADMIN) cannot change it. HTB rather than TBF: veth hands over GSO super-
/// packets, which HTB accounts without dropping. The burst is 10 ms at the rate, at least a few
/// full-size frames, so the average holds over any second. `installed`: our HTB is already
/// there, so only its class changes (HTB cannot be "replaced" by itself), with no gap.
fn shaping_script(rate: Option<u64>, installed: bool) -> String {
    match rate {
        None => "qdisc del dev eth0 root\n".into(),
        Some(r) => {
            let burst = burst_of(r);
            let class = format!(
                "dev eth0 parent 1: classid 1:1 htb rate {r}bit ceil {r}bit \
                 burst {burst} cburst {burst}\n"
            );
            if installed {
                format!("class change {class}")
            } else {
                format!("qdisc replace dev eth0 root handle 1: htb default 1\nclass add {class}")
            }
        }
    }
}

/// The shaper's burst for `rate` bits/s: 10 ms at the rate, at least four full-size frames.
pub(crate) fn burst_of(rate: u64) -> u64 {
    (rate / 8 / 100).max(4 * 1514)
}

/// Applies `rate` (bits/s; `None`: none) to the egress of the sliver whose init is `pid`. Live:
/// an existing shaper is changed in place.
pub fn set_egress_rate(pid: i32, rate: Option<u64>) -> Result<(), NodeError> {
    let netns = format!("--net=/proc/{pid}/ns/net");
    let shown = run(
        "nsenter",
        &[&netns, "tc", "qdisc", "show", "dev", "eth0"],
        None,
    )?;
    let installed = shown.contains("qdisc htb 1: root");
    if rate.is_none() && !installed {
        return Ok(());
    }
    let script = shaping_script(rate, installed);
    run("nsenter", &[&netns, "tc", "-batch", "-"], Some(&script)).map(|_| ())
}

/// Counters of the sliver's veth as the sliver sees them (host-side rx is sliver tx).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VethCounters {
    /// Identifies this incarnation of the veth: counters restart with a new one.
    pub ifindex: u64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_pkts: u64,
    pub rx_pkts: u64,
    /// Forged-source packets dropped (see [`spoofed_packets`]); filled in by accounting.
    #[serde(default)]
    pub spoofed_pkts: u64,
}

pub fn veth_counters(slice: &str) -> Option<VethCounters> {
    let c = link_counters(&names::veth_name(slice))?;
    Some(VethCounters {
        tx_bytes: c.rx_bytes,
        rx_bytes: c.tx_bytes,
        tx_pkts: c.rx_pkts,
        rx_pkts: c.tx_pkts,
        ..c
    })
}

/// Counters of interface `name` as this network namespace sees it (its own rx/tx). Read from
/// `/proc/net/dev`, which — unlike `/sys/class/net` — always shows the *reader's* namespace: the
/// local testbed's node managers join their namespace with `setns` and keep the host's /sys.
pub fn link_counters(name: &str) -> Option<VethCounters> {
    let ifindex = u64::from(ifindex(name)?);
    let dev = std::fs::read_to_string("/proc/net/dev").ok()?;
    parse_net_dev(&dev, name).map(|c| VethCounters { ifindex, ..c })
}

/// The line of `name` in `/proc/net/dev`: `name: rx_bytes rx_packets … (8 fields) tx_bytes
/// tx_packets …`.
fn parse_net_dev(text: &str, name: &str) -> Option<VethCounters> {
    text.lines().find_map(|l| {
        let (iface, rest) = l.split_once(':')?;
        if iface.trim() != name {
            return None;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        (f.len() >= 10).then(|| VethCounters {
            ifindex: 0,
            rx_bytes: f[0],
            rx_pkts: f[1],
            tx_bytes: f[8],
            tx_pkts: f[9],
            spoofed_pkts: 0,
        })
    })
}

/// The index of the host end of the sliver's veth, if it still exists.
pub fn veth_index(slice: &str) -> Option<u32> {
    ifindex(&names::veth_name(slice))
}

/// Deletes the interface with index `i` (a sliver's veth found by [`veth_index`]: an index is
/// not reused for another interface soon, unlike the name); gone already is fine. Waits for the
/// kernel's teardown of the interface (and of a dead sliver's netns): off the destroy's path.
pub fn delete_link(i: u32) -> Result<(), NodeError> {
    let mut rt = Route::open().map_err(|e| nl_err("opening route socket", e))?;
    match rt.del_link(i) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        r => r.map_err(|e| nl_err(&format!("deleting interface {i}"), e)),
    }
}

/// Removes the host end of the veth if it still exists (normally it dies with the netns).
pub fn detach(slice: &str) -> Result<(), NodeError> {
    let veth = names::veth_name(slice);
    let Some(i) = ifindex(&veth) else {
        return Ok(());
    };
    let mut rt = Route::open().map_err(|e| nl_err("opening route socket", e))?;
    match rt.del_link(i) {
        // Gone meanwhile with its netns: what we wanted.
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        r => r.map_err(|e| nl_err(&format!("deleting {veth}"), e)),
    }
}

/// Handles of the rules commented `sl-<slice>` (all slivers if `slice` is None), per chain.
fn sliver_rules(n: &NodeNames, slice: Option<&str>) -> Result<Vec<(String, u64)>, NodeError> {
    Ok(match slice {
        Some(s) => {
            let c = names::nft_comment(s);
            rules_where(n, |x| x == c)?
        }
        None => rules_where(n, |x| x.starts_with("sl-"))?,
    }
    .into_iter()
    .map(|(c, h, _)| (c, h))
    .collect())
}

/// (chain, handle, comment) of the rules of the node's table whose comment satisfies `want`.
fn rules_where(
    n: &NodeNames,
    want: impl Fn(&str) -> bool,
) -> Result<Vec<(String, u64, String)>, NodeError> {
    if !table_exists(n) {
        return Ok(vec![]);
    }
    let out = run(
        "nft",
        &["-j", "-a", "list", "table", "inet", &n.nft_table],
        None,
    )?;
    let v: Value = serde_json::from_str(&out).map_err(|e| NodeError::Invalid {
        what: "nft output",
        message: e.to_string(),
    })?;
    let mut found = Vec::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        let comment = rule["comment"].as_str().unwrap_or("");
        if want(comment) {
            if let (Some(chain), Some(h)) = (rule["chain"].as_str(), rule["handle"].as_u64()) {
                found.push((chain.to_string(), h, comment.to_string()));
            }
        }
    }
    Ok(found)
}

/// Number of rules and set elements of the node's table (for leak checks).
pub fn count_rules(n: &NodeNames) -> usize {
    let Ok(out) = run("nft", &["-j", "list", "table", "inet", &n.nft_table], None) else {
        return 0;
    };
    let Ok(v) = serde_json::from_str::<Value>(&out) else {
        return 0;
    };
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| match i.get("rule") {
            Some(_) => 1,
            None => i["set"]["elem"].as_array().map_or(0, Vec::len),
        })
        .sum()
}

pub fn remove_ports(n: &NodeNames, slice: Option<&str>) -> Result<(), NodeError> {
    let rules = sliver_rules(n, slice)?;
    if rules.is_empty() {
        return Ok(());
    }
    let batch: String = rules
        .iter()
        .map(|(chain, h)| format!("delete rule inet {} {chain} handle {h}\n", n.nft_table))
        .collect();
    run("nft", &["-f", "-"], Some(&batch)).map(|_| ())
}

/// Replaces the sliver's port forwards with `ports`, all in one nft transaction.
pub fn set_ports(
    n: &NodeNames,
    slice: &str,
    addr: Ipv4Addr,
    ports: &[PortForward],
) -> Result<(), NodeError> {
    let mut batch: String = sliver_rules(n, Some(slice))?
        .iter()
        .map(|(chain, h)| format!("delete rule inet {} {chain} handle {h}\n", n.nft_table))
        .collect();
    batch.push_str(&ports_script(n, slice, addr, ports));
    if batch.is_empty() {
        return Ok(());
    }
    run("nft", &["-f", "-"], Some(&batch)).map(|_| ())
}

/// The nft commands adding the sliver's port forwards.
fn ports_script(n: &NodeNames, slice: &str, addr: Ipv4Addr, ports: &[PortForward]) -> String {
    let mut batch = String::new();
    let comment = names::nft_comment(slice);
    for p in ports {
        let proto = match p.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let body = format!(
            "{proto} dport {} dnat ip to {addr}:{} comment \"{comment}\"",
            p.node_port, p.sliver_port
        );
        batch.push_str(&format!(
            "add rule inet {t} prerouting fib daddr type local {body}\n\
             add rule inet {t} output ip daddr != 127.0.0.0/8 fib daddr type local {body}\n",
            t = n.nft_table
        ));
    }
    batch
}

/// Deletes the node's table and gateway interface.
pub fn teardown_node(n: &NodeNames) -> Result<(), NodeError> {
    if table_exists(n) {
        run("nft", &["delete", "table", "inet", &n.nft_table], None)?;
    }
    if link_exists(&n.gateway_if) {
        run("ip", &["link", "del", &n.gateway_if], None)?;
    }
    Ok(())
}

/// Host ends of sliver veths (by name: one node instance per network namespace).
pub fn list_veths(_n: &NodeNames) -> Vec<String> {
    let Ok(out) = run("ip", &["-j", "link", "show", "type", "veth"], None) else {
        return vec![];
    };
    serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|v| {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str())
                    .filter(|name| names::is_veth_name(name))
                    .map(String::from)
                    .collect()
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_isolates_and_masquerades_the_configured_range() {
        let n = NodeNames {
            gateway_if: "slbr7".into(),
            subnet: Ipv4Addr::new(10, 77, 7, 0),
            nft_table: "slicelab_7".into(),
            cgroup_parent: "x".into(),
        };
        let s = table_script(&n);
        assert!(s.contains("table inet slicelab_7"));
        assert!(s.contains("ip saddr 10.77.7.0/24 ip daddr != 10.77.7.0/24 masquerade"));
        assert!(s.contains("ip daddr 10.77.7.0/24 drop"));
        assert!(s.contains("type filter hook prerouting priority -300;"));
        assert!(s.contains("set sliver_ifs { type ifname; counter; }"));
        assert!(s.contains("    iifname . ip saddr @sliver_addrs accept\n"));
        assert!(s.contains("    iifname @sliver_ifs drop\n"));
        let e = antispoof_elems("pl_a", Some(Ipv4Addr::new(10, 77, 7, 2)));
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].set, SLIVER_ADDRS);
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 77, 7, 1));
    }

    #[test]
    fn net_dev_lines_are_parsed_by_interface() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n\
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n\
sl-pl_a: 5000 50 0 0 0 0 0 0 7000 70 0 0 0 0 0 0\n";
        let c = parse_net_dev(text, "sl-pl_a").unwrap();
        assert_eq!(
            (c.rx_bytes, c.rx_pkts, c.tx_bytes, c.tx_pkts),
            (5000, 50, 7000, 70)
        );
        assert!(parse_net_dev(text, "sl-pl").is_none());
        assert!(parse_net_dev(text, "eth0").is_none());
    }

    #[test]
    fn throttling_lowers_but_never_raises_the_rate() {
        assert_eq!(effective_rate(None, false), None);
        assert_eq!(effective_rate(Some(5_000_000), false), Some(5_000_000));
        assert_eq!(effective_rate(Some(5_000_000), true), Some(THROTTLE_RATE));
        assert_eq!(effective_rate(Some(10_000), true), Some(10_000));
        assert_eq!(effective_rate(None, true), Some(THROTTLE_RATE));
        let s = shaping_script(Some(5_000_000), false);
        assert!(s.starts_with("qdisc replace dev eth0 root handle 1: htb"));
        assert!(s.contains("class add dev eth0 parent 1: classid 1:1 htb rate 5000000bit ceil 5000000bit burst 6250 "));
        assert!(shaping_script(Some(1), true).starts_with("class change dev eth0"));
        assert!(shaping_script(None, true).starts_with("qdisc del dev eth0 root"));
    }
}

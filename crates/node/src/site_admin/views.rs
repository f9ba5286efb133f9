//! What the admin context shows: every sliver with its usage, limits and hold; one sliver's
//! processes; its open flows. Read from the runtime, the cgroups, the veth counters and
//! conntrack; rendered as plain text tables.

use std::fmt::Write as _;
use std::net::IpAddr;

use slicelab_model::Resources;

use crate::holds::Holds;
use crate::net;
use crate::plan::ObservedSliver;
use crate::runtime::{LinuxRuntime, Runtime};

fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

fn state(o: &ObservedSliver, holds: &Holds) -> String {
    if o.running {
        "running".into()
    } else if holds.get(&o.slice_name).is_some() {
        "held".into()
    } else if o.failure.is_some() {
        "failed".into()
    } else {
        "stopped".into()
    }
}

/// `slivers`: one line per sliver on the node.
pub fn slivers(rt: &LinuxRuntime, holds: &Holds) -> String {
    let list = match rt.list() {
        Ok(l) => l,
        Err(e) => return format!("cannot list slivers: {e}\n"),
    };
    let mut out = format!(
        "{:<24} {:<8} {:<15} {:>5} {:>10} {:>10} {:>10} {:>10}\n",
        "SLICE", "STATE", "ADDRESS", "PROCS", "CPU", "MEMORY", "SENT", "RECEIVED"
    );
    for o in &list {
        let cg = rt.cgroups();
        let cpu = cg
            .cpu_usage_ns(&o.slice_name)
            .map(|ns| format!("{:.1}s", ns as f64 / 1e9))
            .unwrap_or_else(|| "-".into());
        let mem = cg
            .mem_usage(&o.slice_name)
            .map(bytes)
            .unwrap_or_else(|| "-".into());
        let veth = net::veth_counters(&o.slice_name);
        let _ = writeln!(
            out,
            "{:<24} {:<8} {:<15} {:>5} {:>10} {:>10} {:>10} {:>10}",
            o.slice_name,
            state(o, holds),
            o.address
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            cg.pids(&o.slice_name).len(),
            cpu,
            mem,
            veth.map(|v| bytes(v.tx_bytes))
                .unwrap_or_else(|| "-".into()),
            veth.map(|v| bytes(v.rx_bytes))
                .unwrap_or_else(|| "-".into()),
        );
    }
    if list.is_empty() {
        out.push_str("(no slivers on this node)\n");
    }
    out
}

fn limits(r: &Resources) -> String {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    };
    add("cpu_share", r.cpu_share.map(|v| v.to_string()));
    add("cpu_pct", r.cpu_pct.map(|v| v.to_string()));
    add("mem_max", r.mem_max.map(bytes));
    add("pids_max", r.pids_max.map(|v| v.to_string()));
    add("disk_max", r.disk_max.map(bytes));
    add("net_max_rate", r.net_max_rate.map(|v| format!("{v}bit")));
    add("net_max_kbyte", r.net_max_kbyte.map(|v| v.to_string()));
    if parts.is_empty() {
        "(node defaults)".into()
    } else {
        parts.join(" ")
    }
}

/// `show SLICE`: the sliver's state, limits, usage and hold; `None` if there is no such sliver.
pub fn show(rt: &LinuxRuntime, holds: &Holds, slice: &str) -> Option<String> {
    let o = rt
        .list()
        .ok()?
        .into_iter()
        .find(|o| o.slice_name == slice)?;
    let cg = rt.cgroups();
    let mut out = String::new();
    let _ = writeln!(out, "slice      {slice}");
    let _ = writeln!(out, "state      {}", state(&o, holds));
    if let Some(f) = &o.failure {
        let _ = writeln!(out, "failure    {f}");
    }
    if let Some(h) = holds.get(slice) {
        let _ = writeln!(out, "hold       {}", h.message());
    }
    if let Some(a) = o.address {
        let _ = writeln!(out, "address    {a}");
    }
    if let Some(spec) = &o.spec {
        let _ = writeln!(out, "limits     {}", limits(&spec.resources));
        let persons: Vec<&str> = spec.keys.iter().map(|k| k.person.as_str()).collect();
        let mut persons = persons;
        persons.dedup();
        let _ = writeln!(out, "persons    {}", persons.join(", "));
    }
    let _ = writeln!(out, "processes  {}", cg.pids(slice).len());
    if let Some(ns) = cg.cpu_usage_ns(slice) {
        let _ = writeln!(out, "cpu        {:.1} s", ns as f64 / 1e9);
    }
    if let Some(m) = cg.mem_usage(slice) {
        let _ = writeln!(out, "memory     {}", bytes(m));
    }
    if let Some(v) = net::veth_counters(slice) {
        let _ = writeln!(
            out,
            "sent       {} in {} packets\nreceived   {} in {} packets",
            bytes(v.tx_bytes),
            v.tx_pkts,
            bytes(v.rx_bytes),
            v.rx_pkts
        );
    }
    let l = o.limits;
    let _ = writeln!(
        out,
        "limit hits memory={} pids={} disk={}",
        l.memory, l.pids, l.disk
    );
    if let Some(n) = &o.note {
        let _ = writeln!(out, "note       {n}");
    }
    Some(out)
}

/// `ps SLICE`: the processes in the sliver's cgroup (host pids), never their files.
pub fn ps(rt: &LinuxRuntime, slice: &str) -> String {
    let mut out = format!("{:>8} {:<5} {:>10}  COMMAND\n", "PID", "STATE", "RSS");
    for pid in rt.cgroups().pids(slice) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let state = field("State:").chars().next().unwrap_or('?');
        let rss = field("VmRSS:");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let mut cmd: String = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        if cmd.is_empty() {
            cmd = format!("[{}]", field("Name:"));
        }
        let cmd: String = cmd
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .take(200)
            .collect();
        let _ = writeln!(out, "{pid:>8} {state:<5} {rss:>10}  {cmd}");
    }
    out
}

/// `flows SLICE`: the sliver's connections as conntrack holds them now.
pub fn flows(rt: &LinuxRuntime, slice: &str) -> String {
    let Some(addr) = rt
        .list()
        .ok()
        .and_then(|l| l.into_iter().find(|o| o.slice_name == slice))
        .and_then(|o| o.address)
    else {
        return format!("slice {slice:?} has no sliver with an address on this node\n");
    };
    let entries = match slicelab_flows::snapshot() {
        Ok(e) => e,
        Err(e) => return format!("cannot read the connection table: {e}\n"),
    };
    let mine = IpAddr::V4(addr);
    let mut out = format!(
        "{:<5} {:<22} {:<22} {:>10} {:>10}\n",
        "PROTO", "FROM", "TO", "SENT", "RECEIVED"
    );
    let mut n = 0;
    for ct in entries
        .iter()
        .filter(|c| c.orig.src == mine || c.orig.dst == mine)
    {
        let proto = match ct.orig.proto {
            6 => "tcp".to_string(),
            17 => "udp".to_string(),
            1 => "icmp".to_string(),
            p => p.to_string(),
        };
        let end = |a: IpAddr, p: u16| {
            if p == 0 {
                a.to_string()
            } else {
                format!("{a}:{p}")
            }
        };
        let sent = ct.counters_orig.map(|c| bytes(c.bytes)).unwrap_or_default();
        let recv = ct
            .counters_reply
            .map(|c| bytes(c.bytes))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<5} {:<22} {:<22} {:>10} {:>10}",
            proto,
            end(ct.orig.src, ct.orig.sport),
            end(ct.orig.dst, ct.orig.dport),
            sent,
            recv
        );
        n += 1;
    }
    if n == 0 {
        out.push_str("(no open flows)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(limits(&Resources::default()), "(node defaults)");
        let r = Resources {
            cpu_share: Some(4),
            net_max_rate: Some(1_000_000),
            ..Default::default()
        };
        assert_eq!(limits(&r), "cpu_share=4 net_max_rate=1000000bit");
    }
}

//! The site's bandwidth cap on real slivers: three slivers with `net_share` 1, 2 and 3 each try
//! to send 50 Mbit/s of UDP through the node's uplink (a veth to a namespace of the test's own);
//! with `bwlimit` 30 Mbit/s they get 30 together (within 5%), split 1:2:3 (each within 10%);
//! with the cap cleared live the same senders get far more; cleanup leaves no qdisc or rule.
//!
//! Rates are measured at the receiver, skipping the first 1.5 s, as bits on the uplink (UDP
//! payload plus UDP, IP and Ethernet headers: what HTB counts).

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{root_or_skip, spec, TestNode, UplinkNs};
use slicelab_node::{LinuxRuntime, Runtime};

/// Not used by any other root test (their fixtures' indices are 1..=27).
const IDX: u8 = 31;
const PAYLOAD: usize = 1400;
/// Bytes of one datagram on the uplink: payload + UDP (8) + IPv4 (20) + Ethernet (14).
const WIRE: u64 = PAYLOAD as u64 + 42;
const SEND_RATE: u64 = 50_000_000;
const BWLIMIT: u64 = 30_000_000;
const SEND_FOR: Duration = Duration::from_secs(6);
/// The measured window, from the senders' start.
const WINDOW: (Duration, Duration) = (Duration::from_millis(1500), Duration::from_millis(5500));
const SHARES: [(&str, u32, u16); 3] = [
    ("bw_one", 1, 5301),
    ("bw_two", 2, 5302),
    ("bw_three", 3, 5303),
];

fn tc(args: &[&str]) -> String {
    let o = Command::new("tc").args(args).output().expect("tc");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A UDP sink in the uplink namespace: datagrams received within the window.
fn sink(
    up: &UplinkNs,
    port: u16,
    start: Arc<Barrier>,
    t0: Arc<std::sync::OnceLock<Instant>>,
) -> JoinHandle<u64> {
    let addr: SocketAddr = (up.peer, port).into();
    let sock_ready = Arc::new(Barrier::new(2));
    let ready = sock_ready.clone();
    let h = up.run(move || {
        let s = UdpSocket::bind(addr).expect("bind sink");
        let size: libc::c_int = 8 << 20;
        // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int of the given size.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        ready.wait();
        start.wait();
        let t0 = *t0.get().expect("start time");
        let mut buf = [0u8; 2048];
        let mut packets = 0u64;
        while t0.elapsed() < SEND_FOR + Duration::from_millis(500) {
            if s.recv(&mut buf).is_ok() {
                let at = t0.elapsed();
                if at >= WINDOW.0 && at < WINDOW.1 {
                    packets += 1;
                }
            }
        }
        packets
    });
    sock_ready.wait();
    h
}

/// A paced UDP sender inside the sliver whose init is `pid` (its network namespace only).
fn sender(pid: i32, to: SocketAddr, start: Arc<Barrier>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("sliver netns");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind sender");
        let pkt = [0x5au8; PAYLOAD];
        let pps = SEND_RATE as f64 / (PAYLOAD as f64 * 8.0);
        start.wait();
        let t0 = Instant::now();
        let mut sent = 0u64;
        while t0.elapsed() < SEND_FOR {
            let due = (t0.elapsed().as_secs_f64() * pps) as u64;
            // After a stall, catch up a little only (a burst would just be dropped).
            sent = sent.max(due.saturating_sub(64));
            while sent < due {
                let _ = s.send_to(&pkt, to);
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    })
}

/// One round: every sliver sends for `SEND_FOR`; bits/s each got on the uplink.
fn round(node: &TestNode, up: &UplinkNs) -> Vec<f64> {
    let start = Arc::new(Barrier::new(2 * SHARES.len() + 1));
    let t0 = Arc::new(std::sync::OnceLock::new());
    let sinks: Vec<_> = SHARES
        .iter()
        .map(|(_, _, port)| sink(up, *port, start.clone(), t0.clone()))
        .collect();
    let senders: Vec<_> = SHARES
        .iter()
        .map(|(slice, _, port)| {
            let pid = node.rt().init_of(slice).expect("running").pid;
            sender(pid, (up.peer, *port).into(), start.clone())
        })
        .collect();
    let _ = t0.set(Instant::now());
    start.wait();
    for s in senders {
        s.join().expect("sender");
    }
    let secs = (WINDOW.1 - WINDOW.0).as_secs_f64();
    sinks
        .into_iter()
        .map(|s| s.join().expect("sink") as f64 * WIRE as f64 * 8.0 / secs)
        .collect()
}

fn mbit(v: &[f64]) -> String {
    v.iter()
        .map(|r| format!("{:.2}", r / 1e6))
        .collect::<Vec<_>>()
        .join(" / ")
}

#[test]
fn bwlimit_caps_the_slivers_together_and_splits_by_net_share() {
    let Some(()) = root_or_skip("bwlimit_caps_the_slivers_together_and_splits_by_net_share") else {
        return;
    };
    if Command::new("tc").arg("-V").output().is_err() {
        eprintln!("SKIPPED: `tc` is not installed");
        return;
    }
    let mut node = TestNode::new(IDX);
    let up = UplinkNs::new(IDX);
    let uplink = format!("slt-up{IDX}h");
    node.rt = None;
    node.cfg.uplink = Some(uplink.clone());
    node.rt = Some(LinuxRuntime::new(node.cfg.clone()).expect("runtime with uplink"));
    for (slice, share, _) in SHARES {
        let mut s = spec(slice, Some("echo ready; exec sleep 1000000"));
        s.resources.net_share = Some(share);
        node.start(&s);
    }
    for (slice, _, _) in SHARES {
        node.wait_console(slice, "ready", Duration::from_secs(20));
    }

    // Capped: 30 Mbit/s together, 1:2:3.
    node.rt().apply_site_cap(Some(BWLIMIT)).expect("apply cap");
    assert!(tc(&["qdisc", "show", "dev", &uplink, "root"]).contains("qdisc htb 5ca: root"));
    let capped = round(&node, &up);
    let total: f64 = capped.iter().sum();
    eprintln!(
        "capped at 30 Mbit/s: {} Mbit/s, total {:.2}",
        mbit(&capped),
        total / 1e6
    );
    assert!(
        (total - BWLIMIT as f64).abs() <= 0.05 * BWLIMIT as f64,
        "total {:.2} Mbit/s is not within 5% of 30 ({})",
        total / 1e6,
        mbit(&capped)
    );
    let weights: u32 = SHARES.iter().map(|s| s.1).sum();
    for ((slice, share, _), got) in SHARES.iter().zip(&capped) {
        let want = total * f64::from(*share) / f64::from(weights);
        assert!(
            (got - want).abs() <= 0.10 * want,
            "{slice} (net_share {share}) got {:.2} Mbit/s, want {:.2} ± 10% ({})",
            got / 1e6,
            want / 1e6,
            mbit(&capped)
        );
    }

    // A net_share changed live: the sliver's class follows (1 → 3).
    let mut one = spec(SHARES[0].0, Some("echo ready; exec sleep 1000000"));
    one.resources.net_share = Some(3);
    node.rt().update(&one).expect("update");
    node.rt()
        .apply_site_cap(Some(BWLIMIT))
        .expect("re-apply cap");
    let classes = tc(&["class", "show", "dev", &uplink]);
    let addr = node.address(SHARES[0].0).octets()[3];
    let line = classes
        .lines()
        .find(|l| l.contains(&format!("5ca:{:x} ", 0x100 + u16::from(addr))))
        .unwrap_or_else(|| panic!("no class of {} in\n{classes}", SHARES[0].0));
    // Weights now 2 (the fallback class: the least share), 3, 2, 3: 28.5 Mbit/s × 3/10.
    assert!(
        line.contains("rate 8550Kbit") || line.contains("rate 8.55Mbit"),
        "{line}"
    );

    // Cleared live: nothing shapes the uplink, and the same senders get well past 30.
    node.rt().apply_site_cap(None).expect("clear cap");
    assert!(!tc(&["qdisc", "show", "dev", &uplink]).contains("htb 5ca:"));
    let free = round(&node, &up);
    let total: f64 = free.iter().sum();
    eprintln!("no cap: {} Mbit/s, total {:.2}", mbit(&free), total / 1e6);
    assert!(
        total > 1.2 * BWLIMIT as f64,
        "without a cap the senders got only {:.2} Mbit/s",
        total / 1e6
    );

    // Capped again, then the node torn down: no qdisc, chain or rule is left.
    node.rt()
        .apply_site_cap(Some(BWLIMIT))
        .expect("apply cap again");
    let names = node.names().clone();
    let rules = Command::new("nft")
        .args(["list", "chain", "inet", &names.nft_table, "sitecap"])
        .output()
        .expect("nft");
    assert!(String::from_utf8_lossy(&rules.stdout).contains("sl-bw_one/cap"));
    for (slice, _, _) in SHARES {
        node.rt().stop(slice).expect("stop");
    }
    let rules = Command::new("nft")
        .args(["list", "chain", "inet", &names.nft_table, "sitecap"])
        .output()
        .expect("nft");
    assert!(
        !String::from_utf8_lossy(&rules.stdout).contains("/cap"),
        "a stopped sliver's mark rule is left"
    );
    let rt = node.rt.take();
    drop(rt);
    slicelab_node::cleanup(node.dir.path(), &names, true).expect("cleanup");
    assert!(
        !tc(&["qdisc", "show", "dev", &uplink]).contains("htb 5ca:"),
        "cleanup left the cap's qdisc on the uplink"
    );
    assert!(!node.dir.path().join("sitecap.json").exists());
    drop(up);
    node.assert_no_leaks_after_cleanup();
}

//! Root integration tests of the capture engine (`slicelab_node::capture`) against the real
//! kernel and the real `tcpdump -r`. Each test builds its own small node: a network namespace
//! "node" holding two veths named like slivers' host ends (`sl-capa`, `sl-capb`), each peered into
//! a "sliver" namespace of its own, plus UDP/TCP servers on the node. Everything lives in those
//! namespaces, which the test deletes (and checks gone) when it ends, even when it fails.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use slicelab_model::{CaptureEnd, CaptureLimits, CaptureSummary};
use slicelab_node::capture::{run_capture, CaptureError};

const PREFIX: &str = "slcapt";

fn ready(test: &str) -> bool {
    if common::root_or_skip(test).is_none() {
        return false;
    }
    if Command::new("tcpdump").arg("--version").output().is_err() {
        eprintln!("SKIPPED {test}: `tcpdump` is not installed (scripts/deps.sh installs it)");
        return false;
    }
    true
}

/// Runs `f` on a thread that has joined network namespace `ns`; sockets made there stay there.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = File::open(&path).expect("netns file");
        nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn netns_list() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A node namespace with sliver A (10.99.1.2, host end `sl-capa` = 10.99.1.1) and sliver B
/// (10.99.2.2, host end `sl-capb` = 10.99.2.1), and servers on the node: UDP echo on 5001, UDP
/// sink on 5002, TCP sink on 5003.
struct Testbed {
    node: String,
    a: String,
    b: String,
    done: Arc<AtomicBool>,
    servers: Vec<JoinHandle<()>>,
}

impl Testbed {
    fn new(tag: &str) -> Testbed {
        let name = |role: &str| format!("{PREFIX}-{tag}-{role}");
        let (node, a, b) = (name("node"), name("a"), name("b"));
        for ns in [&node, &a, &b] {
            // A crashed earlier run may have left it.
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let mut t = Testbed {
            node,
            a,
            b,
            done: Arc::new(AtomicBool::new(false)),
            servers: Vec::new(),
        };
        for ns in [t.node.clone(), t.a.clone(), t.b.clone()] {
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            // No IPv6 chatter (router solicitations, MLD): the counts below stay exact.
            in_ns(&ns, || {
                for k in ["all", "default"] {
                    let _ =
                        std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1");
                }
            });
        }
        for (host, sliver, net) in [("sl-capa", t.a.clone(), 1), ("sl-capb", t.b.clone(), 2)] {
            let n = t.node.clone();
            ip(&[
                "-n", &n, "link", "add", host, "type", "veth", "peer", "name", "eth0",
            ]);
            ip(&["-n", &n, "link", "set", "eth0", "netns", &sliver]);
            ip(&[
                "-n",
                &n,
                "addr",
                "add",
                &format!("10.99.{net}.1/24"),
                "dev",
                host,
            ]);
            ip(&["-n", &n, "link", "set", host, "up"]);
            ip(&[
                "-n",
                &sliver,
                "addr",
                "add",
                &format!("10.99.{net}.2/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &sliver, "link", "set", "eth0", "up"]);
        }
        t.serve();
        t
    }

    fn serve(&mut self) {
        let (echo, sink, tcp) = in_ns(&self.node, || {
            (
                UdpSocket::bind("0.0.0.0:5001").expect("udp 5001"),
                UdpSocket::bind("0.0.0.0:5002").expect("udp 5002"),
                TcpListener::bind("0.0.0.0:5003").expect("tcp 5003"),
            )
        });
        for (sock, reply) in [(echo, true), (sink, false)] {
            let done = self.done.clone();
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            self.servers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !done.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        if reply {
                            let _ = sock.send_to(&buf[..n], from);
                        }
                    }
                }
            }));
        }
        let done = self.done.clone();
        tcp.set_nonblocking(true).expect("nonblocking");
        self.servers.push(std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let _ = io::copy(&mut s, &mut io::sink());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }));
    }

    /// From sliver A or B (`net` 1 or 2): `echo` UDP datagrams to the node's port 5001 from port
    /// 40000+net (each answered), `sink` to 5002, and one TCP connection to 5003.
    fn traffic(&self, net: u8, echo: usize, sink: usize, tcp: bool) {
        let ns = if net == 1 { &self.a } else { &self.b };
        in_ns(ns, move || {
            let node = format!("10.99.{net}.1");
            let s =
                UdpSocket::bind(format!("10.99.{net}.2:{}", 40000 + u16::from(net))).expect("bind");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let mut buf = [0u8; 64];
            for i in 0..echo {
                s.send_to(format!("echo{i:04}").as_bytes(), format!("{node}:5001"))
                    .expect("send");
                s.recv_from(&mut buf).expect("echo reply");
            }
            for i in 0..sink {
                s.send_to(format!("sink{i:04}").as_bytes(), format!("{node}:5002"))
                    .expect("send");
            }
            if tcp {
                let mut c = TcpStream::connect(format!("{node}:5003")).expect("tcp");
                c.write_all(b"hello over tcp").expect("tcp write");
            }
        });
    }

    /// Starts a capture on `ifname` in the node namespace, writing to `out`.
    fn capture<W: Write + Send + 'static>(
        &self,
        ifname: &str,
        limits: CaptureLimits,
        mut out: W,
        stop: Arc<AtomicBool>,
    ) -> JoinHandle<(Result<CaptureSummary, CaptureError>, W)> {
        let path = format!("/run/netns/{}", self.node);
        let ifname = ifname.to_string();
        std::thread::spawn(move || {
            let fd = File::open(&path).expect("netns file");
            nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
            let r = run_capture(&ifname, &limits, &mut out, &stop);
            (r, out)
        })
    }

    /// Deletes the namespaces and checks that nothing of this testbed is left.
    fn finish(mut self) {
        self.teardown();
        let left = netns_list();
        for ns in [&self.node, &self.a, &self.b] {
            assert!(!left.contains(ns.as_str()), "{ns} left behind: {left}");
        }
    }

    fn teardown(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        for h in self.servers.drain(..) {
            let _ = h.join();
        }
        for ns in [&self.node, &self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// An output the test can look at while the capture writes it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn len(&self) -> usize {
        self.0.lock().expect("lock").len()
    }
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().expect("lock").clone()
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Waits until the capture wrote its header: from then on the filter is attached.
fn wait_started(out: &Shared) {
    let t0 = Instant::now();
    while out.len() == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "capture did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `tcpdump -r FILE -nn` of `bytes`: the packet lines, as `(src, dst, rest)` of each IPv4 packet
/// (any other line is kept whole in `src`).
fn tcpdump(bytes: &[u8]) -> Vec<(String, String, String)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("out.pcapng");
    std::fs::write(&file, bytes).expect("write");
    let out = Command::new("tcpdump")
        .args(["-r", file.to_str().expect("utf-8"), "-nn", "-t"])
        .output()
        .expect("tcpdump");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tcpdump -r: {err}");
    assert!(!err.contains("truncated"), "tcpdump -r: {err}");
    let lines = parse_tcpdump(&String::from_utf8_lossy(&out.stdout));
    // Wireshark's reader too, where it is installed (not a dependency of the suite).
    if let Ok(t) = Command::new("tshark")
        .args([
            "-r",
            file.to_str().expect("utf-8"),
            "-T",
            "fields",
            "-e",
            "frame.number",
        ])
        .output()
    {
        let err = String::from_utf8_lossy(&t.stderr);
        assert!(t.status.success(), "tshark -r: {err}");
        let frames = String::from_utf8_lossy(&t.stdout).lines().count();
        assert_eq!(frames, lines.len(), "tshark and tcpdump disagree: {err}");
    }
    lines
}

fn parse_tcpdump(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .map(
            |l| match l.strip_prefix("IP ").and_then(|r| r.split_once(" > ")) {
                Some((src, rest)) => {
                    let (dst, proto) = rest.split_once(": ").unwrap_or((rest, ""));
                    (src.to_string(), dst.to_string(), proto.to_string())
                }
                None => (l.to_string(), String::new(), String::new()),
            },
        )
        .collect()
}

fn tally(lines: &[(String, String, String)]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for (s, d, _) in lines {
        *m.entry((s.clone(), d.clone())).or_insert(0) += 1;
    }
    m
}

fn limits(filter: &str, duration_s: u64) -> CaptureLimits {
    CaptureLimits {
        filter: filter.into(),
        duration: Duration::from_secs(duration_s),
        ..CaptureLimits::default()
    }
}

#[test]
fn capture_holds_exactly_the_sliver_s_matching_packets() {
    if !ready("capture_holds_exactly_the_sliver_s_matching_packets") {
        return;
    }
    let tb = Testbed::new("f");
    let out = Shared::default();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let h = tb.capture("sl-capa", limits("udp port 5001", 3), out.clone(), stop);
    wait_started(&out);
    // Both slivers talk: to the filtered port, to another port, over TCP.
    tb.traffic(1, 5, 3, true);
    tb.traffic(2, 5, 3, true);
    let (r, _) = h.join().expect("capture thread");
    let summary = r.expect("capture");
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(summary.ended, CaptureEnd::Duration);
    assert_eq!(summary.packets, 10, "{summary:?}");
    assert_eq!(summary.dropped, 0);
    let bytes = out.bytes();
    assert_eq!(summary.bytes, bytes.len() as u64);
    let lines = tcpdump(&bytes);
    let want = BTreeMap::from([
        (("10.99.1.2.40001".into(), "10.99.1.1.5001".into()), 5),
        (("10.99.1.1.5001".into(), "10.99.1.2.40001".into()), 5),
    ]);
    assert_eq!(tally(&lines), want, "{lines:#?}");
    assert!(
        lines.iter().all(|(_, _, p)| p == "UDP, length 8"),
        "{lines:#?}"
    );
    tb.finish();
}

#[test]
fn an_unfiltered_capture_sees_both_directions_of_every_protocol_of_one_sliver_only() {
    if !ready("an_unfiltered_capture_sees_both_directions_of_every_protocol_of_one_sliver_only") {
        return;
    }
    let tb = Testbed::new("u");
    let out = Shared::default();
    let stop = Arc::new(AtomicBool::new(false));
    let h = tb.capture("sl-capb", limits("", 2), out.clone(), stop);
    wait_started(&out);
    tb.traffic(1, 2, 2, true);
    tb.traffic(2, 2, 2, true);
    let (r, _) = h.join().expect("capture thread");
    assert_eq!(r.expect("capture").ended, CaptureEnd::Duration);
    let lines = tcpdump(&out.bytes());
    let ip: Vec<_> = lines.iter().filter(|(_, d, _)| !d.is_empty()).collect();
    assert!(
        ip.iter()
            .all(|(s, d, _)| s.starts_with("10.99.2.") && d.starts_with("10.99.2.")),
        "{lines:#?}"
    );
    let count = |s: &str, d: &str| ip.iter().filter(|(a, b, _)| a == s && b == d).count();
    assert_eq!(count("10.99.2.2.40002", "10.99.2.1.5001"), 2, "{lines:#?}");
    assert_eq!(count("10.99.2.1.5001", "10.99.2.2.40002"), 2, "{lines:#?}");
    assert_eq!(count("10.99.2.2.40002", "10.99.2.1.5002"), 2, "{lines:#?}");
    // The TCP connection: packets both ways to and from port 5003.
    assert!(
        ip.iter()
            .any(|(_, d, p)| d.ends_with(".5003") && p.starts_with("Flags [S]")),
        "{lines:#?}"
    );
    assert!(
        ip.iter()
            .any(|(s, _, p)| s.ends_with(".5003") && p.starts_with("Flags [S.]")),
        "{lines:#?}"
    );
    tb.finish();
}

#[test]
fn the_packet_and_byte_bounds_stop_a_capture() {
    if !ready("the_packet_and_byte_bounds_stop_a_capture") {
        return;
    }
    let tb = Testbed::new("p");
    let stop = Arc::new(AtomicBool::new(false));
    let bounded = |filter: &str| CaptureLimits {
        max_packets: 3,
        ..limits(filter, 30)
    };
    let out = Shared::default();
    let t0 = Instant::now();
    let h = tb.capture(
        "sl-capa",
        bounded("udp dst port 5002"),
        out.clone(),
        stop.clone(),
    );
    wait_started(&out);
    tb.traffic(1, 0, 10, false);
    let (r, _) = h.join().expect("capture thread");
    let summary = r.expect("capture");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert_eq!((summary.ended, summary.packets), (CaptureEnd::Packets, 3));
    let lines = tcpdump(&out.bytes());
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines.iter().all(|(_, d, _)| d == "10.99.1.1.5002"),
        "{lines:#?}"
    );

    // Each datagram is a 50-byte frame: an 84-byte Enhanced Packet Block.
    let out = Shared::default();
    let small = CaptureLimits {
        max_bytes: 1000,
        ..limits("udp dst port 5002", 30)
    };
    let h = tb.capture("sl-capa", small, out.clone(), stop);
    wait_started(&out);
    let header = out.len() as u64;
    tb.traffic(1, 0, 20, false);
    let (r, _) = h.join().expect("capture thread");
    let summary = r.expect("capture");
    assert_eq!(summary.ended, CaptureEnd::Bytes);
    assert_eq!(
        summary.packets,
        (1000 - header) / 84,
        "{summary:?}, header {header}"
    );
    assert_eq!(summary.bytes, out.len() as u64);
    assert!(
        summary.bytes <= 1000 && summary.bytes + 84 > 1000,
        "{summary:?}"
    );
    assert_eq!(tcpdump(&out.bytes()).len() as u64, summary.packets);
    tb.finish();
}

/// Accepts `room` bytes, then fails as a closed pipe does.
struct Closing {
    room: usize,
}

impl Write for Closing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.room {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        self.room -= buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_output_or_the_stop_flag_ends_it_as_client() {
    if !ready("a_closed_output_or_the_stop_flag_ends_it_as_client") {
        return;
    }
    let tb = Testbed::new("c");
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let h = tb.capture(
        "sl-capa",
        limits("udp", 30),
        Closing { room: 400 },
        stop.clone(),
    );
    std::thread::sleep(Duration::from_millis(300));
    tb.traffic(1, 0, 20, false);
    let (r, _) = h.join().expect("capture thread");
    let summary = r.expect("capture");
    assert_eq!(summary.ended, CaptureEnd::Client, "{summary:?}");
    assert!(summary.packets < 20, "{summary:?}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());

    // A live reader: `tcpdump -r -` prints packets while the capture runs; the stop flag ends it.
    let mut reader = Command::new("tcpdump")
        .args(["-r", "-", "-nn", "-t", "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    let stdin = reader.stdin.take().expect("stdin");
    let stdout = reader.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let lines = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let h = tb.capture("sl-capa", limits("udp port 5001", 60), stdin, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    tb.traffic(1, 3, 0, false);
    let mut seen = Vec::new();
    let t0 = Instant::now();
    while seen.len() < 6 && t0.elapsed() < Duration::from_secs(10) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(l);
        }
    }
    assert_eq!(seen.len(), 6, "{seen:#?}");
    assert!(!h.is_finished(), "the packets arrived only at the end");
    stop.store(true, Ordering::Relaxed);
    let (r, stdin) = h.join().expect("capture thread");
    drop(stdin);
    let summary = r.expect("capture");
    assert_eq!((summary.ended, summary.packets), (CaptureEnd::Client, 6));
    assert!(reader.wait().expect("tcpdump").success());
    lines.join().expect("reader thread");
    let parsed = parse_tcpdump(&(seen.join("\n") + "\n"));
    assert_eq!(tally(&parsed).values().sum::<usize>(), 6, "{seen:#?}");
    tb.finish();
}

#[test]
fn a_bad_filter_or_interface_is_refused_with_libpcap_s_message() {
    if !ready("a_bad_filter_or_interface_is_refused_with_libpcap_s_message") {
        return;
    }
    let tb = Testbed::new("e");
    let stop = Arc::new(AtomicBool::new(false));
    let h = tb.capture("sl-capa", limits("udp port", 5), Vec::new(), stop.clone());
    match h.join().expect("capture thread") {
        (Err(CaptureError::Filter { expr, message }), out) => {
            assert_eq!(expr, "udp port");
            assert!(message.contains("syntax error"), "{message}");
            assert!(out.is_empty(), "nothing is written for a refused capture");
        }
        (other, _) => panic!("{other:?}"),
    }
    // The node's veths are in the node's namespace, not the test's.
    let h = tb.capture("sl-nosuch", limits("", 5), Vec::new(), stop);
    assert!(matches!(
        h.join().expect("capture thread").0,
        Err(CaptureError::Interface { .. })
    ));
    let mut buf = Vec::new();
    let local = run_capture("sl-capa", &limits("", 1), &mut buf, &AtomicBool::new(false));
    assert!(
        matches!(local, Err(CaptureError::Interface { .. })),
        "{local:?}"
    );
    tb.finish();
}

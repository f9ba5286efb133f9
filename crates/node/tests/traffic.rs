//! Root integration test of the `slicelab-traffic` service: a real receiver and sender in two
//! slivers of one node instance, driven exactly as the SSH gateway drives the service (its
//! in-process future, fed a request line), over the path real nodes use between slivers — the
//! sender's traffic leaves its sliver, is DNAT-ed at the node's address by the run's temporary
//! port forward and enters the receiver's sliver. `iperf3` measures the same path in the same
//! test (through a node port of the receiver's `ports` tag); the service's throughput must be
//! within 3% of iperf3's receiver figure, with no loss on the idle path.
//!
//! Node index 90 (subnet 10.79.90.0/24, node ports 15201 and 61000–61999): no other test uses
//! them, so this file may run beside the other root tests.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use slicelab_model::tags::{PortForward, Protocol};
use slicelab_model::traffic::{
    Pattern, Proto, ReceiverResult, Role, SenderResult, TrafficLine, TrafficReport, TrafficRequest,
};
use slicelab_node::{LinuxRuntime, Runtime};
use slicelab_sshgw::ServiceIo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::task::JoinHandle;

const IDX: u8 = 90;
const TX: &str = "pl_trafsend";
const RX: &str = "pl_trafrecv";
/// The node port of the receiver's `ports` tag that iperf3 goes through.
const IPERF_NODE_PORT: u16 = 15201;
const IPERF_PORT: u16 = 5201;

/// One side of a run, as the gateway runs it: its exit status, output lines and error text.
struct Side {
    status: JoinHandle<u32>,
    lines: Lines<BufReader<DuplexStream>>,
    errors: JoinHandle<String>,
}

async fn start_side(rt: &Arc<LinuxRuntime>, slice: &str, req: &TrafficRequest) -> Side {
    let (mut in_w, in_r) = tokio::io::duplex(4096);
    let (out_w, out_r) = tokio::io::duplex(64 * 1024);
    let (err_w, mut err_r) = tokio::io::duplex(64 * 1024);
    let line = format!("{}\n", serde_json::to_string(req).unwrap());
    in_w.write_all(line.as_bytes()).await.unwrap();
    drop(in_w);
    let io = ServiceIo {
        input: Box::new(in_r),
        output: Box::new(out_w),
        errors: Box::new(err_w),
        terminal: false,
    };
    let status = tokio::spawn(slicelab_node::traffic::serve(
        rt.clone(),
        slice.to_string(),
        io,
    ));
    let errors = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err_r.read_to_string(&mut s).await;
        s
    });
    Side {
        status,
        lines: BufReader::new(out_r).lines(),
        errors,
    }
}

async fn next_line(side: &mut Side, what: &str) -> TrafficLine {
    let l = tokio::time::timeout(Duration::from_secs(60), side.lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{what}: no line within 60 s"))
        .expect("reading a line")
        .unwrap_or_else(|| panic!("{what}: output ended"));
    serde_json::from_str(&l).unwrap_or_else(|e| panic!("{what}: bad line {l:?}: {e}"))
}

async fn finish(side: Side, what: &str) -> u32 {
    let code = side.status.await.expect("service task");
    let errors = side.errors.await.unwrap_or_default();
    assert_eq!(code, 0, "{what} exited {code}; stderr: {errors}");
    code
}

fn request(role: Role, proto: Proto, rate: u64, duration: u32, size: u32) -> TrafficRequest {
    TrafficRequest {
        role,
        proto,
        rate,
        duration,
        pattern: Pattern::Constant,
        size,
        to: None,
    }
}

/// A whole run from `TX` to `RX`, the way `slicelab traffic` drives it.
async fn run_pair(rt: &Arc<LinuxRuntime>, target: &str, mut req: TrafficRequest) -> TrafficReport {
    req.role = Role::Receiver;
    let mut rx = start_side(rt, RX, &req).await;
    let port = match next_line(&mut rx, "receiver").await {
        TrafficLine::Listening { port } => port,
        other => panic!("receiver said {other:?}"),
    };
    assert!((61000..=61999).contains(&port), "port {port}");
    req.role = Role::Sender;
    req.to = Some(format!("{target}:{port}"));
    let mut tx = start_side(rt, TX, &req).await;
    let sent: SenderResult = match next_line(&mut tx, "sender").await {
        TrafficLine::Sender(s) => s,
        other => panic!("sender said {other:?}"),
    };
    let got: ReceiverResult = match next_line(&mut rx, "receiver").await {
        TrafficLine::Receiver(r) => r,
        other => panic!("receiver said {other:?}"),
    };
    finish(tx, "sender").await;
    finish(rx, "receiver").await;
    TrafficReport::new(&req, &sent, &got)
}

/// Runs `args` with the network namespace of `slice`'s sliver.
fn in_netns(node: &TestNode, slice: &str, args: &[&str]) -> Command {
    let pid = node.rt().init_of(slice).expect("running").pid;
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/proc/{pid}/ns/net")).args(args);
    c
}

/// iperf3's receiver figure for a 20 Mbit/s, 5 s UDP run from `TX` to `RX` through the node
/// port of `RX`'s `ports` tag.
fn iperf3_udp(node: &TestNode, target: &str, size: u32) -> f64 {
    let port = IPERF_PORT.to_string();
    let mut server = in_netns(node, RX, &["iperf3", "-s", "-1", "-p", &port])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    std::thread::sleep(Duration::from_millis(500));
    let node_port = IPERF_NODE_PORT.to_string();
    let len = size.to_string();
    let out = in_netns(
        node,
        TX,
        &[
            "iperf3", "-c", target, "-p", &node_port, "-u", "-b", "20M", "-t", "5", "-l", &len,
            "-J",
        ],
    )
    .output()
    .expect("iperf3 -c");
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "iperf3 -c: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("end.sum_received.bits_per_second")
}

fn has_iperf3() -> bool {
    Command::new("iperf3").arg("--version").output().is_ok()
}

#[test]
fn traffic_matches_iperf3_with_no_loss_on_an_idle_path() {
    let test = "traffic_matches_iperf3_with_no_loss_on_an_idle_path";
    let Some(()) = root_or_skip(test) else {
        return;
    };
    if !has_iperf3() {
        eprintln!("SKIPPED {test}: `iperf3` is not installed (scripts/deps.sh installs it)");
        return;
    }
    let node = TestNode::new(IDX);
    let empty = node.counts();
    let mut rx = spec(RX, Some("echo ready; exec sleep 100000"));
    rx.resources.ports = [Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .map(|protocol| PortForward {
            node_port: IPERF_NODE_PORT,
            sliver_port: IPERF_PORT,
            protocol,
        })
        .collect();
    node.start(&spec(TX, Some("echo ready; exec sleep 100000")));
    node.start(&rx);
    node.wait_console(TX, "ready", Duration::from_secs(10));
    node.wait_console(RX, "ready", Duration::from_secs(10));
    let with_slivers = node.counts();
    // Slivers reach each other only through the node's address, like slivers of two nodes.
    let target = node.names().gateway().to_string();
    let rt = Arc::new(LinuxRuntime::open(node.cfg.clone()).expect("runtime"));
    let tokio = tokio::runtime::Runtime::new().expect("tokio");

    // Bad requests are refused with the field named.
    let bad = tokio.block_on(async {
        let mut req = request(Role::Receiver, Proto::Udp, 20_000_000, 5, 1460);
        req.rate = 0;
        let mut side = start_side(&rt, RX, &req).await;
        let line = next_line(&mut side, "bad request").await;
        (line, side.status.await.unwrap())
    });
    assert!(
        matches!(&bad.0, TrafficLine::Error(e) if e.contains("rate")),
        "{bad:?}"
    );
    assert_eq!(bad.1, 1);

    // UDP at 20 Mbit/s for 5 s, then iperf3 over the same path.
    let udp = tokio.block_on(run_pair(
        &rt,
        &target,
        request(Role::Sender, Proto::Udp, 20_000_000, 5, 1460),
    ));
    eprintln!("udp: {udp:#?}");
    assert_eq!(
        node.counts(),
        with_slivers,
        "the run's forward was left behind"
    );
    let iperf = iperf3_udp(&node, &target, 1460);
    let ratio = udp.throughput / iperf;
    eprintln!(
        "throughput: slicelab traffic {:.0} bit/s, iperf3 {iperf:.0} bit/s, ratio {ratio:.4}",
        udp.throughput
    );
    assert!((ratio - 1.0).abs() <= 0.03, "not within 3% of iperf3");
    assert_eq!(udp.lost_packets, 0, "loss on an idle path");
    assert_eq!(udp.received_packets, udp.sent_packets);
    assert!(udp.sent_packets > 8000, "{} sent", udp.sent_packets);
    let rtt = udp.rtt_ms.expect("udp rtt");
    assert!(rtt.p50 > 0.0 && rtt.p50 <= rtt.p90 && rtt.p90 <= rtt.p99 && rtt.p99 < 1000.0);
    let jitter = udp.jitter_ms.expect("udp jitter");
    assert!(jitter.p50 >= 0.0 && jitter.p50 <= jitter.p99 && jitter.p99 < 500.0);
    assert!(udp.rfc3550_jitter_ms.is_some_and(|j| j < 100.0));

    // TCP: completes with sane numbers.
    let tcp = tokio.block_on(run_pair(
        &rt,
        &target,
        request(Role::Sender, Proto::Tcp, 20_000_000, 3, 64 * 1024),
    ));
    eprintln!("tcp: {tcp:#?}");
    assert_eq!(tcp.received_bytes, tcp.sent_bytes, "tcp lost bytes");
    let err = (tcp.throughput - 20e6).abs() / 20e6;
    assert!(err < 0.15, "tcp throughput {} bit/s", tcp.throughput);
    let rtt = tcp.rtt_ms.expect("tcp rtt");
    assert!(rtt.p50 > 0.0 && rtt.p99 < 1000.0);
    assert_eq!(
        node.counts(),
        with_slivers,
        "the run's forward was left behind"
    );

    drop(tokio);
    drop(rt);
    for s in [TX, RX] {
        node.rt().destroy(s).unwrap();
    }
    assert_eq!(node.counts(), empty, "destroy leaked kernel objects");
    node.assert_no_leaks_after_cleanup();
}

fn keygen(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let path = dir.join("id");
    let o = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "t@traffic.test",
            "-f",
        ])
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    (path, public.trim().to_string())
}

/// `ssh -s SLICE@127.0.0.1 slicelab-traffic` through the gateway at `port`, as `slicelab
/// traffic` runs it: the request on stdin, the lines on stdout.
fn ssh_side(port: u16, key: &std::path::Path, slice: &str) -> std::process::Child {
    Command::new("ssh")
        .args(["-p", &port.to_string(), "-i"])
        .arg(key)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-s",
            "--",
        ])
        .arg(format!("{slice}@127.0.0.1"))
        .arg("slicelab-traffic")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ssh")
}

fn send_request(child: &mut std::process::Child, req: &TrafficRequest) {
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{}", serde_json::to_string(req).unwrap()).expect("request");
}

#[test]
fn traffic_runs_through_the_ssh_gateway() {
    use std::io::BufRead;
    let test = "traffic_runs_through_the_ssh_gateway";
    let Some(()) = root_or_skip(test) else {
        return;
    };
    if Command::new("ssh").arg("-V").output().is_err() {
        eprintln!("SKIPPED {test}: the OpenSSH client is not installed");
        return;
    }
    let node = TestNode::new(IDX + 1);
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = keygen(keys.path());
    let with_key = |name: &str| {
        let mut s = spec(name, Some("echo ready; exec sleep 100000"));
        s.keys = vec![slicelab_model::sliver::SliverKey {
            person: "t@traffic.test".into(),
            key: public.clone(),
        }];
        s
    };
    let specs = [with_key(TX), with_key(RX)];
    for s in &specs {
        node.start(s);
        node.wait_console(&s.slice_name, "ready", Duration::from_secs(10));
    }
    let with_slivers = node.counts();
    let desired = slicelab_model::DesiredSlivers {
        node_id: 1,
        hostname: "traffic.test".into(),
        boot_state: slicelab_model::objects::BootState::Boot,
        revision: "r".into(),
        slivers: specs.to_vec(),
        staff: Vec::new(),
        bwlimit: None,
    };
    let shared = Arc::new(std::sync::RwLock::new(Some(desired)));
    let rt = Arc::new(LinuxRuntime::open(node.cfg.clone()).expect("runtime"));
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let gw = tokio
        .block_on(slicelab_sshgw::start(
            slicelab_sshgw::GatewayConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                keys.path().join("host_key"),
            ),
            Arc::new(slicelab_node::NodeAccess::new(
                shared,
                slicelab_node::site_admin::AdminContext {
                    rt: rt.clone(),
                    holds: slicelab_node::holds::Holds::open(node.dir.path()),
                    actions: slicelab_node::actions::ActionLog::open(node.dir.path()),
                },
            )),
        ))
        .expect("gateway");
    let port = gw.local_addr().port();

    let mut req = request(Role::Receiver, Proto::Udp, 5_000_000, 2, 1000);
    let mut rx = ssh_side(port, &key, RX);
    send_request(&mut rx, &req);
    let mut rx_lines = std::io::BufReader::new(rx.stdout.take().unwrap()).lines();
    let mut next = |what: &str| -> TrafficLine {
        let l = rx_lines
            .next()
            .unwrap_or_else(|| panic!("{what}: receiver output ended"))
            .expect("read");
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{what}: {l:?}: {e}"))
    };
    let TrafficLine::Listening { port: node_port } = next("listening") else {
        panic!("no listening line");
    };
    req.role = Role::Sender;
    req.to = Some(format!("{}:{node_port}", node.names().gateway()));
    let mut tx = ssh_side(port, &key, TX);
    send_request(&mut tx, &req);
    let out = tx.wait_with_output().expect("sender ssh");
    assert!(out.status.success(), "sender: {}", out.status);
    let sent: SenderResult = match serde_json::from_slice(&out.stdout).expect("sender line") {
        TrafficLine::Sender(s) => s,
        other => panic!("sender said {other:?}"),
    };
    let TrafficLine::Receiver(got) = next("result") else {
        panic!("no receiver result");
    };
    assert!(rx.wait().expect("receiver ssh").success());
    let report = TrafficReport::new(&req, &sent, &got);
    eprintln!("through the gateway: {report:#?}");
    assert_eq!(report.lost_packets, 0);
    assert!((report.throughput - 5e6).abs() / 5e6 < 0.05);
    assert!(report.rtt_ms.is_some() && report.jitter_ms.is_some());
    assert_eq!(
        node.counts(),
        with_slivers,
        "the run's forward was left behind"
    );

    // A client that goes away mid-run takes the forward and the program in the sliver with it.
    let mut req = request(Role::Receiver, Proto::Tcp, 1_000_000, 60, 1000);
    req.to = None;
    let mut rx = ssh_side(port, &key, RX);
    send_request(&mut rx, &req);
    let mut line = String::new();
    std::io::BufReader::new(rx.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("listening line");
    assert!(line.contains("listening"), "{line}");
    assert_ne!(node.counts(), with_slivers, "no forward while listening");
    let _ = rx.kill();
    let _ = rx.wait();
    wait_until(
        "the forward and the receiver to go",
        Duration::from_secs(10),
        || node.counts() == with_slivers,
    );

    // Another subsystem is not offered.
    let o = Command::new("ssh")
        .args(["-p", &port.to_string(), "-i"])
        .arg(&key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-s", "--", &format!("{RX}@127.0.0.1"), "slicelab-nope"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ssh");
    assert!(!o.status.success());

    tokio.block_on(gw.shutdown());
    drop(tokio);
    drop(rt);
    for s in [TX, RX] {
        node.rt().destroy(s).unwrap();
    }
    node.assert_no_leaks_after_cleanup();
}

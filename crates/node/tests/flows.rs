//! Packet auditing end to end: real slivers of two slices send TCP and UDP traffic to servers on
//! the node's uplink side; the node manager's conntrack auditor attributes every connection to its
//! slice and ships the records to a real central, which is killed in the middle of shipping and
//! restarted on the same database. Every connection must appear once, with the right slice and
//! its bytes, and the public lookup must name the right slice and PI — and nothing for an address
//! that saw no traffic.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::flows::LookupResult;
use slicelab_model::objects::NodeWithKey;
use slicelab_model::Flow;
use slicelab_node::Runtime;

const A: &str = "pl_fa";
const B: &str = "pl_fb";
const TCP_PORT: u16 = 9200;
const UDP_PORT: u16 = 9201;
/// What the test sends in all: the sinks stop after this much.
const TCP_CONNECTIONS: usize = 6;
const UDP_DATAGRAMS: usize = 30;

/// Runs `f` on a thread inside the network namespace of `slice`'s sliver: its traffic leaves with
/// the sliver's address, exactly as a program in the sliver would send it.
fn in_sliver<T: Send + 'static>(
    node: &TestNode,
    slice: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let pid = node.rt().init_of(slice).expect("sliver runs").pid;
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("sliver netns");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("sliver thread")
}

fn tcp_send(node: &TestNode, slice: &str, to: Ipv4Addr, bytes: usize) {
    in_sliver(node, slice, move || {
        let mut c = TcpStream::connect((to, TCP_PORT)).expect("connect");
        let chunk = vec![7u8; 16 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            c.write_all(&chunk[..n]).expect("write");
            left -= n;
        }
        c.shutdown(std::net::Shutdown::Write).expect("shutdown");
        // Wait for the sink to close: every byte was counted before the flow ends.
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
    });
}

fn udp_send(node: &TestNode, slice: &str, to: Ipv4Addr, datagrams: usize, size: usize) {
    in_sliver(node, slice, move || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("udp bind");
        let payload = vec![9u8; size];
        for _ in 0..datagrams {
            s.send_to(&payload, (to, UDP_PORT)).expect("send");
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

fn pending_flow_batches(state_dir: &Path) -> usize {
    std::fs::read_dir(state_dir.join("flows"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with("batch-") && n.ends_with(".json")
                })
                .count()
        })
        .unwrap_or(0)
}

/// What the test sent, per slice: TCP connections (payload bytes) and UDP datagrams.
struct Sent {
    tcp: Vec<(&'static str, Ipv4Addr, usize)>,
    udp: Vec<(&'static str, Ipv4Addr, usize, usize)>,
}

#[test]
fn every_connection_is_audited_once_and_the_lookup_names_the_slice() {
    let Some(()) = root_or_skip("every_connection_is_audited_once_and_the_lookup_names_the_slice")
    else {
        return;
    };
    let node = TestNode::new(16);
    let up = UplinkNs::new(16);
    // A second remote address on the uplink side, so each slice talks to its own remote.
    let remote_b = Ipv4Addr::new(10, 80, 16, 3);
    let o = std::process::Command::new("ip")
        .args([
            "-n",
            &up.name,
            "addr",
            "add",
            &format!("{remote_b}/24"),
            "dev",
            "eth0",
        ])
        .output()
        .expect("ip");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let remote_a = up.peer;
    let empty = node.counts();

    // Sinks on the uplink side: TCP (counts each connection's bytes) and UDP (counts datagrams).
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // Both sinks end by themselves (a thread inside a namespace keeps it, and its veth, alive).
    let tcp_sink = up.run(move || {
        let l = TcpListener::bind(("0.0.0.0", TCP_PORT)).expect("bind tcp sink");
        let _ = ready_tx.send(());
        let mut readers = Vec::new();
        for _ in 0..TCP_CONNECTIONS {
            let Ok((mut c, _)) = l.accept() else { break };
            readers.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }));
        }
        for r in readers {
            let _ = r.join();
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("tcp sink");
    let udp_sink = up.run(move || {
        let s = UdpSocket::bind(("0.0.0.0", UDP_PORT)).expect("bind udp sink");
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut buf = vec![0u8; 65536];
        let mut got = 0;
        while got < UDP_DATAGRAMS && Instant::now() < deadline {
            if s.recv_from(&mut buf).is_ok() {
                got += 1;
            }
        }
    });

    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let db = tempfile::tempdir().expect("tmp");
    let state_dir = node.dir.path().to_path_buf();
    tokio_rt.block_on(async {
        let central = start_central(db.path(), SocketAddr::from(([127, 0, 0, 1], 0))).await;
        let addr = central.addr;
        let base = format!("http://{addr}");
        let admin = admin_client(&base).await;
        let _: Value = admin
            .post("/sites", &json!({"login_base": "pl", "name": "PL", "max_slices": 5}))
            .await
            .expect("site");
        let _: Value = admin
            .post(
                "/persons",
                &json!({"email": "pi@pl.test", "first_name": "Pat", "last_name": "Eye",
                        "roles": ["pi"], "sites": ["pl"]}),
            )
            .await
            .expect("pi");
        let n: NodeWithKey = admin
            .post("/nodes", &json!({"hostname": "node1.pl.test", "site": "pl"}))
            .await
            .expect("node");
        for (s, what) in [(A, "crawler"), (B, "dns study")] {
            let _: Value = admin
                .post("/slices", &json!({"name": s, "description": what}))
                .await
                .expect("slice");
            let _: Value = admin
                .put(&format!("/slices/{s}/tags/initscript"), &json!({"value": "exec sleep 100000"}))
                .await
                .expect("initscript");
            let _: Value = admin
                .post(&format!("/slices/{s}/nodes"), &json!({"names": ["node1.pl.test"]}))
                .await
                .expect("add node");
        }
        let t_start = unix_now();
        let cfg = slicelab_node::Config {
            central: base.clone(),
            key: n.node_key.clone(),
            state_dir: state_dir.clone(),
            names: node.names().clone(),
            init_exe: Some(INIT_EXE.into()),
            reconcile_every: Duration::from_secs(1),
            usage_every: Duration::from_secs(1),
            flow_update_every: Duration::from_secs(2),
            ..Default::default()
        };
        let daemon = tokio::spawn(slicelab_node::run(cfg));
        let t0 = Instant::now();
        while node.rt().init_of(A).is_none() || node.rt().init_of(B).is_none() {
            assert!(t0.elapsed() < Duration::from_secs(20), "slivers never ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut sent = Sent { tcp: Vec::new(), udp: Vec::new() };

        // Traffic while central is up...
        let node_ref = &node;
        tokio::task::block_in_place(|| {
            for (slice, to, bytes) in [(A, remote_a, 100_000), (A, remote_a, 250_000), (B, remote_b, 60_000)] {
                tcp_send(node_ref, slice, to, bytes);
                sent.tcp.push((slice, to, bytes));
            }
            udp_send(node_ref, A, remote_a, 20, 500);
            sent.udp.push((A, remote_a, 20, 500));
        });
        // ...and central killed while the node is shipping it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        central.shutdown().await;
        tokio::task::block_in_place(|| {
            for (slice, to, bytes) in [(A, remote_a, 400_000), (B, remote_b, 30_000), (B, remote_b, 70_000)] {
                tcp_send(node_ref, slice, to, bytes);
                sent.tcp.push((slice, to, bytes));
            }
            udp_send(node_ref, B, remote_b, 10, 1000);
            sent.udp.push((B, remote_b, 10, 1000));
        });
        // Let the auditor see the UDP flows' counters in a dump, then bring central back.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let queued = pending_flow_batches(&state_dir);
        eprintln!("{queued} flow batches queued on disk while central was down");
        assert!(queued >= 1, "records taken while central was down are kept on disk");
        let central = start_central(db.path(), addr).await;
        let admin = admin_client(&base).await;
        let t0 = Instant::now();
        while pending_flow_batches(&state_dir) > 0 {
            assert!(t0.elapsed() < Duration::from_secs(30), "flow backlog never delivered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let flows = |slice: &str| {
            let admin = admin.clone();
            let q = format!("/flows?slice={slice}&from={}&to={}", t_start - 60, unix_now() + 60);
            async move { admin.get::<Vec<Flow>>(&q).await.expect("flows") }
        };
        let fa = flows(A).await;
        let fb = flows(B).await;
        for (slice, list) in [(A, &fa), (B, &fb)] {
            let tcp: Vec<&Flow> = list.iter().filter(|f| f.flow.proto == 6 && f.flow.dport == TCP_PORT).collect();
            let want: Vec<usize> = sent.tcp.iter().filter(|t| t.0 == slice).map(|t| t.2).collect();
            assert_eq!(tcp.len(), want.len(), "{slice}: every TCP connection once: {tcp:#?}");
            let mut got: Vec<&Flow> = tcp.clone();
            got.sort_by_key(|f| f.flow.tx_bytes);
            let mut want_sorted = want.clone();
            want_sorted.sort();
            for (f, payload) in got.iter().zip(want_sorted) {
                let r = &f.flow;
                assert_eq!(r.slice, slice);
                // A closed TCP connection lingers in conntrack (TIME_WAIT, 2 minutes) before its
                // final record; its interim record already carries the final counters.
                let headers = 52 * r.tx_pkts; // IPv4 + TCP with timestamps
                let est = r.tx_bytes as f64 - headers as f64;
                assert!(
                    (est / payload as f64 - 1.0).abs() <= 0.05,
                    "{slice}: sent {payload} payload bytes, conntrack counted {} bytes in {} packets",
                    r.tx_bytes,
                    r.tx_pkts
                );
                assert!(r.tx_bytes >= payload as u64);
                let expect_dst = sent.tcp.iter().find(|t| t.0 == slice).map(|t| t.1).expect("dst");
                assert_eq!(r.dst, std::net::IpAddr::V4(expect_dst));
                assert_eq!(r.src, std::net::IpAddr::V4(node.address(slice)), "pre-NAT source is the sliver");
                assert!(r.nat_src.is_some());
            }
            let udp: Vec<&Flow> = list.iter().filter(|f| f.flow.proto == 17 && f.flow.dport == UDP_PORT).collect();
            let want: Vec<&(&str, Ipv4Addr, usize, usize)> = sent.udp.iter().filter(|u| u.0 == slice).collect();
            assert_eq!(udp.len(), want.len(), "{slice}: every UDP flow once: {udp:#?}");
            for (f, w) in udp.iter().zip(&want) {
                assert_eq!(f.flow.tx_pkts, w.2 as u64, "{slice}: every datagram counted once");
                assert_eq!(f.flow.tx_bytes, (w.2 * (w.3 + 28)) as u64, "{slice}: IP bytes of the datagrams");
            }
        }

        // The public lookup: no login, each remote names the slice that talked to it.
        let anon = Client::new(&base, None);
        let window = format!("&from={}&to={}", t_start - 60, unix_now() + 60);
        for (remote, slice, what) in [(remote_a, A, "crawler"), (remote_b, B, "dns study")] {
            let r: LookupResult = anon
                .get(&format!("/lookup?node=node1.pl.test&remote={remote}{window}"))
                .await
                .expect("lookup");
            assert_eq!(r.matches.len(), 1, "{remote}: {r:?}");
            let m = &r.matches[0];
            assert_eq!((m.slice.as_str(), m.description.as_str()), (slice, what));
            assert_eq!(m.contacts.iter().map(|c| c.email.as_str()).collect::<Vec<_>>(), ["pi@pl.test"]);
        }
        let r: LookupResult = anon
            .get(&format!("/lookup?node=node1.pl.test&remote=10.80.16.9{window}"))
            .await
            .expect("lookup");
        assert!(r.matches.is_empty(), "an address that saw no traffic learns nothing: {r:?}");

        for s in [A, B] {
            let _: Value = admin
                .delete(&format!("/slices/{s}/nodes/node1.pl.test"))
                .await
                .expect("remove");
        }
        let t0 = Instant::now();
        while !node.rt().list().map(|l| l.is_empty()).unwrap_or(false) {
            assert!(t0.elapsed() < Duration::from_secs(15), "never destroyed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        daemon.abort();
        let _ = daemon.await;
        central.shutdown().await;
    });
    drop(tokio_rt);
    tcp_sink.join().expect("tcp sink");
    udp_sink.join().expect("udp sink");
    assert_eq!(node.counts(), empty, "destroy leaked kernel objects");
    drop(up);
    node.assert_no_leaks_after_cleanup();
}

//! Usage accounting end to end on a real central (in-process, SQLite): what a sliver does (CPU
//! seconds, bytes sent) is what central's usage API reports, including samples taken while
//! central was down (queued on disk, delivered after it is back, none counted twice).

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use slicelab_model::objects::NodeWithKey;
use slicelab_model::UsageSeries;
use slicelab_node::Runtime;

const SLICE: &str = "pl_acct";

/// Bytes received by the test namespace's interface: the sliver's traffic measured at the far
/// end of the wire (headers included, as interface counters count), independently of the node.
fn wire_rx_bytes(ns: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-s", "-j", "link", "show", "eth0"])
        .output()
        .expect("ip");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j");
    v[0]["stats64"]["rx"]["bytes"].as_u64().expect("rx bytes")
}

fn queued(state_dir: &Path) -> usize {
    std::fs::read_dir(state_dir.join("usage"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("batch-"))
                .count()
        })
        .unwrap_or(0)
}

/// Sends `mib` MiB of zeros from the sliver to the sink; returns once the sink has them all.
fn send(node: &TestNode, peer: std::net::Ipv4Addr, port: u16, mib: u32) {
    node.sh_ok(
        SLICE,
        &format!("dd if=/dev/zero bs=1048576 count={mib} 2>/dev/null | nc -w 5 {peer} {port}"),
    );
}

/// Burns about `secs` of CPU in the sliver.
fn burn(node: &TestNode, secs: u32) {
    let _ = node.sh(
        SLICE,
        &format!("timeout {secs} sh -c 'while :; do :; done'; true"),
    );
}

#[test]
fn usage_reaches_central_across_an_outage_without_double_counting() {
    let Some(()) = root_or_skip("usage_reaches_central_across_an_outage_without_double_counting")
    else {
        return;
    };
    let node = TestNode::new(15);
    let up = UplinkNs::new(15);
    let empty = node.counts();

    // A sink on the uplink side counting every byte of every connection.
    let sink_addr = SocketAddr::from((up.peer, 9100));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sink = up.run(move || {
        let l = TcpListener::bind(sink_addr).expect("bind sink");
        let _ = ready_tx.send(());
        let mut total = 0u64;
        for _ in 0..2 {
            let (mut c, _) = l.accept().expect("accept");
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
        total
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("sink");
    let wire0 = wire_rx_bytes(&up.name);

    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = tempfile::tempdir().unwrap();
    let state_dir = node.dir.path().to_path_buf();
    tokio_rt.block_on(async {
        let central = start_central(db.path(), SocketAddr::from(([127, 0, 0, 1], 0))).await;
        let addr = central.addr;
        let base = format!("http://{addr}");
        let admin = admin_client(&base).await;
        let _: Value = admin
            .post(
                "/sites",
                &json!({"login_base": "pl", "name": "PL", "max_slices": 3}),
            )
            .await
            .unwrap();
        let n: NodeWithKey = admin
            .post(
                "/nodes",
                &json!({"hostname": "node1.pl.test", "site": "pl"}),
            )
            .await
            .unwrap();
        let _: Value = admin
            .post("/slices", &json!({"name": SLICE}))
            .await
            .expect("slice");
        let _: Value = admin
            .put(
                &format!("/slices/{SLICE}/tags/initscript"),
                &json!({"value": "exec sleep 100000"}),
            )
            .await
            .expect("initscript tag");
        let _: Value = admin
            .post(
                &format!("/slices/{SLICE}/nodes"),
                &json!({"names": ["node1.pl.test"]}),
            )
            .await
            .expect("add node");
        let t_start = unix_now();

        let cfg = slicelab_node::Config {
            central: base.clone(),
            key: n.node_key.clone(),
            state_dir: state_dir.clone(),
            names: node.names().clone(),
            init_exe: Some(INIT_EXE.into()),
            reconcile_every: Duration::from_secs(1),
            usage_every: Duration::from_secs(1),
            ..Default::default()
        };
        let daemon = tokio::spawn(slicelab_node::run(cfg));
        let t0 = Instant::now();
        while node.rt().init_of(SLICE).is_none() {
            assert!(t0.elapsed() < Duration::from_secs(20), "sliver never ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // While central is up.
        let (node_ref, peer) = (&node, up.peer);
        tokio::task::block_in_place(|| {
            send(node_ref, peer, 9100, 8);
            burn(node_ref, 2);
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        central.shutdown().await;

        // While central is down: samples pile up on disk.
        tokio::task::block_in_place(|| {
            send(node_ref, peer, 9100, 8);
            burn(node_ref, 2);
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        let backlog = queued(&state_dir);
        eprintln!("{backlog} usage batches queued while central was down");
        assert!(backlog >= 3, "nothing queued: {backlog}");

        // Ground truth, after the work: the sliver's own cgroup and what the sink received.
        let sent = sink.join().expect("sink");
        let wire = wire_rx_bytes(&up.name) - wire0;
        let cpu_true = node.rt().cgroups().cpu_usage_ns(SLICE).unwrap() as f64 / 1e9;

        let central = start_central(db.path(), addr).await;
        let admin = admin_client(&base).await;
        let t0 = Instant::now();
        while queued(&state_dir) > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "backlog never delivered"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // One more round, so the last counters (taken after the work) are in.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let series: UsageSeries = admin
            .get(&format!(
                "/usage?slice={SLICE}&from={}&to={}&step=60",
                t_start - 120,
                unix_now() + 120
            ))
            .await
            .expect("usage");
        let tx = series.total_tx_bytes as f64;
        eprintln!(
            "generated {sent} payload bytes = {wire} bytes on the wire, {cpu_true:.2} CPU s; \
             central reports {} bytes ({:+.2}% of the wire), {:.2} CPU s ({:+.2}%)",
            series.total_tx_bytes,
            (tx / wire as f64 - 1.0) * 100.0,
            series.total_cpu_s,
            (series.total_cpu_s / cpu_true - 1.0) * 100.0
        );
        assert_eq!(sent, 16 << 20);
        // Interface counters include headers: compare with the same traffic counted at the far
        // end, and check it is the payload plus a few percent of headers.
        assert!((tx / wire as f64 - 1.0).abs() <= 0.05, "tx {tx} vs {wire}");
        assert!(
            (1.0..=1.10).contains(&(tx / sent as f64)),
            "tx {tx} vs payload {sent}"
        );
        assert!(
            (series.total_cpu_s / cpu_true - 1.0).abs() <= 0.10,
            "cpu {} vs {cpu_true}",
            series.total_cpu_s
        );
        assert!(cpu_true > 3.0, "the busy loops ran: {cpu_true}");

        let _: Value = admin
            .delete(&format!("/slices/{SLICE}/nodes/node1.pl.test"))
            .await
            .unwrap();
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
    assert_eq!(node.counts(), empty, "destroy leaked kernel objects");
    drop(up);
    node.assert_no_leaks_after_cleanup();
}

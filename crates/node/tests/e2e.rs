//! End to end on a real central (in-process, SQLite): a slice added to the node becomes a running
//! sliver within seconds and is reported; removing it destroys the sliver without leaks.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::objects::{LoginResponse, NodeWithKey};
use slicelab_model::sliver::Sliver;
use slicelab_node::Runtime;

async fn login(base: &str, email: &str, password: &str) -> Client {
    let anon = Client::new(base, None);
    let r: LoginResponse = anon
        .post(
            "/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
        .expect("login");
    anon.with_token(r.token)
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn slice_added_on_central_runs_and_removal_destroys_it() {
    let Some(()) = root_or_skip("slice_added_on_central_runs_and_removal_destroys_it") else {
        return;
    };
    let node = TestNode::new(8);
    let empty_node = node.counts();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = tempfile::tempdir().unwrap();
    tokio_rt.block_on(async {
        let central = slicelab_central::start(slicelab_central::Config {
            db_url: format!("sqlite://{}/central.db", db.path().display()),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_email: "admin@e2e.test".into(),
            admin_password: Some("admin-password-1".into()),
            tls: None,
        })
        .await
        .expect("central");
        let base = format!("http://{}", central.addr);
        let admin = login(&base, "admin@e2e.test", "admin-password-1").await;
        let _: Value = admin
            .post(
                "/sites",
                &json!({"login_base": "pl", "name": "PL", "max_slices": 3}),
            )
            .await
            .unwrap();
        let _: Value = admin
            .post(
                "/persons",
                &json!({"email": "pi@pl.test", "first_name": "P", "last_name": "I",
                        "password": "password-123", "roles": ["pi"], "sites": ["pl"]}),
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
        let pi = login(&base, "pi@pl.test", "password-123").await;
        let _: Value = pi
            .post("/slices", &json!({"name": "pl_e2e"}))
            .await
            .unwrap();

        let cfg = slicelab_node::Config {
            central: base.clone(),
            key: n.node_key.clone(),
            state_dir: node.dir.path().to_path_buf(),
            names: node.names().clone(),
            init_exe: Some(INIT_EXE.into()),
            reconcile_every: Duration::from_secs(1),
            ..Default::default()
        };
        let daemon = tokio::spawn(slicelab_node::run(cfg));

        let _: Value = pi
            .post("/slices/pl_e2e/nodes", &json!({"names": ["node1.pl.test"]}))
            .await
            .unwrap();
        let took = wait_for("the sliver to run", Duration::from_secs(15), || {
            node.rt().init_of("pl_e2e").is_some()
        })
        .await;
        eprintln!("slice added → sliver running in {took:?}");
        assert!(took < Duration::from_secs(10));
        assert_eq!(node.sh_ok("pl_e2e", "hostname").trim(), "pl_e2e");
        // The node reports it to central.
        let t0 = Instant::now();
        loop {
            let s: Vec<Sliver> = pi.get("/slices/pl_e2e/slivers").await.unwrap();
            if s.iter()
                .any(|s| s.state == slicelab_model::SliverState::Running)
            {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "central never saw it running: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let _: Value = pi
            .delete("/slices/pl_e2e/nodes/node1.pl.test")
            .await
            .unwrap();
        wait_for(
            "the sliver to be destroyed",
            Duration::from_secs(15),
            || node.rt().list().map(|l| l.is_empty()).unwrap_or(false),
        )
        .await;
        daemon.abort();
        let _ = daemon.await;
        central.shutdown().await;
    });
    drop(tokio_rt);
    assert_eq!(node.counts(), empty_node, "destroy leaked kernel objects");
    node.assert_no_leaks_after_cleanup();
}

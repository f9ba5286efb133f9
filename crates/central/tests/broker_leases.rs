//! The broker and leases: node selection by constraints, admission control of guarantees,
//! exclusive lease windows.
//!
//! Through the real HTTP API, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use std::time::Duration;

use common::{fixture, new_slice, status, Backend, TestCentral};
use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::{DesiredSlivers, Site, Slice};

both_backends!(
    broker_selects_live_nodes_and_explains_failures,
    admission_control_never_overcommits_guarantees,
    leases_give_exclusive_windows_that_end_on_time,
);

/// Adds a node at `site` and makes it live with a health report.
async fn live_node(
    tc: &TestCentral,
    host: &str,
    site: &str,
    region: &str,
    load: f64,
    mem_free_mb: u64,
) -> Client {
    let n: slicelab_model::NodeWithKey = tc
        .admin
        .post("/nodes", &json!({"hostname": host, "site": site, "region": region, "cpu_cores": 2, "mem_mb": 4096}))
        .await
        .unwrap();
    let c = Client::new(&tc.base, Some(n.node_key));
    let health = slicelab_model::NodeHealth {
        load1: load,
        mem_total_mb: 4096,
        mem_used_mb: 4096 - mem_free_mb,
        disk_total_mb: 100_000,
        disk_used_mb: 1000,
        uptime_s: 100,
        version: "test".into(),
    };
    c.report(&slicelab_model::NodeReport {
        seq: 1,
        slivers: vec![],
        health: Some(health),
        actions: Vec::new(),
    })
    .await
    .unwrap();
    c
}

async fn broker_selects_live_nodes_and_explains_failures(b: Backend) {
    use slicelab_placement::SelectResult;
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await; // its two nodes never reported: not live
    let _: Site = tc
        .admin
        .post("/sites", &json!({"login_base": "eth", "name": "ETH"}))
        .await
        .unwrap();
    live_node(
        &tc,
        "a1.princeton.test",
        "princeton",
        "north-america",
        0.5,
        2048,
    )
    .await;
    live_node(
        &tc,
        "a2.princeton.test",
        "princeton",
        "north-america",
        0.1,
        2048,
    )
    .await;
    live_node(&tc, "b1.mit.test", "mit", "north-america", 3.0, 512).await;
    live_node(&tc, "c1.eth.test", "eth", "europe", 1.0, 3000).await;
    new_slice(&f.pi_p, "princeton_b").await;
    let r: SelectResult = f
        .pi_p
        .post(
            "/slices/princeton_b/nodes/select",
            &json!({"select": "count=3, distinct=site"}),
        )
        .await
        .unwrap();
    assert_eq!(r.added.len(), 3);
    assert!(
        r.added.contains(&"a2.princeton.test".to_string()),
        "least loaded of its site: {:?}",
        r.added
    );
    assert!(!r.added.contains(&"a1.princeton.test".to_string()));
    assert!(
        !r.added.iter().any(|h| h.starts_with("node1.")),
        "never-seen nodes are not live"
    );
    // Same request again: the slice's nodes are not picked twice, so only one qualifies.
    let err = f
        .pi_p
        .post::<_, Value>(
            "/slices/princeton_b/nodes/select",
            &json!({"select": "count=2, min_free_mem=1G"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    let msg = err.to_string();
    assert!(
        msg.contains("4 live nodes") && msg.contains("1 not already in the slice"),
        "{msg}"
    );
    // JSON form, and a bad one.
    new_slice(&f.pi_p, "princeton_c").await;
    let r: SelectResult = f
        .pi_p
        .post(
            "/slices/princeton_c/nodes/select",
            &json!({"select": {"count": 1, "region": "europe"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.added, ["c1.eth.test"]);
    assert_eq!(r.slice.nodes, ["c1.eth.test"]);
    let err = f
        .pi_p
        .post::<_, Value>(
            "/slices/princeton_c/nodes/select",
            &json!({"select": "count=1, colour=red"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
    // Users outside the slice cannot ask the broker for it.
    assert_eq!(
        status(
            f.user_m
                .post::<_, Value>(
                    "/slices/princeton_c/nodes/select",
                    &json!({"select": "count=1"})
                )
                .await
        ),
        403
    );
    tc.stop().await;
}

async fn admission_control_never_overcommits_guarantees(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    live_node(&tc, "g.princeton.test", "princeton", "x", 0.1, 3000).await; // 2 cores = 200%
    new_slice(&f.pi_p, "princeton_g1").await;
    new_slice(&f.pi_p, "princeton_g2").await;
    let _: Value = f
        .pi_p
        .put(
            "/slices/princeton_g1/tags/cpu_reserve",
            &json!({"value": "150"}),
        )
        .await
        .unwrap();
    let _: Slice = f
        .pi_p
        .post(
            "/slices/princeton_g1/nodes",
            &json!({"names": ["g.princeton.test"]}),
        )
        .await
        .unwrap();
    let _: Value = f
        .pi_p
        .put(
            "/slices/princeton_g2/tags/cpu_reserve",
            &json!({"value": "60"}),
        )
        .await
        .unwrap();
    let err = f
        .pi_p
        .post::<_, Value>(
            "/slices/princeton_g2/nodes",
            &json!({"names": ["g.princeton.test"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(err.to_string().contains("210% of 200%"), "{err}");
    let g2: Slice = f.pi_p.get("/slices/princeton_g2").await.unwrap();
    assert!(g2.nodes.is_empty(), "refused admission adds nothing");
    // At 50 it fits; raising it afterwards on the node is refused too.
    let _: Value = f
        .pi_p
        .put(
            "/slices/princeton_g2/tags/cpu_reserve",
            &json!({"value": "50"}),
        )
        .await
        .unwrap();
    let _: Slice = f
        .pi_p
        .post(
            "/slices/princeton_g2/nodes",
            &json!({"names": ["g.princeton.test"]}),
        )
        .await
        .unwrap();
    let err = f
        .pi_p
        .put::<_, Value>(
            "/slices/princeton_g2/tags/cpu_reserve",
            &json!({"value": "51"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    let _: Value = f
        .pi_p
        .put(
            "/slices/princeton_g1/tags/mem_reserve",
            &json!({"value": "3G"}),
        )
        .await
        .unwrap();
    let err = f
        .pi_p
        .put::<_, Value>(
            "/slices/princeton_g2/tags/mem_reserve",
            &json!({"value": "2G"}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("memory guarantees"), "{err}");
    tc.stop().await;
}

async fn leases_give_exclusive_windows_that_end_on_time(b: Backend) {
    use slicelab_model::Lease;
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    let nk: slicelab_model::NodeWithKey = tc
        .admin
        .post(
            "/nodes",
            &json!({"hostname": "r.princeton.test", "site": "princeton", "reservable": true}),
        )
        .await
        .unwrap();
    new_slice(&f.pi_p, "princeton_la").await;
    new_slice(&f.pi_p, "princeton_lb").await;
    for s in ["princeton_la", "princeton_lb"] {
        let _: Slice = f
            .pi_p
            .post(
                &format!("/slices/{s}/nodes"),
                &json!({"names": ["r.princeton.test", "node1.princeton.test"]}),
            )
            .await
            .unwrap();
    }
    let node = Client::new(&tc.base, Some(nk.node_key.clone()));
    let runs = |d: &DesiredSlivers| {
        d.slivers
            .iter()
            .map(|s| (s.slice_name.clone(), s.run))
            .collect::<Vec<_>>()
    };
    // A reservable node runs nothing outside leases.
    let d = node
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        runs(&d),
        [
            ("princeton_la".into(), false),
            ("princeton_lb".into(), false)
        ]
    );

    let now = slicelab_central::now();
    let la: Lease = f
        .pi_p
        .post("/leases", &json!({"slice": "princeton_la", "node": "r.princeton.test", "start": now, "end": now + 3}))
        .await
        .unwrap();
    let err = f
        .pi_p
        .post::<_, Value>("/leases", &json!({"slice": "princeton_lb", "node": "r.princeton.test", "start": now + 2, "end": now + 10}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(
        err.to_string().contains("already leased to princeton_la"),
        "{err}"
    );
    // Back to back is not an overlap.
    let _: Lease = f
        .pi_p
        .post("/leases", &json!({"slice": "princeton_lb", "node": "r.princeton.test", "start": now + 3, "end": now + 60}))
        .await
        .unwrap();
    assert_eq!(
        status(f.pi_p.post::<_, Value>("/leases", &json!({"slice": "princeton_la", "node": "node1.princeton.test", "start": now, "end": now + 9})).await),
        422,
        "non-reservable nodes take no leases"
    );
    assert_eq!(
        status(f.pi_p.post::<_, Value>("/leases", &json!({"slice": "princeton_la", "node": "r.princeton.test", "start": now + 100, "end": now + 90})).await),
        422
    );
    assert_eq!(
        status(f.user_m.post::<_, Value>("/leases", &json!({"slice": "princeton_la", "node": "r.princeton.test", "start": now + 100, "end": now + 190})).await),
        403
    );
    // During the window only the leasing slice runs...
    let d = node
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        runs(&d),
        [
            ("princeton_la".into(), true),
            ("princeton_lb".into(), false)
        ]
    );
    // ...and the node learns of the end on time, without any write: the next lease takes over.
    let d = node
        .desired_slivers(Some(&d.revision), Duration::from_secs(10))
        .await
        .unwrap();
    let late = slicelab_central::now() - la.end;
    assert_eq!(
        runs(&d),
        [
            ("princeton_la".into(), false),
            ("princeton_lb".into(), true)
        ]
    );
    assert!(late <= 1, "lease end seen {late}s late");
    let leases: Vec<Lease> = f.pi_p.get("/leases?node=r.princeton.test").await.unwrap();
    assert_eq!(leases.len(), 1, "ended leases are not listed");
    // A non-reservable node ignores leases entirely.
    let d = Client::new(&tc.base, Some(f.node_p.node_key.clone()))
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(d.slivers.iter().all(|s| s.run));
    tc.stop().await;
}

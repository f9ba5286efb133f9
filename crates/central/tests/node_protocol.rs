//! The node protocol: long-poll of desired slivers and whom a change wakes, idempotent report
//! batches, nodes going down when silent and up when back.
//!
//! Through the real HTTP API, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, new_slice, Backend, TestCentral};
use serde_json::json;
use slicelab_client::Client;
use slicelab_model::objects::Page;
use slicelab_model::{DesiredSlivers, Event, Slice};

both_backends!(
    long_poll_returns_promptly_on_change,
    reports_are_idempotent,
    a_change_wakes_only_the_nodes_it_concerns,
    nodes_go_down_when_silent_and_up_when_back,
);

async fn desired_computations(tc: &TestCentral) -> i64 {
    let text = reqwest::get(format!("{}/metrics", tc.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("slicelab_desired_computations_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("metric present")
}

async fn long_poll_returns_promptly_on_change(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    new_slice(&f.pi_p, "princeton_poll").await;
    let node = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let first: DesiredSlivers = node
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(first.slivers.is_empty());
    // With the current revision the poll waits...
    let rev = first.revision.clone();
    let poll = tokio::spawn(async move {
        let t = Instant::now();
        let d = node
            .desired_slivers(Some(&rev), Duration::from_secs(30))
            .await;
        (d, t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!poll.is_finished(), "an unchanged node's poll must wait");
    // ...until a change to this node arrives through the API.
    let changed_at = Instant::now();
    let _: Slice = f
        .pi_p
        .post(
            "/slices/princeton_poll/nodes",
            &json!({"names": ["node1.princeton.test"]}),
        )
        .await
        .unwrap();
    let (d, waited) = poll.await.unwrap();
    let d = d.unwrap();
    let latency = changed_at.elapsed();
    assert_ne!(d.revision, first.revision);
    assert_eq!(d.slivers.len(), 1);
    assert_eq!(d.slivers[0].slice_name, "princeton_poll");
    assert!(
        latency < Duration::from_secs(2),
        "poll answered {latency:?} after the change"
    );
    assert!(waited >= Duration::from_millis(500));
    tc.stop().await;
}

async fn reports_are_idempotent(b: Backend) {
    use slicelab_model::{NodeReport, SliverState, SliverStatus};
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    new_slice(&f.pi_p, "princeton_rep").await;
    let node = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let report = |seq, state| NodeReport {
        seq,
        slivers: vec![SliverStatus {
            slice_name: "princeton_rep".into(),
            state,
            message: String::new(),
            address: Some("10.0.0.2".into()),
            throttled: None,
            limits: Default::default(),
        }],
        health: None,
        actions: Vec::new(),
    };
    assert_eq!(
        node.report(&report(1, SliverState::Creating))
            .await
            .unwrap()
            .acked_seq,
        1
    );
    assert_eq!(
        node.report(&report(2, SliverState::Running))
            .await
            .unwrap()
            .acked_seq,
        2
    );
    // A resent old batch is acknowledged but changes nothing.
    assert_eq!(
        node.report(&report(1, SliverState::Failed))
            .await
            .unwrap()
            .acked_seq,
        2
    );
    let slivers: Vec<slicelab_model::sliver::Sliver> =
        f.pi_p.get("/slices/princeton_rep/slivers").await.unwrap();
    assert_eq!(slivers.len(), 1);
    assert_eq!(slivers[0].state, SliverState::Running);
    let ev: Page<Event> = tc
        .admin
        .get("/events?actor=node:node1.princeton.test&object_type=slice")
        .await
        .unwrap();
    assert_eq!(ev.total, 2, "creating and running, once each");
    let n: slicelab_model::Node = tc.anon().get("/nodes/node1.princeton.test").await.unwrap();
    assert!(n.last_contact.is_some());
    tc.stop().await;
}

async fn a_change_wakes_only_the_nodes_it_concerns(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    new_slice(&f.pi_p, "princeton_w").await;
    let np = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let nm = Client::new(&tc.base, Some(f.node_m.node_key.clone()));
    let rp = np
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap()
        .revision;
    let rm = nm
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap()
        .revision;
    let pp =
        tokio::spawn(async move { np.desired_slivers(Some(&rp), Duration::from_secs(20)).await });
    let pm =
        tokio::spawn(async move { nm.desired_slivers(Some(&rm), Duration::from_secs(3)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = desired_computations(&tc).await;
    let _: Slice = f
        .pi_p
        .post(
            "/slices/princeton_w/nodes",
            &json!({"names": ["node1.princeton.test"]}),
        )
        .await
        .unwrap();
    let d = pp.await.unwrap().unwrap();
    assert_eq!(d.slivers.len(), 1);
    let after = desired_computations(&tc).await;
    assert_eq!(
        after - before,
        1,
        "only the concerned node's poll recomputed its slivers"
    );
    assert!(!pm.is_finished(), "the other node's poll keeps waiting");
    let d = pm.await.unwrap().unwrap();
    assert!(d.slivers.is_empty());
    tc.stop().await;
}

async fn nodes_go_down_when_silent_and_up_when_back(b: Backend) {
    use slicelab_model::{Node, NodeReport, NodeStatus};
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    let n: Node = tc.anon().get("/nodes/node1.mit.test").await.unwrap();
    assert_eq!(n.status, NodeStatus::New);
    let node = Client::new(&tc.base, Some(f.node_m.node_key.clone()));
    node.report(&NodeReport {
        seq: 1,
        slivers: vec![],
        health: None,
        actions: Vec::new(),
    })
    .await
    .unwrap();
    let n: Node = tc.anon().get("/nodes/node1.mit.test").await.unwrap();
    assert_eq!(n.status, NodeStatus::Up);
    // Central's sweep, run as if three minutes had passed (a second store on the same database).
    let store = slicelab_store::Store::open(&tc.db_url).await.unwrap();
    let later = slicelab_central::now() + 180;
    let down = store
        .sweep_down_nodes(later, slicelab_model::time::NODE_LIVE_WINDOW)
        .await
        .unwrap();
    assert_eq!(down, ["node1.mit.test"]);
    assert!(
        store.sweep_down_nodes(later, 120).await.unwrap().is_empty(),
        "a node goes down once"
    );
    store.close().await;
    let n: Node = tc.anon().get("/nodes/node1.mit.test").await.unwrap();
    assert_eq!(n.status, NodeStatus::Down);
    node.report(&NodeReport {
        seq: 2,
        slivers: vec![],
        health: None,
        actions: Vec::new(),
    })
    .await
    .unwrap();
    let n: Node = tc.anon().get("/nodes/node1.mit.test").await.unwrap();
    assert_eq!(n.status, NodeStatus::Up);
    let ev: Page<Event> = tc
        .admin
        .get("/events?object=node1.mit.test&object_type=node")
        .await
        .unwrap();
    let actions: Vec<_> = ev.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["node.up", "node.down", "node.up", "node.create"]);
    tc.stop().await;
}

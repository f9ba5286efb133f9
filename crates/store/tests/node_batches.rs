//! What nodes send: report, usage and flow batches are stored once per `seq` (a resend, or an
//! older batch, is acknowledged with the highest stored `seq` and changes nothing), counted per
//! node.
//!
//! Straight on the store, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use common::{assign, node, site, slice, Backend, TestStore, NOW};
use slicelab_model::{
    FlowBatch, FlowRecord, NodeReport, SliverState, SliverStatus, UsageBatch, UsageSample,
};
use slicelab_store::{EventFilter, FlowFilter, Paging, UsageScope};

both_backends!(
    reports_are_stored_once_per_seq,
    usage_is_counted_once_per_seq,
    flows_are_stored_once_per_seq_and_updated_in_place,
    flow_batches_mixing_new_and_stored_flows_store_each_once,
    node_actions_become_the_persons_events_once,
);

fn report(seq: i64, state: SliverState, message: &str) -> NodeReport {
    NodeReport {
        seq,
        slivers: vec![SliverStatus {
            slice_name: "pl_a".into(),
            state,
            message: message.into(),
            address: Some("10.77.0.2".into()),
            throttled: None,
            limits: Default::default(),
        }],
        health: None,
        actions: Vec::new(),
    }
}

async fn reports_are_stored_once_per_seq(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 5).await;
    let n1 = node(&s, "n1.pl.test", &st).await;
    let n2 = node(&s, "n2.pl.test", &st).await;
    let a = slice(&s, &st, "pl_a").await;
    assign(&s, &a, &[&n1, &n2]).await;
    let state_events = |host: &'static str| {
        let s = &s;
        async move {
            s.list_events(
                &EventFilter {
                    actor: Some(format!("node:{host}")),
                    ..Default::default()
                },
                Paging::default(),
            )
            .await
            .unwrap()
            .0
            .iter()
            .filter(|e| e.action == "sliver.state")
            .count()
        }
    };

    let running = report(1, SliverState::Running, "");
    assert_eq!(s.store_report(&n1, NOW, &running).await.unwrap(), 1);
    assert_eq!(state_events("n1.pl.test").await, 1);
    // The same seq again, even with other content, and an older seq: acknowledged, ignored.
    let again = report(1, SliverState::Failed, "boom");
    assert_eq!(s.store_report(&n1, NOW + 1, &again).await.unwrap(), 1);
    let older = report(0, SliverState::Failed, "boom");
    assert_eq!(s.store_report(&n1, NOW + 2, &older).await.unwrap(), 1);
    let slivers = s.slivers_of_node(n1.id).await.unwrap();
    assert_eq!(slivers.len(), 1);
    assert_eq!(
        (slivers[0].state, slivers[0].updated),
        (SliverState::Running, NOW)
    );
    assert_eq!(state_events("n1.pl.test").await, 1);

    // A newer batch applies, and a state change is an event.
    let failed = report(2, SliverState::Failed, "boom");
    assert_eq!(s.store_report(&n1, NOW + 3, &failed).await.unwrap(), 2);
    let slivers = s.slivers_of_node(n1.id).await.unwrap();
    assert_eq!(
        (slivers[0].state, slivers[0].message.as_str()),
        (SliverState::Failed, "boom")
    );
    assert_eq!(state_events("n1.pl.test").await, 2);

    // Counters are per node; a group commit acknowledges each report on its own.
    let acked = s
        .store_reports(
            NOW + 4,
            &[
                (&n2, &report(1, SliverState::Running, "")),
                (&n1, &report(2, SliverState::Running, "")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(acked, vec![1, 2]);
    assert_eq!(s.slivers_of_slice(a.id).await.unwrap().len(), 2);
    assert_eq!(
        s.slivers_of_node(n1.id).await.unwrap()[0].state,
        SliverState::Failed
    );
    s.close().await;
}

fn sample(slice: Option<&str>, time: i64, cpu_s: f64, tx_bytes: u64) -> UsageSample {
    UsageSample {
        slice: slice.map(str::to_string),
        time,
        interval_s: 10,
        cpu_s,
        mem_bytes: 1 << 20,
        disk_bytes: 1 << 20,
        tx_bytes,
        rx_bytes: tx_bytes / 2,
        tx_pkts: 10,
        rx_pkts: 5,
        spoofed_pkts: 0,
    }
}

async fn usage_is_counted_once_per_seq(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 5).await;
    let n1 = node(&s, "n1.pl.test", &st).await;
    let n2 = node(&s, "n2.pl.test", &st).await;
    let a = slice(&s, &st, "pl_a").await;
    let totals = |scope: UsageScope| {
        let s = &s;
        async move {
            let series = s
                .usage_series(&scope, NOW - 3600, NOW + 3600, 60)
                .await
                .unwrap();
            (series.total_cpu_s, series.total_tx_bytes)
        }
    };
    let slice_scope = || UsageScope::Slice {
        id: a.id,
        name: a.name.clone(),
    };

    let first = UsageBatch {
        seq: 1,
        samples: vec![
            sample(Some("pl_a"), NOW, 2.0, 1000),
            // A slice central no longer has: skipped, the node total still counts it.
            sample(Some("pl_gone"), NOW, 1.0, 10),
            sample(None, NOW, 5.0, 3000),
        ],
    };
    assert_eq!(s.store_usage(&n1, &first).await.unwrap(), 1);
    assert_eq!(s.store_usage(&n1, &first).await.unwrap(), 1);
    let older = UsageBatch {
        seq: 0,
        samples: vec![sample(Some("pl_a"), NOW, 50.0, 50)],
    };
    assert_eq!(s.store_usage(&n1, &older).await.unwrap(), 1);
    assert_eq!(totals(slice_scope()).await, (2.0, 1000));
    assert_eq!(totals(UsageScope::Platform).await, (5.0, 3000));

    let second = UsageBatch {
        seq: 2,
        samples: vec![sample(Some("pl_a"), NOW + 10, 1.5, 500)],
    };
    assert_eq!(s.store_usage(&n1, &second).await.unwrap(), 2);
    assert_eq!(totals(slice_scope()).await, (3.5, 1500));
    // Another node starts at 1 whatever n1's counter says.
    let other = UsageBatch {
        seq: 1,
        samples: vec![sample(None, NOW, 1.0, 7)],
    };
    assert_eq!(s.store_usage(&n2, &other).await.unwrap(), 1);
    assert_eq!(totals(UsageScope::Platform).await, (6.0, 3007));
    s.close().await;
}

fn flow(ct_id: u32, done: bool, tx_bytes: u64, end: i64) -> FlowRecord {
    FlowRecord {
        slice: "pl_a".into(),
        proto: 6,
        src: "10.77.0.2".parse().unwrap(),
        sport: 40_000,
        dst: "192.0.2.9".parse().unwrap(),
        dport: 443,
        nat_src: Some("198.51.100.1".parse().unwrap()),
        nat_sport: Some(40_000),
        ct_id,
        start: NOW,
        end,
        done,
        tx_bytes,
        tx_pkts: tx_bytes / 100,
        rx_bytes: tx_bytes * 2,
        rx_pkts: tx_bytes / 50,
    }
}

async fn flows_are_stored_once_per_seq_and_updated_in_place(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 5).await;
    let n1 = node(&s, "n1.pl.test", &st).await;
    slice(&s, &st, "pl_a").await;
    let stored = || {
        let s = &s;
        async move {
            let mut v: Vec<(u32, bool, u64)> = s
                .list_flows(&FlowFilter::default(), 100)
                .await
                .unwrap()
                .into_iter()
                .map(|f| (f.flow.ct_id, f.flow.done, f.flow.tx_bytes))
                .collect();
            v.sort();
            v
        }
    };

    let first = FlowBatch {
        seq: 1,
        flows: vec![flow(1, false, 1000, NOW + 30), flow(2, true, 50, NOW + 1)],
    };
    assert_eq!(s.store_flows(&n1, &first).await.unwrap(), 1);
    let resent = FlowBatch {
        seq: 1,
        flows: vec![flow(3, true, 9, NOW + 1)],
    };
    assert_eq!(s.store_flows(&n1, &resent).await.unwrap(), 1);
    assert_eq!(stored().await, vec![(1, false, 1000), (2, true, 50)]);

    // The long flow's last record updates its one row; within a batch the latest record wins.
    let second = FlowBatch {
        seq: 2,
        flows: vec![
            flow(1, true, 4000, NOW + 90),
            flow(1, false, 2000, NOW + 60),
        ],
    };
    assert_eq!(s.store_flows(&n1, &second).await.unwrap(), 2);
    assert_eq!(stored().await, vec![(1, true, 4000), (2, true, 50)]);
    assert_eq!(s.store_flows(&n1, &first).await.unwrap(), 2);
    assert_eq!(stored().await, vec![(1, true, 4000), (2, true, 50)]);

    // A batch of new flows only (PostgreSQL's plain insert), then one mixing a new flow with an
    // update (its upsert).
    let third = FlowBatch {
        seq: 3,
        flows: vec![flow(4, false, 10, NOW + 5)],
    };
    assert_eq!(s.store_flows(&n1, &third).await.unwrap(), 3);
    let fourth = FlowBatch {
        seq: 4,
        flows: vec![flow(4, true, 20, NOW + 9), flow(5, true, 7, NOW + 2)],
    };
    assert_eq!(s.store_flows(&n1, &fourth).await.unwrap(), 4);
    assert_eq!(
        stored().await,
        vec![(1, true, 4000), (2, true, 50), (4, true, 20), (5, true, 7)]
    );

    // A node's flows go with it (a trigger on both backends: migrations 0012 and 0014).
    let n2 = node(&s, "n2.pl.test", &st).await;
    let other = FlowBatch {
        seq: 1,
        flows: vec![flow(1, true, 3, NOW + 1)],
    };
    assert_eq!(s.store_flows(&n2, &other).await.unwrap(), 1);
    s.delete_node("admin", NOW, &n1).await.unwrap();
    assert_eq!(stored().await, vec![(1, true, 3)]);
    s.close().await;
}

/// Larger batches mixing new flows with updates of stored ones, in any order (on PostgreSQL the
/// batch's `COPY` meets a stored flow part-way, is rolled back and the batch split into new
/// flows and upserts), and a conntrack id reused with a new start (a new flow).
async fn flow_batches_mixing_new_and_stored_flows_store_each_once(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 5).await;
    let n1 = node(&s, "n1.pl.test", &st).await;
    slice(&s, &st, "pl_a").await;
    let at = |ct: u32, start: i64, done: bool, tx: u64| FlowRecord {
        start,
        nat_src: if ct.is_multiple_of(3) {
            None
        } else {
            flow(ct, done, tx, 0).nat_src
        },
        nat_sport: if ct.is_multiple_of(3) {
            None
        } else {
            Some(40_000)
        },
        ..flow(ct, done, tx, start + 60)
    };
    let stored = || {
        let s = &s;
        async move {
            let mut v: Vec<(u32, i64, bool, u64, bool)> = s
                .list_flows(&FlowFilter::default(), 1000)
                .await
                .unwrap()
                .into_iter()
                .map(|f| {
                    let r = f.flow;
                    (r.ct_id, r.start, r.done, r.tx_bytes, r.nat_src.is_some())
                })
                .collect();
            v.sort();
            v
        }
    };
    let mut want = Vec::new();
    let first: Vec<FlowRecord> = (1..=50)
        .map(|ct| at(ct, NOW + i64::from(ct), false, u64::from(ct)))
        .collect();
    assert_eq!(
        s.store_flows(
            &n1,
            &FlowBatch {
                seq: 1,
                flows: first
            }
        )
        .await
        .unwrap(),
        1
    );
    // New flows that started before the stored ones (so they come first), updates of 25
    // stored flows, and flow 1's id again with a later start.
    let mut second: Vec<FlowRecord> = (51..=85)
        .map(|ct| at(ct, NOW - i64::from(ct), true, 7))
        .collect();
    second.extend(
        (10..=34)
            .rev()
            .map(|ct| at(ct, NOW + i64::from(ct), true, 1000 + u64::from(ct))),
    );
    second.push(at(1, NOW + 500, true, 5));
    assert_eq!(
        s.store_flows(
            &n1,
            &FlowBatch {
                seq: 2,
                flows: second.clone()
            }
        )
        .await
        .unwrap(),
        2
    );
    for ct in 1..=50u32 {
        let (done, tx) = if (10..=34).contains(&ct) {
            (true, 1000 + u64::from(ct))
        } else {
            (false, u64::from(ct))
        };
        want.push((ct, NOW + i64::from(ct), done, tx, !ct.is_multiple_of(3)));
    }
    for ct in 51..=85u32 {
        want.push((ct, NOW - i64::from(ct), true, 7, !ct.is_multiple_of(3)));
    }
    want.push((1, NOW + 500, true, 5, true));
    want.sort();
    assert_eq!(stored().await, want);
    // Resent: acknowledged, nothing changes; then a batch of new flows only goes in as usual.
    assert_eq!(
        s.store_flows(
            &n1,
            &FlowBatch {
                seq: 2,
                flows: second
            }
        )
        .await
        .unwrap(),
        2
    );
    let third: Vec<FlowRecord> = (86..=95).map(|ct| at(ct, NOW + 900, true, 1)).collect();
    assert_eq!(
        s.store_flows(
            &n1,
            &FlowBatch {
                seq: 3,
                flows: third
            }
        )
        .await
        .unwrap(),
        3
    );
    want.extend((86..=95u32).map(|ct| (ct, NOW + 900, true, 1, !ct.is_multiple_of(3))));
    want.sort();
    assert_eq!(stored().await, want);
    s.close().await;
}

/// What persons did through a node's services (site_admin, captures) becomes events with the
/// person as actor, on the slice (or the node), once per batch like everything else.
async fn node_actions_become_the_persons_events_once(b: Backend) {
    use slicelab_model::sliver::{NodeAction, NodeActionKind};
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 5).await;
    let n1 = node(&s, "n1.pl.test", &st).await;
    let a = slice(&s, &st, "pl_a").await;
    assign(&s, &a, &[&n1]).await;
    let mut r = report(1, SliverState::Stopped, "stopped by tech@pl.test");
    r.actions = vec![
        NodeAction {
            at: NOW - 1,
            person: "tech@pl.test".into(),
            kind: NodeActionKind::SliverStop,
            slice: Some("pl_a".into()),
            detail: json_object(serde_json::json!({"reason": "eats the uplink"})),
        },
        NodeAction {
            at: NOW,
            person: "tech@pl.test".into(),
            kind: NodeActionKind::AdminCommand,
            slice: None,
            detail: json_object(serde_json::json!({"command": "log"})),
        },
        NodeAction {
            at: NOW,
            person: "tech@pl.test".into(),
            kind: NodeActionKind::SliverCapture,
            slice: Some("pl_gone".into()),
            detail: json_object(serde_json::json!({"huge": "x".repeat(5000)})),
        },
    ];
    assert_eq!(s.store_report(&n1, NOW, &r).await.unwrap(), 1);
    assert_eq!(s.store_report(&n1, NOW + 1, &r).await.unwrap(), 1, "resent");
    let events = s
        .list_events(
            &EventFilter {
                actor: Some("person:tech@pl.test".into()),
                ..Default::default()
            },
            Paging::default(),
        )
        .await
        .unwrap()
        .0;
    assert_eq!(events.len(), 3, "{events:?}");
    let stop = events
        .iter()
        .find(|e| e.action == "sliver.admin_stop")
        .expect("the stop");
    assert_eq!(
        (stop.object_type.as_str(), stop.object_name.as_str()),
        ("slice", "pl_a")
    );
    assert_eq!(stop.detail["reason"], "eats the uplink");
    assert_eq!(stop.detail["node"], "n1.pl.test");
    let log = events
        .iter()
        .find(|e| e.action == "node.site_admin")
        .expect("the command");
    assert_eq!(
        (log.object_type.as_str(), log.object_name.as_str()),
        ("node", "n1.pl.test")
    );
    assert_eq!(log.detail["command"], "log");
    let cap = events
        .iter()
        .find(|e| e.action == "sliver.capture")
        .expect("the capture");
    assert_eq!(
        cap.object_type, "node",
        "a slice central lacks: on the node"
    );
    assert_eq!(cap.detail["slice"], "pl_gone");
    assert!(cap.detail.get("huge").is_none(), "over 4 KiB is left out");
}

fn json_object(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

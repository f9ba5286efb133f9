//! Several central replicas on one database: change notifications reach another store's listener
//! (and a lost listener connection says so), one leader at a time, periodic jobs run at once by
//! two replicas do their work once, and rate allowances are shared.
//!
//! Each test opens a second `Store` on the test's database, as a second central would.
//! Notifications and leadership exist on PostgreSQL only; the jobs and allowances run on both.

mod common;

use std::time::Duration;

use common::{event_count, node, site, slice, Backend, TestStore, NOW};
use slicelab_model::{FlowBatch, FlowRecord, UsageBatch, UsageSample};
use slicelab_store::{Allowance, EventFilter, Heard, Paging, Store, Take, UsageScope};

both_backends!(
    notifications_reach_the_other_replica,
    one_leader_at_a_time,
    two_sweeps_at_once_mark_a_node_down_once,
    two_rollups_at_once_fold_each_sample_once,
    two_flow_expiries_at_once_count_each_flow_once,
    rate_allowances_are_shared,
);

async fn second(s: &TestStore) -> Store {
    Store::open(&s.url).await.expect("second store opens")
}

async fn notifications_reach_the_other_replica(b: Backend) {
    let s = TestStore::open(b).await;
    let other = second(&s).await;
    let Some(mut heard) = other.change_listener().await.expect("listener") else {
        // SQLite: one process, nothing to tell; notifying is a no-op.
        assert!(s.change_listener().await.unwrap().is_none());
        s.notify_changes("all").await.expect("no-op");
        other.close().await;
        s.close().await;
        return;
    };
    s.notify_changes("a n1.test n2.test").await.expect("notify");
    let got = tokio::time::timeout(Duration::from_secs(5), heard.next())
        .await
        .expect("heard within 5 s")
        .expect("listener works");
    assert_eq!(got, Heard::Payload("a n1.test n2.test".into()));
    // Too long for PostgreSQL: refused before it is sent.
    assert!(s.notify_changes(&"x".repeat(8000)).await.is_err());

    // The listener's connection dies (a server restart, a network cut): it says so once it has
    // connected again, since notifications sent meanwhile are lost, and then hears again.
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'slicelab-central-listener' AND datname = current_database()",
    )
    .fetch_one(&mut *pg(&s).await)
    .await
    .expect("terminate the listener");
    assert_eq!(killed, 1);
    let mut reconnected = false;
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(5), heard.next()).await {
            Ok(Ok(Heard::Reconnected)) => {
                reconnected = true;
                break;
            }
            // The server's goodbye may arrive as an error first; the next call reconnects.
            Ok(Err(_)) => continue,
            other => panic!("expected a reconnection, got {other:?}"),
        }
    }
    assert!(reconnected);
    s.notify_changes("b all").await.expect("notify");
    let got = tokio::time::timeout(Duration::from_secs(5), heard.next())
        .await
        .expect("heard within 5 s")
        .expect("listener works");
    assert_eq!(got, Heard::Payload("b all".into()));
    drop(heard);
    other.close().await;
    s.close().await;
}

/// A plain connection to the test's database.
async fn pg(s: &TestStore) -> Box<sqlx::PgConnection> {
    use sqlx::Connection;
    Box::new(
        sqlx::PgConnection::connect(&s.url)
            .await
            .expect("connect to PostgreSQL"),
    )
}

async fn one_leader_at_a_time(b: Backend) {
    let s = TestStore::open(b).await;
    let other = second(&s).await;
    let Some(mut a) = s.leader_lock().await.expect("lock connection") else {
        // SQLite: one process, always the leader: no lock to take.
        assert!(other.leader_lock().await.unwrap().is_none());
        other.close().await;
        s.close().await;
        return;
    };
    let mut b = other.leader_lock().await.unwrap().expect("PostgreSQL");
    assert!(a.try_acquire().await.unwrap());
    assert!(!b.try_acquire().await.unwrap(), "the lock is taken");
    assert!(a.still_held().await.unwrap());
    assert!(!b.still_held().await.unwrap());
    a.release().await;
    assert!(
        b.try_acquire().await.unwrap(),
        "released: the other takes it"
    );
    // The holder's connection dies: the lock goes with it, and the holder can tell.
    let mut a = s.leader_lock().await.unwrap().expect("PostgreSQL");
    assert!(!a.try_acquire().await.unwrap());
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .execute(&mut *pg(&s).await)
    .await
    .expect("terminate the holder");
    let mut lost = false;
    for _ in 0..50 {
        if !b.still_held().await.unwrap_or(false) {
            lost = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        lost,
        "a holder whose session ended no longer holds the lock"
    );
    assert!(a.try_acquire().await.unwrap(), "free again");
    a.release().await;
    other.close().await;
    s.close().await;
}

async fn two_sweeps_at_once_mark_a_node_down_once(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 5).await;
    let mut nodes = Vec::new();
    for i in 0..20 {
        let n = node(&s, &format!("n{i}.pl.test"), &st).await;
        s.touch_node(&n, NOW - 1000).await.expect("up");
        nodes.push(n);
    }
    let other = second(&s).await;
    let before = event_count(&s).await;
    let (x, y) = tokio::join!(
        s.sweep_down_nodes(NOW, 120),
        other.sweep_down_nodes(NOW, 120)
    );
    let (x, y) = (x.expect("sweep"), y.expect("sweep"));
    assert_eq!(
        x.len() + y.len(),
        nodes.len(),
        "each node once: {x:?} {y:?}"
    );
    assert_eq!(event_count(&s).await - before, nodes.len() as i64);
    let (events, _) = s
        .list_events(
            &EventFilter::default(),
            Paging {
                limit: 1000,
                offset: 0,
            },
        )
        .await
        .expect("events");
    let downs = events.iter().filter(|e| e.action == "node.down").count();
    assert_eq!(downs, nodes.len());
    other.close().await;
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

async fn two_rollups_at_once_fold_each_sample_once(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 5).await;
    let n = node(&s, "n1.pl.test", &st).await;
    slice(&s, &st, "pl_a").await;
    let t0 = (NOW / 3600) * 3600 - 2 * 86_400;
    let samples = (0..500)
        .map(|i| sample(Some("pl_a"), t0 + 10 * i, 1.0, 100))
        .collect();
    s.store_usage(&n, &UsageBatch { seq: 1, samples })
        .await
        .expect("usage");
    let slice_total = || async {
        let sl = s.slice("pl_a").await.expect("slice");
        let u = s
            .usage_series(
                &UsageScope::Slice {
                    id: sl.id,
                    name: sl.name,
                },
                0,
                NOW + 10,
                3600,
            )
            .await
            .expect("series");
        (u.total_cpu_s, u.total_tx_bytes)
    };
    assert_eq!(slice_total().await, (500.0, 50_000));
    let other = second(&s).await;
    let (x, y) = tokio::join!(s.rollup_usage(NOW), other.rollup_usage(NOW));
    assert_eq!(
        x.expect("rollup") + y.expect("rollup"),
        500,
        "each sample once"
    );
    assert_eq!(
        slice_total().await,
        (500.0, 50_000),
        "no sample counted twice"
    );
    other.close().await;
    s.close().await;
}

fn flow(ct_id: u32, tx_bytes: u64) -> FlowRecord {
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
        end: NOW + 1,
        done: true,
        tx_bytes,
        tx_pkts: 1,
        rx_bytes: tx_bytes,
        rx_pkts: 1,
    }
}

async fn two_flow_expiries_at_once_count_each_flow_once(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 5).await;
    let n = node(&s, "n1.pl.test", &st).await;
    slice(&s, &st, "pl_a").await;
    let flows = (0..300).map(|i| flow(i, 10)).collect();
    s.store_flows(&n, &FlowBatch { seq: 1, flows })
        .await
        .expect("flows");
    let other = second(&s).await;
    let later = NOW + 40 * 86_400;
    let (x, y) = tokio::join!(
        s.expire_flows(later, 30 * 86_400),
        other.expire_flows(later, 30 * 86_400)
    );
    assert_eq!(
        x.expect("expiry") + y.expect("expiry"),
        300,
        "each flow once"
    );
    let totals = s.flow_totals(Some("pl_a"), 0, later).await.expect("totals");
    assert_eq!(totals.len(), 1);
    assert_eq!((totals[0].flows, totals[0].tx_bytes), (300, 3000));
    other.close().await;
    s.close().await;
}

async fn rate_allowances_are_shared(b: Backend) {
    let s = TestStore::open(b).await;
    let other = second(&s).await;
    let a = Allowance {
        burst: 3.0,
        per_second: 0.5,
    };
    let t = NOW as f64;
    // Three tokens between both replicas, then none...
    assert_eq!(
        s.take_token("lookup:192.0.2.1", t, a).await.unwrap(),
        Take::Granted
    );
    assert_eq!(
        other.take_token("lookup:192.0.2.1", t, a).await.unwrap(),
        Take::Granted
    );
    assert_eq!(
        s.take_token("lookup:192.0.2.1", t + 0.1, a).await.unwrap(),
        Take::Granted
    );
    match other
        .take_token("lookup:192.0.2.1", t + 0.2, a)
        .await
        .unwrap()
    {
        Take::Refused { wait_s } => assert!(wait_s > 0.0 && wait_s <= 2.0, "{wait_s}"),
        Take::Granted => panic!("the allowance is shared: the fourth is refused"),
    }
    // ...another client has its own...
    assert_eq!(
        other.take_token("lookup:192.0.2.2", t, a).await.unwrap(),
        Take::Granted
    );
    // ...a clock a little behind takes nothing back...
    assert!(matches!(
        s.take_token("lookup:192.0.2.1", t - 5.0, a).await.unwrap(),
        Take::Refused { .. }
    ));
    // ...and two seconds give a token back (0.5 per second), never more than the burst.
    assert_eq!(
        s.take_token("lookup:192.0.2.1", t + 2.2, a).await.unwrap(),
        Take::Granted
    );
    for i in 0..3 {
        assert_eq!(
            other
                .take_token("lookup:192.0.2.9", t + 1000.0 + i as f64 * 0.01, a)
                .await
                .unwrap(),
            Take::Granted
        );
    }
    assert!(matches!(
        other
            .take_token("lookup:192.0.2.9", t + 1000.05, a)
            .await
            .unwrap(),
        Take::Refused { .. }
    ));
    // Idle buckets are forgotten (they have refilled).
    assert_eq!(s.forget_rate_buckets(t + 500.0).await.unwrap(), 2);
    other.close().await;
    s.close().await;
}

//! Two central replicas on one PostgreSQL database: a write through one wakes node long-polls
//! held by the other (in under a second), one replica leads the periodic jobs and leadership
//! moves when it stops or loses its connection, a session made on one works on the other, the
//! public lookup's allowance is one per client across both, and a node key re-keyed or deleted
//! through one stops working on the other at once.
//!
//! PostgreSQL only (SQLite is one process): skipped, saying so, without `SLICELAB_TEST_PG`.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, new_slice, start_central_with, Backend, TestCentral};
use serde_json::{json, Value};
use slicelab_central::{BlobConfig, Running};
use slicelab_client::Client;
use slicelab_model::objects::{LoginResponse, Page};
use slicelab_model::{Event, Node, NodeReport, NodeStatus};
use sqlx::Connection;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6mwuiCgEj5IOErDJ69hnStVLbIEwiAnpCShyp6iSC/ alice@laptop";

/// Replica A (the test central) and a replica B on its database and blob directory.
async fn two_replicas() -> Option<(TestCentral, Running, String)> {
    let b = Backend::postgres()?;
    let a = TestCentral::start(b).await;
    let replica = start_central_with(
        &a.db_url,
        BlobConfig {
            blob_dir: Some(a.blob_dir.clone()),
            ..Default::default()
        },
    )
    .await;
    let base = format!("http://{}", replica.addr);
    Some((a, replica, base))
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn leader(base: &str) -> bool {
    metric(base, "slicelab_central_leader").await == 1.0
}

/// A plain connection to the replicas' database.
async fn db(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL")
}

/// Waits up to `limit` for `cond`; how long it took.
async fn within<F, Fut>(limit: Duration, mut cond: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond().await {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_replica_wakes_polls_on_the_other() {
    let Some((tc, b, b_base)) = two_replicas().await else {
        return;
    };
    let f = fixture(&tc).await;
    new_slice(&f.pi_p, "princeton_rep").await;
    let node = Client::new(&b_base, Some(f.node_p.node_key.clone()));
    let mut rev = node
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .expect("first poll")
        .revision;
    let heard0 = metric(
        &b_base,
        "slicelab_replica_notifications_total{direction=\"heard\"}",
    )
    .await;
    // Each write goes through A while the node's poll waits on B; its slivers afterwards.
    let steps = [
        ("add the node", 1),
        ("set a tag", 1),
        ("add a person's key (wakes all)", 1),
        ("remove the node", 0),
    ];
    // The slice's person (no node yet: wakes nobody), whose key step 2 adds.
    let _: Value = f
        .pi_p
        .post(
            "/slices/princeton_rep/persons",
            &json!({"names": ["user@princeton.test"]}),
        )
        .await
        .expect("add person");
    let mut latencies = Vec::new();
    for (i, (what, slivers)) in steps.into_iter().enumerate() {
        let poll = {
            let node = node.clone();
            let rev = rev.clone();
            tokio::spawn(async move {
                let d = node
                    .desired_slivers(Some(&rev), Duration::from_secs(30))
                    .await;
                (d, Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !poll.is_finished(),
            "{what}: an unchanged node's poll waits"
        );
        // From the write's request (its answer may reach us after B's poll answered).
        let written = Instant::now();
        match i {
            0 => {
                let _: Value = f
                    .pi_p
                    .post(
                        "/slices/princeton_rep/nodes",
                        &json!({"names": ["node1.princeton.test"]}),
                    )
                    .await
                    .expect("add node");
            }
            1 => {
                let _: Value = f
                    .pi_p
                    .put(
                        "/slices/princeton_rep/tags/cpu_pct",
                        &json!({"value": "25"}),
                    )
                    .await
                    .expect("tag");
            }
            2 => {
                let _: Value = f
                    .user_p
                    .post(
                        "/persons/user@princeton.test/keys",
                        &json!({"key": ED25519}),
                    )
                    .await
                    .expect("key");
            }
            _ => {
                let _: Value = f
                    .pi_p
                    .delete("/slices/princeton_rep/nodes/node1.princeton.test")
                    .await
                    .expect("remove node");
            }
        }
        let (d, answered) = poll.await.expect("poll task");
        let d = d.expect("poll answers");
        let took = answered.saturating_duration_since(written);
        println!("{what}: written through A, answered on B {took:?} after the write was sent");
        assert_ne!(d.revision, rev, "{what}: the poll on B saw the change");
        assert_eq!(
            d.slivers.len(),
            slivers,
            "{what}: B's answer holds the change"
        );
        assert!(
            took < Duration::from_secs(1),
            "{what}: B's poll woke after {took:?}"
        );
        latencies.push(took);
        rev = d.revision;
    }
    let heard = metric(
        &b_base,
        "slicelab_replica_notifications_total{direction=\"heard\"}",
    )
    .await;
    assert!(
        heard - heard0 >= 4.0,
        "B heard A's notifications ({heard0} → {heard})"
    );

    // B's listener loses its connection: it listens again and what A writes still wakes B.
    let mut c = db(&tc.db_url).await;
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'slicelab-central-listener' AND datname = current_database()",
    )
    .fetch_one(&mut c)
    .await
    .expect("terminate the listeners");
    assert_eq!(killed, 2, "one listener per replica");
    let t = Instant::now();
    let mut listening = false;
    while !listening && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE application_name = 'slicelab-central-listener' AND datname = current_database()",
        )
        .fetch_one(&mut c)
        .await
        .unwrap_or(0);
        listening = n == 2;
    }
    assert!(listening, "both replicas listen again");
    let poll = {
        let node = node.clone();
        let rev = rev.clone();
        tokio::spawn(async move {
            let d = node
                .desired_slivers(Some(&rev), Duration::from_secs(30))
                .await;
            (d, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = Instant::now();
    let _: Value = f
        .pi_p
        .post(
            "/slices/princeton_rep/nodes",
            &json!({"names": ["node1.princeton.test"]}),
        )
        .await
        .expect("add node again");
    let (d, answered) = poll.await.expect("poll task");
    let took = answered.saturating_duration_since(written);
    println!("after the listener reconnected: answered on B after {took:?}");
    assert_eq!(d.expect("poll").slivers.len(), 1);
    assert!(took < Duration::from_secs(1), "woke after {took:?}");
    latencies.sort();
    println!("cross-replica wake-ups: {latencies:?}");
    b.shutdown().await;
    tc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_runs_the_jobs_and_leadership_moves() {
    let Some((mut tc, b, b_base)) = two_replicas().await else {
        return;
    };
    let a_base = tc.base.clone();
    // A started first and took the lock; B keeps trying.
    assert!(
        within(Duration::from_secs(5), || leader(&a_base))
            .await
            .is_some(),
        "A leads"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!leader(&b_base).await, "one leader at a time");
    let liveness = "slicelab_central_job_runs_total{job=\"liveness\"}";
    assert!(
        metric(&a_base, liveness).await >= 1.0,
        "the leader ran the sweep"
    );
    assert_eq!(
        metric(&b_base, liveness).await,
        0.0,
        "the follower runs no job"
    );

    // A node reports through B, then falls silent (its last contact is made old).
    let f = fixture(&tc).await;
    let node = Client::new(&b_base, Some(f.node_m.node_key.clone()));
    node.report(&NodeReport {
        seq: 1,
        slivers: vec![],
        health: None,
        actions: Vec::new(),
    })
    .await
    .expect("report");
    let mut c = db(&tc.db_url).await;
    sqlx::query(
        "UPDATE nodes SET last_contact = last_contact - 1000 WHERE hostname = 'node1.mit.test'",
    )
    .execute(&mut c)
    .await
    .expect("age the node");

    // A stops: B takes over within a few seconds and runs the jobs at once.
    let stopped = Instant::now();
    if let Some(r) = tc.running.take() {
        r.shutdown().await;
    }
    let took = within(Duration::from_secs(6), || leader(&b_base))
        .await
        .expect("B leads within a few seconds");
    println!(
        "leadership moved to B {:?} after A stopped",
        stopped.elapsed()
    );
    assert!(took < Duration::from_secs(6));
    let down = within(Duration::from_secs(5), || async {
        let n: Node = tc_anon(&b_base)
            .get("/nodes/node1.mit.test")
            .await
            .expect("node");
        n.status == NodeStatus::Down
    })
    .await;
    assert!(
        down.is_some(),
        "the new leader's sweep marked the silent node down"
    );
    assert!(metric(&b_base, liveness).await >= 1.0);

    // A replica C joins; B's connection to the database is cut (as if B were killed or cut
    // off): B stops leading and C takes over; never both.
    let c_running = start_central_with(
        &tc.db_url,
        BlobConfig {
            blob_dir: Some(tc.blob_dir.clone()),
            ..Default::default()
        },
    )
    .await;
    let c_base = format!("http://{}", c_running.addr);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(leader(&b_base).await && !leader(&c_base).await);
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'slicelab-central-leader' AND datname = current_database() \
         AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
    )
    .fetch_one(&mut c)
    .await
    .expect("cut the leader off");
    assert_eq!(killed, 1);
    let t = Instant::now();
    let mut moved = None;
    while t.elapsed() < Duration::from_secs(8) {
        let (lb, lc) = (leader(&b_base).await, leader(&c_base).await);
        assert!(!(lb && lc), "two leaders at once");
        if lc {
            moved = Some(t.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // B may win the lock back first when it reconnects; either way exactly one leads.
    if moved.is_none() {
        assert!(leader(&b_base).await, "someone leads");
    }
    println!("after the leader was cut off, C leads: {moved:?}");

    // Through all of it the node went down once.
    let admin = login_token(&c_base, common::ADMIN_EMAIL, common::ADMIN_PASSWORD).await;
    let ev: Page<Event> = Client::new(&c_base, Some(admin))
        .get("/events?object=node1.mit.test&object_type=node")
        .await
        .expect("events");
    let downs = ev.items.iter().filter(|e| e.action == "node.down").count();
    assert_eq!(downs, 1, "{:?}", ev.items);
    c_running.shutdown().await;
    b.shutdown().await;
    tc.stop().await;
}

fn tc_anon(base: &str) -> Client {
    Client::new(base, None)
}

/// A session token of `email`, logging in through the central at `base`.
async fn login_token(base: &str, email: &str, password: &str) -> String {
    let r: LoginResponse = Client::new(base, None)
        .post(
            "/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
        .unwrap_or_else(|e| panic!("login {email}: {e}"));
    r.token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_replica_works_on_the_other() {
    let Some((tc, b, b_base)) = two_replicas().await else {
        return;
    };
    let _f = fixture(&tc).await;
    // Logged in through A...
    let token = login_token(&tc.base, "pi@princeton.test", common::PASSWORD).await;
    let on_a = tc.anon().with_token(token.clone());
    let me: Value = on_a.get("/auth/whoami").await.expect("whoami on A");
    // ...the same token works on B...
    let on_b = Client::new(&b_base, None).with_token(token);
    let me_b: Value = on_b.get("/auth/whoami").await.expect("whoami on B");
    assert_eq!(me["email"], me_b["email"]);
    // ...and logging out on B ends it on A.
    let _: Value = on_b
        .post("/auth/logout", &json!({}))
        .await
        .unwrap_or(Value::Null);
    assert_eq!(common::status(on_a.get::<Value>("/auth/whoami").await), 401);
    b.shutdown().await;
    tc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_key_revoked_through_one_replica_stops_working_on_the_other() {
    let Some((tc, b, b_base)) = two_replicas().await else {
        return;
    };
    let f = fixture(&tc).await;
    let host = f.node_p.node.hostname.clone();
    let old = Client::new(&b_base, Some(f.node_p.node_key.clone()));
    // B has looked the key up (and cached who it belongs to).
    old.desired_slivers(None, Duration::from_secs(0))
        .await
        .expect("the key works on B");
    // Re-keyed through A: the old key stops working on B long before B's cache would expire.
    let rekeyed: slicelab_model::objects::NodeWithKey = tc
        .admin
        .post(&format!("/nodes/{host}/key"), &json!({}))
        .await
        .expect("rekey");
    let refused = |c: Client| async move {
        matches!(c.desired_slivers(None, Duration::from_secs(0)).await,
            Err(e) if e.status() == Some(401))
    };
    let took = within(Duration::from_secs(5), || refused(old.clone()))
        .await
        .expect("the old key is refused on B");
    let new = Client::new(&b_base, Some(rekeyed.node_key.clone()));
    new.desired_slivers(None, Duration::from_secs(0))
        .await
        .expect("the new key works on B");
    // Deleted through A: its key stops working on B too.
    let _: Value = tc
        .admin
        .delete(&format!("/nodes/{host}"))
        .await
        .unwrap_or(Value::Null);
    let gone = within(Duration::from_secs(5), || refused(new.clone()))
        .await
        .expect("a deleted node's key is refused on B");
    eprintln!("revoked on B after {took:?} (re-key), {gone:?} (delete)");
    b.shutdown().await;
    tc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lookup_allowance_is_shared_by_the_replicas() {
    let Some((tc, b, b_base)) = two_replicas().await else {
        return;
    };
    let _f = fixture(&tc).await;
    let (on_a, on_b) = (tc.anon(), Client::new(&b_base, None));
    let start = Instant::now();
    let mut granted = 0;
    let mut refused = [0, 0];
    for i in 0..40 {
        let c = if i % 2 == 0 { &on_a } else { &on_b };
        match c
            .get::<Value>("/lookup?node=node1.princeton.test&remote=192.0.2.1")
            .await
        {
            Ok(_) => granted += 1,
            Err(e) if e.status() == Some(429) => refused[i % 2] += 1,
            Err(e) => panic!("lookup: {e}"),
        }
    }
    // 20 at once, then one every 3 s: alone, each replica would have let all 20 of its own
    // requests through.
    let refill = (start.elapsed().as_secs_f64() / 3.0).ceil() as i32;
    println!(
        "granted {granted}, refused on A {}, on B {}",
        refused[0], refused[1]
    );
    assert!(granted >= 20 && granted <= 20 + refill, "granted {granted}");
    assert!(
        refused[0] > 0 && refused[1] > 0,
        "both replicas refuse once spent"
    );
    b.shutdown().await;
    tc.stop().await;
}

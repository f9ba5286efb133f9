//! What nodes send besides reports: usage counted once and rolled up, flows stored once and the
//! public lookup, bwmon throttles told through events.
//!
//! Through the real HTTP API, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use common::{fixture, new_slice, status, Backend, TestCentral};
use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::objects::Page;
use slicelab_model::{Event, Slice};

both_backends!(
    usage_is_counted_once_summed_and_rolled_up,
    flows_are_stored_once_and_the_public_lookup_names_the_slice,
    a_throttled_sliver_tells_its_slice_through_events,
);

async fn usage_is_counted_once_summed_and_rolled_up(b: Backend) {
    use slicelab_model::{UsageBatch, UsageSample, UsageSeries, UsageTotal};
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    new_slice(&f.pi_p, "princeton_u1").await;
    new_slice(&f.pi_p, "princeton_u2").await;
    let node = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let now = slicelab_central::now();
    let sample = |slice: Option<&str>, time: i64, cpu_s: f64, tx: u64| UsageSample {
        slice: slice.map(str::to_string),
        time,
        interval_s: 10,
        cpu_s,
        mem_bytes: 1 << 20,
        disk_bytes: 2 << 20,
        tx_bytes: tx,
        rx_bytes: tx / 2,
        tx_pkts: tx / 1000,
        rx_pkts: tx / 2000,
        spoofed_pkts: 0,
    };
    let t0 = (now / 3600) * 3600 - 2 * 86_400; // two days ago, on an hour boundary
    let mut samples = Vec::new();
    for i in 0..6 {
        samples.push(sample(Some("princeton_u1"), t0 + 10 * i, 2.0, 10_000));
        samples.push(sample(Some("princeton_u2"), t0 + 10 * i, 0.5, 40_000));
        samples.push(sample(None, t0 + 10 * i, 2.5, 50_000));
    }
    samples.push(sample(Some("princeton_u1"), now - 5, 1.0, 1_000));
    samples.push(sample(Some("no_such_slice"), now - 5, 9.0, 9));
    let batch = UsageBatch { seq: 1, samples };
    assert_eq!(
        node.post::<_, Value>("/node/usage", &batch).await.unwrap()["acked_seq"],
        1
    );
    // Resent (the node did not see the ack): acknowledged, not counted again.
    assert_eq!(
        node.post::<_, Value>("/node/usage", &batch).await.unwrap()["acked_seq"],
        1
    );
    let q = |scope: &str| format!("/usage?{scope}from={}&to={}&step=3600", t0 - 3600, now + 10);
    let s1: UsageSeries = f.user_p.get(&q("slice=princeton_u1&")).await.unwrap();
    assert!((s1.total_cpu_s - 13.0).abs() < 1e-9, "{s1:?}");
    assert_eq!(s1.total_tx_bytes, 61_000);
    assert_eq!(s1.points[0].t, t0);
    assert!((s1.points[0].cpu_load - 12.0 / 3600.0).abs() < 1e-9);
    // Node, site and platform totals are public.
    let plat: UsageSeries = tc.anon().get(&q("")).await.unwrap();
    assert!(
        (plat.total_cpu_s - 15.0).abs() < 1e-9,
        "node totals only: {plat:?}"
    );
    let site: UsageSeries = tc.anon().get(&q("site=princeton&")).await.unwrap();
    assert_eq!(site.total_tx_bytes, 300_000);
    let other: UsageSeries = tc.anon().get(&q("site=mit&")).await.unwrap();
    assert!(other.points.is_empty());
    assert_eq!(
        status(tc.anon().get::<Value>(&q("slice=princeton_u1&")).await),
        401
    );
    let top: Vec<UsageTotal> = f
        .user_p
        .get(&format!("/usage/top?by=tx&from={}", t0 - 1))
        .await
        .unwrap();
    assert_eq!(
        top.iter().map(|t| t.slice.as_str()).collect::<Vec<_>>(),
        ["princeton_u2", "princeton_u1"]
    );
    // Bad batches are refused whole.
    for bad in [
        UsageBatch {
            seq: 2,
            samples: vec![sample(None, now, -1.0, 0)],
        },
        UsageBatch {
            seq: 2,
            samples: vec![sample(None, now + 3600, 1.0, 0)],
        },
        UsageBatch {
            seq: 2,
            samples: vec![sample(None, now - 30 * 86_400, 1.0, 0)],
        },
        UsageBatch {
            seq: 0,
            samples: vec![],
        },
    ] {
        assert_eq!(
            status(node.post::<_, Value>("/node/usage", &bad).await),
            422
        );
    }
    assert_eq!(
        status(f.pi_p.post::<_, Value>("/node/usage", &batch).await),
        403
    );
    // Rolling up raw rows older than a day keeps every total.
    let store = slicelab_store::Store::open(&tc.db_url).await.unwrap();
    let folded = store.rollup_usage(now).await.unwrap();
    assert_eq!(folded, 18);
    assert_eq!(store.rollup_usage(now).await.unwrap(), 0);
    store.close().await;
    let s1b: UsageSeries = f.user_p.get(&q("slice=princeton_u1&")).await.unwrap();
    assert_eq!(s1b.total_tx_bytes, s1.total_tx_bytes);
    assert!((s1b.total_cpu_s - s1.total_cpu_s).abs() < 1e-9);
    tc.stop().await;
}

async fn flows_are_stored_once_and_the_public_lookup_names_the_slice(b: Backend) {
    use slicelab_model::flows::LookupResult;
    use slicelab_model::{Flow, FlowBatch, FlowRecord, FlowTotal};
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    let _: Slice = f
        .pi_p
        .post("/slices", &json!({"name": "princeton_crawl", "description": "a web crawler", "url": "https://crawl.example"}))
        .await
        .unwrap();
    new_slice(&f.pi_p, "princeton_quiet").await;
    let node = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let now = slicelab_central::now();
    let flow = |slice: &str, ct_id: u32, dst: &str, dport: u16, end: i64, done: bool, tx: u64| {
        FlowRecord {
            slice: slice.into(),
            proto: 6,
            src: "10.77.0.2".parse().unwrap(),
            sport: 40000 + ct_id as u16,
            dst: dst.parse().unwrap(),
            dport,
            nat_src: Some("198.51.100.7".parse().unwrap()),
            nat_sport: Some(50000),
            ct_id,
            start: now - 100,
            end,
            done,
            tx_bytes: tx,
            tx_pkts: tx / 1000,
            rx_bytes: tx / 10,
            rx_pkts: tx / 10_000,
        }
    };
    // A long flow reported while alive, then again (in the same batch and the next) when done.
    let b1 = FlowBatch {
        seq: 1,
        flows: vec![
            flow(
                "princeton_crawl",
                1,
                "203.0.113.9",
                80,
                now - 60,
                false,
                1000,
            ),
            flow(
                "princeton_crawl",
                1,
                "203.0.113.9",
                80,
                now - 50,
                false,
                5000,
            ),
            flow("princeton_quiet", 2, "203.0.113.50", 53, now - 90, true, 64),
        ],
    };
    let b2 = FlowBatch {
        seq: 2,
        flows: vec![flow(
            "princeton_crawl",
            1,
            "203.0.113.9",
            80,
            now - 10,
            true,
            9000,
        )],
    };
    assert_eq!(
        node.post::<_, Value>("/node/flows", &b1).await.unwrap()["acked_seq"],
        1
    );
    assert_eq!(
        node.post::<_, Value>("/node/flows", &b2).await.unwrap()["acked_seq"],
        2
    );
    assert_eq!(
        node.post::<_, Value>("/node/flows", &b1).await.unwrap()["acked_seq"],
        2,
        "resent batch ignored"
    );
    let flows: Vec<Flow> = f.pi_p.get("/flows?slice=princeton_crawl").await.unwrap();
    assert_eq!(flows.len(), 1, "one record per flow");
    assert_eq!(flows[0].flow.tx_bytes, 9000);
    assert!(flows[0].flow.done);
    // Flows are private: another site's PI may not read them.
    assert_eq!(
        status(f.pi_m.get::<Value>("/flows?slice=princeton_crawl").await),
        403
    );
    assert_eq!(status(f.user_p.get::<Value>("/flows").await), 403);
    // The public lookup, no login: the complainant's address names the slice and its PIs.
    let anon = tc.anon();
    let r: LookupResult = anon
        .get(&format!(
            "/lookup?node=node1.princeton.test&remote=203.0.113.9&from={}&to={}",
            now - 3600,
            now
        ))
        .await
        .unwrap();
    assert_eq!(r.matches.len(), 1);
    let m = &r.matches[0];
    assert_eq!(m.slice, "princeton_crawl");
    assert_eq!(m.description, "a web crawler");
    assert_eq!(m.url, "https://crawl.example");
    assert_eq!(
        m.contacts
            .iter()
            .map(|c| c.email.as_str())
            .collect::<Vec<_>>(),
        ["pi@princeton.test"]
    );
    assert_eq!(m.tx_bytes, 9000);
    // Nothing for an address that saw no traffic, nor for another port, nor outside the window.
    for q in [
        "remote=203.0.113.10".to_string(),
        "remote=203.0.113.9&port=443".to_string(),
        format!("remote=203.0.113.9&from={}&to={}", now - 7200, now - 3600),
    ] {
        let r: LookupResult = anon
            .get(&format!("/lookup?node=node1.princeton.test&{q}"))
            .await
            .unwrap();
        assert!(r.matches.is_empty(), "{q}: {r:?}");
    }
    let bad = anon
        .get::<Value>("/lookup?node=node1.princeton.test&remote=not-an-ip")
        .await
        .unwrap_err();
    assert_eq!(bad.status(), Some(422));
    // Expired flows fold into per-slice daily totals.
    let store = slicelab_store::Store::open(&tc.db_url).await.unwrap();
    assert_eq!(
        store
            .expire_flows(now + 40 * 86_400, 30 * 86_400)
            .await
            .unwrap(),
        2
    );
    store.close().await;
    let totals: Vec<FlowTotal> = f
        .pi_p
        .get("/flows/totals?slice=princeton_crawl")
        .await
        .unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!((totals[0].flows, totals[0].tx_bytes), (1, 9000));
    // The lookup is rate-limited per client.
    let mut limited = false;
    for _ in 0..40 {
        if let Err(e) = anon
            .get::<Value>("/lookup?node=node1.princeton.test&remote=203.0.113.9")
            .await
        {
            assert_eq!(e.status(), Some(429));
            limited = true;
            break;
        }
    }
    assert!(limited, "40 rapid lookups must hit the rate limit");
    tc.stop().await;
}

async fn a_throttled_sliver_tells_its_slice_through_events(b: Backend) {
    use slicelab_model::{NodeReport, SliverState, SliverStatus};
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    new_slice(&f.pi_p, "princeton_bw").await;
    let node = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let report = |seq, throttled: Option<&str>| NodeReport {
        seq,
        slivers: vec![SliverStatus {
            slice_name: "princeton_bw".into(),
            state: SliverState::Running,
            message: String::new(),
            address: None,
            throttled: throttled.map(str::to_string),
            limits: Default::default(),
        }],
        health: None,
        actions: Vec::new(),
    };
    let why = "throttled to 64 kbit/s until the day rolls over: daily egress cap of 500 KB reached";
    node.report(&report(1, None)).await.unwrap();
    node.report(&report(2, Some(why))).await.unwrap();
    node.report(&report(3, Some(why))).await.unwrap();
    let slivers: Vec<slicelab_model::sliver::Sliver> =
        f.pi_p.get("/slices/princeton_bw/slivers").await.unwrap();
    assert_eq!(slivers[0].throttled.as_deref(), Some(why));
    node.report(&report(4, None)).await.unwrap();
    let ev: Page<Event> = f.pi_p.get("/events?object=princeton_bw").await.unwrap();
    let actions: Vec<_> = ev.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "sliver.unthrottled",
            "sliver.throttled",
            "sliver.state",
            "slice.create"
        ]
    );
    assert_eq!(ev.items[1].detail["message"], why);
    tc.stop().await;
}

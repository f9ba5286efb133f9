//! The default allocation through the real HTTP API, on SQLite and PostgreSQL: who may set
//! platform defaults and node overrides, bad values refused, the three layers resolved into the
//! node's desired state, every change an event; and limit hits reported by nodes becoming
//! `sliver.limit_hit` events.

mod common;

use std::time::Duration;

use common::{fixture, status, Backend, TestCentral};
use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::defaults::{DefaultTag, Defaults};
use slicelab_model::objects::Page;
use slicelab_model::sliver::LimitCounts;
use slicelab_model::{Event, NodeReport, Resources, Slice, SliverState, SliverStatus};

both_backends!(
    defaults_are_layered_under_slice_tags,
    limit_hits_become_events_once,
);

async fn resources(node: &Client, slice: &str) -> Resources {
    let d = node
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .expect("desired");
    d.slivers
        .into_iter()
        .find(|s| s.slice_name == slice)
        .expect("sliver")
        .resources
}

async fn events(admin: &Client, action: &str) -> Vec<Event> {
    let p: Page<Event> = admin.get("/events?limit=1000").await.expect("events");
    p.items.into_iter().filter(|e| e.action == action).collect()
}

async fn defaults_are_layered_under_slice_tags(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    let a = &tc.admin;
    // Published policy: anyone may read it; a new central starts with the built-in values.
    let d: Defaults = tc.anon().get("/defaults").await.expect("defaults");
    let value = |d: &Defaults, name: &str| {
        d.platform
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.value.clone())
    };
    assert_eq!(value(&d, "mem_max").as_deref(), Some("1G"));
    assert_eq!(value(&d, "pids_max").as_deref(), Some("1024"));
    assert_eq!(value(&d, "disk_max").as_deref(), Some("10G"));

    // Only admins set platform defaults; only limits, only valid values.
    let put = |c: &Client, path: &str, v: &str| {
        let (c, path, body) = (c.clone(), path.to_string(), json!({ "value": v }));
        async move { c.put::<_, DefaultTag>(&path, &body).await }
    };
    assert_eq!(status(put(&f.pi_p, "/defaults/mem_max", "2G").await), 403);
    assert_eq!(status(put(a, "/defaults/mem_max", "lots").await), 422);
    assert_eq!(status(put(a, "/defaults/initscript", "echo").await), 422);
    assert_eq!(status(put(a, "/defaults/no_such", "1").await), 422);
    let t = put(a, "/defaults/mem_max", " 2G ").await.expect("set");
    assert_eq!((t.name.as_str(), t.value.as_str()), ("mem_max", "2G"));

    // A slice with no tags gets the platform defaults on its node.
    let _: Slice = f
        .pi_p
        .post(
            "/slices",
            &json!({"name": "princeton_a", "description": "t"}),
        )
        .await
        .expect("slice");
    let _: Slice = f
        .pi_p
        .post(
            "/slices/princeton_a/nodes",
            &json!({"names": ["node1.princeton.test"]}),
        )
        .await
        .expect("add node");
    let np = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let r = resources(&np, "princeton_a").await;
    assert_eq!(r.mem_max, Some(2 << 30));
    assert_eq!(r.pids_max, Some(1024));
    assert_eq!(r.disk_max, Some(10 << 30));
    assert_eq!(r.net_max_kbyte, Some(10_546_875));
    assert_eq!(r.cpu_share, Some(1));

    // The node's site's tech overrides a default there; another site's PI may not.
    let node = "/nodes/node1.princeton.test/defaults/pids_max";
    assert_eq!(status(put(&f.pi_m, node, "4096").await), 403);
    let t = put(&f.tech_p, node, "4096").await.expect("override");
    assert_eq!(t.node.as_deref(), Some("node1.princeton.test"));
    assert_eq!(resources(&np, "princeton_a").await.pids_max, Some(4096));
    // The slice's own tag wins over both.
    let _: Value = f
        .pi_p
        .put("/slices/princeton_a/tags/pids_max", &json!({"value": "64"}))
        .await
        .expect("tag");
    assert_eq!(resources(&np, "princeton_a").await.pids_max, Some(64));
    let _: () = f
        .pi_p
        .delete("/slices/princeton_a/tags/pids_max")
        .await
        .expect("untag");
    assert_eq!(resources(&np, "princeton_a").await.pids_max, Some(4096));

    // Removing the override and a platform default; removing again is a 404.
    let _: () = f.tech_p.delete(node).await.expect("unset");
    assert_eq!(status(f.tech_p.delete::<()>(node).await), 404);
    let _: () = a
        .delete("/defaults/disk_max")
        .await
        .expect("unset platform");
    let r = resources(&np, "princeton_a").await;
    assert_eq!((r.pids_max, r.disk_max), (Some(1024), None));
    let d: Defaults = a.get("/defaults").await.expect("defaults");
    assert!(d.nodes.is_empty() && value(&d, "disk_max").is_none());

    // Every change is an event.
    assert_eq!(events(a, "default.set").await.len(), 2);
    assert_eq!(events(a, "default.delete").await.len(), 2);
    tc.stop().await;
}

async fn limit_hits_become_events_once(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    let _: Slice = f
        .pi_p
        .post(
            "/slices",
            &json!({"name": "princeton_b", "description": "t"}),
        )
        .await
        .expect("slice");
    let _: Slice = f
        .pi_p
        .post(
            "/slices/princeton_b/nodes",
            &json!({"names": ["node1.princeton.test"]}),
        )
        .await
        .expect("add node");
    let np = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let report = |seq: i64, memory: u64, pids: u64| NodeReport {
        seq,
        slivers: vec![SliverStatus {
            slice_name: "princeton_b".into(),
            state: SliverState::Running,
            message: String::new(),
            address: None,
            throttled: None,
            limits: LimitCounts {
                memory,
                pids,
                disk: 0,
            },
        }],
        health: None,
        actions: Vec::new(),
    };
    np.report(&report(1, 0, 0)).await.expect("report");
    np.report(&report(2, 1, 0)).await.expect("report");
    np.report(&report(3, 1, 0)).await.expect("report");
    np.report(&report(4, 1, 5)).await.expect("report");
    // A resent batch changes nothing.
    np.report(&report(4, 1, 5)).await.expect("report");
    let hits = events(&tc.admin, "sliver.limit_hit").await;
    let limits: Vec<(String, String)> = hits
        .iter()
        .map(|e| {
            (
                e.detail["limit"].as_str().unwrap_or("").to_string(),
                e.detail["node"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        limits,
        vec![
            ("pids".to_string(), "node1.princeton.test".to_string()),
            ("memory".to_string(), "node1.princeton.test".to_string()),
        ],
        "newest first: {hits:?}"
    );
    // The slice's persons see them among the slice's events.
    let p: Page<Event> = f
        .pi_p
        .get("/events?object_type=slice&object=princeton_b")
        .await
        .expect("slice events");
    assert_eq!(
        p.items
            .iter()
            .filter(|e| e.action == "sliver.limit_hit")
            .count(),
        2
    );
    tc.stop().await;
}

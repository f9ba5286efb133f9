//! The API's contract: bad input is refused with the right error and changes nothing, every
//! change is an event, listings filter and page, OpenAPI and `/metrics` describe the service.
//!
//! Through the real HTTP API, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use std::time::Duration;

use common::{fixture, new_slice, Backend, TestCentral};
use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::objects::Page;
use slicelab_model::{Event, Site, Slice};

both_backends!(
    bad_input_is_refused_and_changes_nothing,
    every_change_is_an_event,
    listings_filter_and_paginate,
    openapi_and_metrics_describe_the_service,
);

/// Sends `body` raw and returns (status, parsed JSON error body).
async fn raw(
    tc: &TestCentral,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, format!("{}/api/v1{path}", tc.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    let code = resp.status().as_u16();
    let v: Value = resp
        .json()
        .await
        .unwrap_or_else(|e| panic!("{path}: error body is not JSON: {e}"));
    (code, v)
}

async fn login_token(tc: &TestCentral) -> String {
    let r: slicelab_model::LoginResponse = tc
        .anon()
        .post(
            "/auth/login",
            &json!({"email": common::ADMIN_EMAIL, "password": common::ADMIN_PASSWORD}),
        )
        .await
        .unwrap();
    r.token
}

async fn bad_input_is_refused_and_changes_nothing(b: Backend) {
    let tc = TestCentral::start(b).await;
    let _f = fixture(&tc).await;
    let token = login_token(&tc).await;
    let before_sites: Page<Site> = tc.admin.get("/sites").await.unwrap();
    let before_events: Page<Event> = tc.admin.get("/events?limit=1").await.unwrap();
    use reqwest::Method;
    let cases: Vec<(Method, &str, String, u16, &str)> = vec![
        (
            Method::POST,
            "/sites",
            "{\"login_base\": \"x\", ".into(),
            400,
            "malformed JSON",
        ),
        (
            Method::POST,
            "/sites",
            "not json".into(),
            400,
            "malformed JSON",
        ),
        (
            Method::POST,
            "/sites",
            r#"{"login_base":"x","name":"X","colour":"red"}"#.into(),
            422,
            "unknown field",
        ),
        (
            Method::POST,
            "/sites",
            r#"{"login_base":"x"}"#.into(),
            422,
            "missing field",
        ),
        (
            Method::POST,
            "/sites",
            r#"{"login_base":5,"name":"X"}"#.into(),
            422,
            "invalid type",
        ),
        (
            Method::POST,
            "/sites",
            r#"["x","X"]"#.into(),
            422,
            "must be a JSON object",
        ),
        (
            Method::POST,
            "/sites",
            format!(r#"{{"login_base":"{}","name":"X"}}"#, "a".repeat(300)),
            422,
            "login_base",
        ),
        (
            Method::POST,
            "/sites",
            format!(r#"{{"login_base":"ok","name":"{}"}}"#, "n".repeat(5000)),
            422,
            "name",
        ),
        (
            Method::POST,
            "/sites",
            r#"{"login_base":"ok","name":"X","max_slices":-1}"#.into(),
            422,
            "max_slices",
        ),
        (
            Method::POST,
            "/sites",
            r#"{"login_base":"ok","name":"X","latitude":123}"#.into(),
            422,
            "latitude",
        ),
        (
            Method::POST,
            "/persons",
            r#"{"email":"z@z.test","first_name":"Z","last_name":"Z","roles":["superuser"]}"#.into(),
            422,
            "unknown variant",
        ),
        (
            Method::POST,
            "/persons",
            r#"{"email":"not-an-email","first_name":"Z","last_name":"Z","roles":["user"]}"#.into(),
            422,
            "email",
        ),
        (
            Method::PATCH,
            "/nodes/node1.mit.test",
            r#"{"boot_state":"flying"}"#.into(),
            422,
            "unknown variant",
        ),
        (
            Method::PATCH,
            "/nodes/node1.mit.test",
            r#"{"cpu_cores":0}"#.into(),
            422,
            "cpu_cores",
        ),
        (
            Method::POST,
            "/nodes",
            r#"{"hostname":"bad host","site":"mit"}"#.into(),
            422,
            "hostname",
        ),
        (
            Method::POST,
            "/nodes",
            r#"{"hostname":"n.test","site":"nosuch"}"#.into(),
            422,
            "unknown site",
        ),
        (Method::GET, "/sites?limit=0", String::new(), 422, "limit"),
        (
            Method::GET,
            "/sites?colour=red",
            String::new(),
            400,
            "unknown field",
        ),
        (
            Method::GET,
            "/nosuch",
            String::new(),
            404,
            "no such endpoint",
        ),
        (
            Method::GET,
            "/sites/nosuch",
            String::new(),
            404,
            "not found",
        ),
    ];
    for (method, path, body, want, needle) in cases {
        let (code, v) = raw(&tc, &token, method.clone(), path, &body).await;
        assert_eq!(code, want, "{method} {path} {body:.80}: {v}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(v["error"].is_string(), "{path}: error kind missing: {v}");
        assert!(
            msg.contains(needle),
            "{method} {path}: message {msg:?} should mention {needle:?}"
        );
    }
    let after_sites: Page<Site> = tc.admin.get("/sites").await.unwrap();
    assert_eq!(before_sites.items, after_sites.items, "no site changed");
    let after_events: Page<Event> = tc.admin.get("/events?limit=1").await.unwrap();
    assert_eq!(
        before_events.items, after_events.items,
        "no event was logged"
    );
    tc.stop().await;
}

async fn every_change_is_an_event(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    new_slice(&f.pi_p, "princeton_ev").await;
    let _: Slice = f
        .pi_p
        .post(
            "/slices/princeton_ev/nodes",
            &json!({"names": ["node1.princeton.test"]}),
        )
        .await
        .unwrap();
    let _: Value = f
        .pi_p
        .put(
            "/slices/princeton_ev/tags/cpu_share",
            &json!({"value": "3"}),
        )
        .await
        .unwrap();
    let ev: Page<Event> = tc.admin.get("/events?object=princeton_ev").await.unwrap();
    let actions: Vec<_> = ev.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["slice.tag_set", "slice.add_nodes", "slice.create"]
    );
    assert!(ev
        .items
        .iter()
        .all(|e| e.actor == "person:pi@princeton.test"));
    assert_eq!(ev.items[1].detail["nodes"], json!(["node1.princeton.test"]));
    // A PI sees its site's events, not another site's.
    let mine: Page<Event> = f.pi_p.get("/events?object_type=slice").await.unwrap();
    assert!(mine.total >= 3);
    let theirs: Page<Event> = f.pi_m.get("/events?object=princeton_ev").await.unwrap();
    assert_eq!(theirs.total, 0);
    tc.stop().await;
}

async fn listings_filter_and_paginate(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    for i in 0..3 {
        new_slice(&f.pi_p, &format!("princeton_l{i}")).await;
    }
    new_slice(&f.pi_m, "mit_l").await;
    let p: Page<Slice> = f
        .user_p
        .get("/slices?site=princeton&limit=2")
        .await
        .unwrap();
    assert_eq!(p.total, 3);
    assert_eq!(
        p.items.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["princeton_l0", "princeton_l1"]
    );
    let p2: Page<Slice> = f
        .user_p
        .get("/slices?site=princeton&limit=2&offset=2")
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 1);
    assert_eq!(p2.items[0].name, "princeton_l2");
    let pis: Page<slicelab_model::Person> = tc.admin.get("/persons?role=pi").await.unwrap();
    assert_eq!(pis.total, 2);
    let nodes: Page<slicelab_model::Node> = tc.anon().get("/nodes?site=mit").await.unwrap();
    assert_eq!(nodes.items.len(), 1);
    assert_eq!(nodes.items[0].hostname, "node1.mit.test");
    tc.stop().await;
}

async fn openapi_and_metrics_describe_the_service(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    let doc: Value = tc.anon().get("/openapi.json").await.unwrap();
    assert!(doc["openapi"]
        .as_str()
        .unwrap_or_default()
        .starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/slices/{slice}/nodes",
        "/api/v1/node/slivers",
        "/api/v1/auth/login",
        "/api/v1/events",
    ] {
        assert!(paths.contains_key(p), "OpenAPI lacks {p}");
    }
    assert!(doc["components"]["schemas"]["SliceCreate"].is_object());
    // Hold a node long-poll open so the watcher gauge shows it.
    let node = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let first = node
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    let rev = first.revision.clone();
    let poll = tokio::spawn(async move {
        node.desired_slivers(Some(&rev), Duration::from_secs(3))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = reqwest::get(format!("{}/metrics", tc.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("slicelab_node_watchers 1"), "{text}");
    assert!(
        text.contains("slicelab_registry_objects{kind=\"sites\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("slicelab_http_requests_total{method=\"POST\",route=\"/api/v1/persons\",status=\"201\"} 5"),
        "{text}"
    );
    assert!(text.contains(
        "slicelab_http_request_duration_seconds_bucket{route=\"/api/v1/sites\",le=\"+Inf\"}"
    ));
    poll.await.unwrap().unwrap();
    tc.stop().await;
}

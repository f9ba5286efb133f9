//! The registry's rules through the real HTTP API, on SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, status, Backend, TestCentral};
use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::objects::Page;
use slicelab_model::time::{DAY, WEEK};
use slicelab_model::{DesiredSlivers, Event, Site, Slice};

both_backends!(
    permissions_follow_planetlab_roles,
    node_key_reads_only_its_own_slivers,
    slice_names_belong_to_their_site,
    max_slices_is_enforced,
    expiry_and_renewal_bounds,
    expired_slices_leave_the_nodes,
    ssh_keys_are_validated,
    bad_input_is_refused_and_changes_nothing,
    long_poll_returns_promptly_on_change,
    every_change_is_an_event,
    listings_filter_and_paginate,
    tags_are_typed_and_node_specific,
    reports_are_idempotent,
    openapi_and_metrics_describe_the_service,
    broker_selects_live_nodes_and_explains_failures,
    admission_control_never_overcommits_guarantees,
    leases_give_exclusive_windows_that_end_on_time,
    nodes_go_down_when_silent_and_up_when_back,
    usage_is_counted_once_summed_and_rolled_up,
    a_change_wakes_only_the_nodes_it_concerns,
    flows_are_stored_once_and_the_public_lookup_names_the_slice,
    a_throttled_sliver_tells_its_slice_through_events,
);

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6mwuiCgEj5IOErDJ69hnStVLbIEwiAnpCShyp6iSC/ alice@laptop";

async fn new_slice(c: &Client, name: &str) -> Slice {
    c.post("/slices", &json!({"name": name, "description": "test"}))
        .await
        .unwrap_or_else(|e| panic!("create slice {name}: {e}"))
}

async fn permissions_follow_planetlab_roles(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;

    // A tech manages nodes but cannot create slices.
    assert_eq!(
        status(
            f.tech_p
                .post::<_, Value>("/slices", &json!({"name": "princeton_t"}))
                .await
        ),
        403
    );
    let _: Value = f
        .tech_p
        .patch("/nodes/node1.princeton.test", &json!({"region": "europe"}))
        .await
        .expect("tech updates its site's node");
    assert_eq!(
        status(
            f.tech_p
                .patch::<_, Value>("/nodes/node1.mit.test", &json!({"region": "x"}))
                .await
        ),
        403
    );

    // A PI creates slices at its own site only.
    new_slice(&f.pi_p, "princeton_exp").await;
    assert_eq!(
        status(
            f.pi_p
                .post::<_, Value>("/slices", &json!({"name": "mit_exp"}))
                .await
        ),
        403
    );
    new_slice(&f.pi_m, "mit_exp").await;

    // A user of one site cannot touch another site's slice, nor a slice it is not in.
    assert_eq!(
        status(
            f.user_m
                .post::<_, Value>("/slices/princeton_exp/renew", &json!({"days": 10}))
                .await
        ),
        403
    );
    assert_eq!(
        status(
            f.user_m
                .post::<_, Value>(
                    "/slices/princeton_exp/nodes",
                    &json!({"names": ["node1.mit.test"]})
                )
                .await
        ),
        403
    );
    assert_eq!(
        status(
            f.user_p
                .post::<_, Value>("/slices/princeton_exp/renew", &json!({"days": 10}))
                .await
        ),
        403
    );
    assert_eq!(
        status(f.user_m.delete::<Value>("/slices/princeton_exp").await),
        403
    );
    assert_eq!(
        status(f.pi_m.delete::<Value>("/slices/princeton_exp").await),
        403
    );

    // Once the PI adds the user to the slice, the user can renew it and choose its nodes,
    // but not raise its resources nor add persons.
    let _: Slice = f
        .pi_p
        .post(
            "/slices/princeton_exp/persons",
            &json!({"names": ["user@princeton.test"]}),
        )
        .await
        .expect("add person");
    let _: Slice = f
        .user_p
        .post("/slices/princeton_exp/renew", &json!({"days": 10}))
        .await
        .expect("member renews");
    let _: Slice = f
        .user_p
        .post(
            "/slices/princeton_exp/nodes",
            &json!({"names": ["node1.princeton.test"]}),
        )
        .await
        .expect("member adds node");
    let _: Value = f
        .user_p
        .put(
            "/slices/princeton_exp/tags/initscript",
            &json!({"value": "sleep 1000"}),
        )
        .await
        .expect("member sets initscript");
    assert_eq!(
        status(
            f.user_p
                .put::<_, Value>(
                    "/slices/princeton_exp/tags/mem_max",
                    &json!({"value": "4G"})
                )
                .await
        ),
        403
    );
    assert_eq!(
        status(
            f.user_p
                .post::<_, Value>(
                    "/slices/princeton_exp/persons",
                    &json!({"names": ["user@mit.test"]})
                )
                .await
        ),
        403
    );

    // Only admins create sites; a PI cannot make an admin or add persons to another site.
    assert_eq!(
        status(
            f.pi_p
                .post::<_, Value>("/sites", &json!({"login_base": "x", "name": "X"}))
                .await
        ),
        403
    );
    let person = |email: &str, role: &str, site: &str| json!({"email": email, "first_name": "N", "last_name": "N", "roles": [role], "sites": [site]});
    assert_eq!(
        status(
            f.pi_p
                .post::<_, Value>("/persons", &person("a@x.test", "admin", "princeton"))
                .await
        ),
        403
    );
    assert_eq!(
        status(
            f.pi_p
                .post::<_, Value>("/persons", &person("b@x.test", "user", "mit"))
                .await
        ),
        403
    );
    let _: Value = f
        .pi_p
        .post("/persons", &person("c@x.test", "user", "princeton"))
        .await
        .expect("PI adds a user to its site");
    // A user cannot promote itself.
    assert_eq!(
        status(
            f.user_p
                .patch::<_, Value>("/persons/user@princeton.test", &json!({"roles": ["pi"]}))
                .await
        ),
        403
    );
    // Persons of other sites are not visible to users; anonymous callers see none.
    assert_eq!(
        status(f.user_m.get::<Value>("/persons/user@princeton.test").await),
        403
    );
    assert_eq!(status(tc.anon().get::<Value>("/persons").await), 401);
    assert_eq!(status(tc.anon().get::<Value>("/slices").await), 401);
    // Sites and nodes are public.
    let sites: Page<Site> = tc.anon().get("/sites").await.expect("public sites");
    assert_eq!(sites.total, 2);
    tc.stop().await;
}

async fn node_key_reads_only_its_own_slivers(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    new_slice(&f.pi_p, "princeton_a").await;
    new_slice(&f.pi_m, "mit_b").await;
    let _: Slice = f
        .pi_p
        .post(
            "/slices/princeton_a/nodes",
            &json!({"names": ["node1.princeton.test"]}),
        )
        .await
        .unwrap();
    let _: Slice = f
        .pi_m
        .post("/slices/mit_b/nodes", &json!({"names": ["node1.mit.test"]}))
        .await
        .unwrap();
    let np = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let d = np
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(d.hostname, "node1.princeton.test");
    let names: Vec<_> = d.slivers.iter().map(|s| s.slice_name.as_str()).collect();
    assert_eq!(names, ["princeton_a"], "a node sees only its own slivers");
    // A node key is not a person: registry endpoints refuse it.
    assert_eq!(status(np.get::<Value>("/slices").await), 401);
    assert_eq!(status(np.get::<Value>("/slices/mit_b/slivers").await), 401);
    assert_eq!(
        status(
            np.post::<_, Value>("/slices/mit_b/renew", &json!({"days": 1}))
                .await
        ),
        401
    );
    // And a person cannot pose as a node.
    assert_eq!(status(f.pi_p.get::<Value>("/node/slivers").await), 403);
    // A wrong or re-keyed node key is refused.
    let bogus = Client::new(&tc.base, Some("sln_0000".into()));
    assert_eq!(status(bogus.get::<Value>("/node/slivers").await), 401);
    let _: Value = tc
        .admin
        .post("/nodes/node1.princeton.test/key", &json!({}))
        .await
        .unwrap();
    assert_eq!(status(np.get::<Value>("/node/slivers?wait=0").await), 401);
    tc.stop().await;
}

async fn slice_names_belong_to_their_site(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    for (name, why) in [
        ("exp", "no login_base"),
        ("nosuchsite_exp", "unknown site"),
        ("princeton_", "empty suffix"),
        ("princeton_Exp", "uppercase"),
        ("princeton_a-b", "dash"),
    ] {
        let r = f
            .pi_p
            .post::<_, Value>("/slices", &json!({"name": name}))
            .await;
        let code = status(r);
        assert!(code == 422 || code == 403, "{name} ({why}) got {code}");
    }
    // A name of another site is that site's business.
    assert_eq!(
        status(
            f.pi_p
                .post::<_, Value>("/slices", &json!({"name": "mit_x"}))
                .await
        ),
        403
    );
    let s = new_slice(&f.pi_p, "princeton_my_exp2").await;
    assert_eq!(s.site, "princeton");
    assert_eq!(
        status(
            f.pi_p
                .post::<_, Value>("/slices", &json!({"name": "princeton_my_exp2"}))
                .await
        ),
        409
    );
    tc.stop().await;
}

async fn max_slices_is_enforced(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    for i in 0..3 {
        new_slice(&f.pi_p, &format!("princeton_s{i}")).await;
    }
    let err = f
        .pi_p
        .post::<_, Value>("/slices", &json!({"name": "princeton_s3"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(err.to_string().contains("max_slices"), "{err}");
    // The PI cannot raise its own limit; an admin can.
    assert_eq!(
        status(
            f.pi_p
                .patch::<_, Value>("/sites/princeton", &json!({"max_slices": 10}))
                .await
        ),
        403
    );
    let _: Site = tc
        .admin
        .patch("/sites/princeton", &json!({"max_slices": 4}))
        .await
        .unwrap();
    new_slice(&f.pi_p, "princeton_s3").await;
    tc.stop().await;
}

async fn expiry_and_renewal_bounds(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    let now = slicelab_central::now();
    let s = new_slice(&f.pi_p, "princeton_r").await;
    assert!(
        (s.expires - (now + 4 * WEEK)).abs() < 60,
        "default expiry is 4 weeks"
    );
    let r: Slice = f
        .pi_p
        .post("/slices/princeton_r/renew", &json!({"days": 56}))
        .await
        .unwrap();
    assert!((r.expires - (now + 56 * DAY)).abs() < 60);
    for body in [
        json!({"days": 57}),
        json!({"expires": now - 10}),
        json!({"expires": now + 8 * WEEK + 3600}),
        json!({}),
        json!({"days": 3, "expires": now + DAY}),
    ] {
        let err = f
            .pi_p
            .post::<_, Value>("/slices/princeton_r/renew", &body)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(422), "{body}: {err}");
    }
    let after: Slice = f.pi_p.get("/slices/princeton_r").await.unwrap();
    assert_eq!(after.expires, r.expires, "refused renewals change nothing");
    tc.stop().await;
}

async fn expired_slices_leave_the_nodes(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    new_slice(&f.pi_p, "princeton_short").await;
    let _: Slice = f
        .pi_p
        .post(
            "/slices/princeton_short/nodes",
            &json!({"names": ["node1.princeton.test"]}),
        )
        .await
        .unwrap();
    let node = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let d = node
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(d.slivers.len(), 1);
    let soon = slicelab_central::now() + 2;
    let _: Slice = f
        .pi_p
        .post("/slices/princeton_short/renew", &json!({"expires": soon}))
        .await
        .unwrap();
    // The long-poll notices expiry by itself: no write happens when the slice expires.
    let start = Instant::now();
    let mut d = node
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    while !d.slivers.is_empty() && start.elapsed() < Duration::from_secs(20) {
        d = node
            .desired_slivers(Some(&d.revision), Duration::from_secs(15))
            .await
            .unwrap();
    }
    assert!(
        d.slivers.is_empty(),
        "expired slice is no longer handed to the node"
    );
    tc.stop().await;
}

async fn ssh_keys_are_validated(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    for bad in [
        "",
        "hello",
        "ssh-rsa AAAA",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6m",
        "ssh-dss AAAAB3NzaC1kc3M=",
    ] {
        let err = f
            .user_p
            .post::<_, Value>("/persons/user@princeton.test/keys", &json!({"key": bad}))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(422), "{bad:?}: {err}");
    }
    let k: slicelab_model::Key = f
        .user_p
        .post(
            "/persons/user@princeton.test/keys",
            &json!({"key": format!("  {ED25519}\n")}),
        )
        .await
        .unwrap();
    assert_eq!(k.key, ED25519, "stored normalised");
    assert_eq!(
        status(
            f.user_p
                .post::<_, Value>(
                    "/persons/user@princeton.test/keys",
                    &json!({"key": ED25519})
                )
                .await
        ),
        409
    );
    // Another person's keys are theirs only.
    assert_eq!(
        status(
            f.pi_p
                .post::<_, Value>(
                    "/persons/user@princeton.test/keys",
                    &json!({"key": ED25519})
                )
                .await
        ),
        403
    );
    assert_eq!(
        status(f.pi_p.delete::<Value>(&format!("/keys/{}", k.id)).await),
        403
    );
    let keys: Vec<slicelab_model::Key> = f
        .user_p
        .get("/persons/user@princeton.test/keys")
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    tc.stop().await;
}

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

async fn tags_are_typed_and_node_specific(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    new_slice(&f.pi_p, "princeton_t").await;
    let _: Slice = tc
        .admin
        .post(
            "/slices/princeton_t/nodes",
            &json!({"names": ["node1.princeton.test", "node1.mit.test"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        status(
            f.pi_p
                .put::<_, Value>(
                    "/slices/princeton_t/tags/mem_max",
                    &json!({"value": "lots"})
                )
                .await
        ),
        422
    );
    assert_eq!(
        status(
            f.pi_p
                .put::<_, Value>(
                    "/slices/princeton_t/tags/cpu_shares",
                    &json!({"value": "1"})
                )
                .await
        ),
        422
    );
    let _: Value = f
        .pi_p
        .put(
            "/slices/princeton_t/tags/mem_max",
            &json!({"value": "256M"}),
        )
        .await
        .unwrap();
    let _: Value = f
        .pi_p
        .put(
            "/slices/princeton_t/tags/mem_max",
            &json!({"value": "1G", "node": "node1.mit.test"}),
        )
        .await
        .unwrap();
    let np = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let nm = Client::new(&tc.base, Some(f.node_m.node_key.clone()));
    let dp = np
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    let dm = nm
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(dp.slivers[0].resources.mem_max, Some(256 << 20));
    assert_eq!(dm.slivers[0].resources.mem_max, Some(1 << 30));
    // Replacing a tag keeps one value.
    let _: Value = f
        .pi_p
        .put(
            "/slices/princeton_t/tags/mem_max",
            &json!({"value": "512M"}),
        )
        .await
        .unwrap();
    let tags: Vec<slicelab_model::SliceTag> = f.pi_p.get("/slices/princeton_t/tags").await.unwrap();
    assert_eq!(tags.len(), 2);
    let _: Value = f
        .pi_p
        .delete("/slices/princeton_t/tags/mem_max?node=node1.mit.test")
        .await
        .unwrap();
    let dm = nm
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(dm.slivers[0].resources.mem_max, Some(512 << 20));
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
        }],
        health: None,
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
        }],
        health: None,
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

//! Captures and the nodes' admin context at central: who may capture a sliver's packets (the
//! slice's persons, the PIs and techs of the node's site, admins), what is refused with which
//! status, the event each allowed capture leaves, and the staff keys a node gets for
//! `ssh site_admin@NODE` (its site's PIs and techs and the admins, nobody else).
//!
//! Through the real HTTP API, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use std::time::Duration;

use common::{fixture, new_slice, status, Backend, TestCentral};
use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::capture::{CaptureTicket, CaptureVia};
use slicelab_model::objects::Page;
use slicelab_model::{DesiredSlivers, Event, Slice};

both_backends!(
    captures_are_for_the_slice_and_the_nodes_site,
    nodes_list_their_staff_keys,
);

const KEY_TECH: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6mwuiCgEj5IOErDJ69hnStVLbIEwiAnpCShyp6iSC/ tech";
const KEY_USER: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBY8xW3ITg0sNQmYuD9mdaVbq0tJq8Ksbl6m4bvAcpnp user";

async fn captures_are_for_the_slice_and_the_nodes_site(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    // An MIT slice with an MIT user, on princeton's node (and not on MIT's).
    new_slice(&f.pi_m, "mit_exp").await;
    let _: Slice = f
        .pi_m
        .post(
            "/slices/mit_exp/persons",
            &json!({"names": ["user@mit.test"]}),
        )
        .await
        .expect("add user");
    let _: Slice = f
        .pi_m
        .post(
            "/slices/mit_exp/nodes",
            &json!({"names": ["node1.princeton.test"]}),
        )
        .await
        .expect("add node");
    let body = json!({"node": "node1.princeton.test", "request": {"filter": "udp port 53", "duration_s": 5}});

    // A person of the slice: over the slice's own login.
    let t: CaptureTicket = f
        .user_m
        .post("/slices/mit_exp/captures", &body)
        .await
        .expect("member captures");
    assert_eq!(t.via, CaptureVia::Slice);
    assert_eq!(t.ssh_user, "mit_exp");
    assert_eq!(t.node, "node1.princeton.test");
    assert_eq!(t.request.filter.as_deref(), Some("udp port 53"));
    assert_eq!(t.request.duration_s, Some(5));
    // The tech of the site hosting the node: through its admin context.
    let t: CaptureTicket = f
        .tech_p
        .post("/slices/mit_exp/captures", &body)
        .await
        .expect("the node's tech captures");
    assert_eq!(
        (t.via, t.ssh_user.as_str()),
        (CaptureVia::SiteAdmin, "site_admin")
    );
    // Everyone else: 403. The slice site's own PI is not enough (not a member here), nor is a
    // user of the node's site.
    for c in [&f.user_p, &f.pi_m] {
        assert_eq!(
            status(
                c.post::<_, CaptureTicket>("/slices/mit_exp/captures", &body)
                    .await
            ),
            403
        );
    }
    // Bad input: each with its status.
    let other = json!({"node": "node1.mit.test"});
    assert_eq!(
        status(
            f.user_m
                .post::<_, CaptureTicket>("/slices/mit_exp/captures", &other)
                .await
        ),
        409,
        "no sliver there"
    );
    let long = json!({"node": "node1.princeton.test", "request": {"duration_s": 99999}});
    assert_eq!(
        status(
            f.user_m
                .post::<_, CaptureTicket>("/slices/mit_exp/captures", &long)
                .await
        ),
        422
    );
    let nowhere = json!({"node": "nowhere.test"});
    assert_eq!(
        status(
            f.user_m
                .post::<_, CaptureTicket>("/slices/mit_exp/captures", &nowhere)
                .await
        ),
        422
    );
    assert_eq!(
        status(
            f.user_m
                .post::<_, CaptureTicket>("/slices/mit_nope/captures", &body)
                .await
        ),
        404
    );
    assert_eq!(
        status(
            tc.anon()
                .post::<_, CaptureTicket>("/slices/mit_exp/captures", &body)
                .await
        ),
        401
    );

    // The two allowed captures are on the record, in their persons' names.
    let events: Page<Event> = tc
        .admin
        .get("/events?object=mit_exp")
        .await
        .expect("events");
    let asked: Vec<&Event> = events
        .items
        .iter()
        .filter(|e| e.action == "sliver.capture_request")
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    let actors: Vec<&str> = asked.iter().map(|e| e.actor.as_str()).collect();
    assert!(
        actors.contains(&"person:user@mit.test") && actors.contains(&"person:tech@princeton.test")
    );
    assert_eq!(asked[0].detail["filter"], "udp port 53");
    assert_eq!(asked[0].detail["duration_s"], 5);
    assert_eq!(asked[0].detail["node"], "node1.princeton.test");
}

async fn nodes_list_their_staff_keys(b: Backend) {
    let tc = TestCentral::start(b).await;
    let f = fixture(&tc).await;
    for (person, key) in [
        ("tech@princeton.test", KEY_TECH),
        ("user@princeton.test", KEY_USER),
    ] {
        let _: Value = tc
            .admin
            .post(&format!("/persons/{person}/keys"), &json!({"key": key}))
            .await
            .expect("key");
    }
    let staff =
        |d: &DesiredSlivers| -> Vec<String> { d.staff.iter().map(|k| k.person.clone()).collect() };
    let node_p = Client::new(&tc.base, Some(f.node_p.node_key.clone()));
    let node_m = Client::new(&tc.base, Some(f.node_m.node_key.clone()));
    let d = node_p
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    // The tech of princeton; not its user (and the admin has no key).
    assert_eq!(staff(&d), vec!["tech@princeton.test"]);
    assert_eq!(d.staff[0].key, KEY_TECH);
    let m = node_m
        .desired_slivers(None, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        staff(&m).is_empty(),
        "princeton's tech has no say on mit's node"
    );

    // Losing the role takes the key away, and wakes the node.
    let rev = d.revision.clone();
    let poll = tokio::spawn(async move {
        node_p
            .desired_slivers(Some(&rev), Duration::from_secs(20))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _: Value = tc
        .admin
        .patch("/persons/tech@princeton.test", &json!({"roles": ["user"]}))
        .await
        .expect("demote");
    let after = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("woken")
        .unwrap()
        .unwrap();
    assert!(after.staff.is_empty(), "{:?}", after.staff);
    let _ = new_slice;
}

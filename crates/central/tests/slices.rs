//! Slices: names tied to their site, the site's `max_slices`, expiry and renewal bounds, and
//! expired slices leaving the nodes.
//!
//! Through the real HTTP API, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, new_slice, status, Backend, TestCentral};
use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::time::{DAY, WEEK};
use slicelab_model::{Site, Slice};

both_backends!(
    slice_names_belong_to_their_site,
    max_slices_is_enforced,
    expiry_and_renewal_bounds,
    expired_slices_leave_the_nodes,
);

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

//! Who may do what (PlanetLab's roles: admin, PI, user, tech) and what a node key reaches.
//!
//! Through the real HTTP API, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use std::time::Duration;

use common::{fixture, new_slice, status, Backend, TestCentral};
use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::objects::Page;
use slicelab_model::{Site, Slice};

both_backends!(
    permissions_follow_planetlab_roles,
    node_key_reads_only_its_own_slivers,
);

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

    // The site's bandwidth cap on a node: its site's techs and PIs (and admins), nobody else; a
    // node reads it from its desired state.
    let capped: Value = f
        .tech_p
        .patch(
            "/nodes/node1.princeton.test",
            &json!({"bwlimit": 30_000_000}),
        )
        .await
        .expect("tech caps its site's node");
    assert_eq!(capped["bwlimit"], 30_000_000);
    let cleared: Value = f
        .pi_p
        .patch("/nodes/node1.princeton.test", &json!({"bwlimit": null}))
        .await
        .expect("PI clears its site's node's cap");
    assert!(cleared.get("bwlimit").is_none());
    for (who, node) in [
        (&f.user_p, "node1.princeton.test"),
        (&f.pi_m, "node1.princeton.test"),
        (&f.tech_p, "node1.mit.test"),
    ] {
        assert_eq!(
            status(
                who.patch::<_, Value>(&format!("/nodes/{node}"), &json!({"bwlimit": 5_000_000}))
                    .await
            ),
            403
        );
    }
    assert_eq!(
        status(
            f.tech_p
                .patch::<_, Value>("/nodes/node1.princeton.test", &json!({"bwlimit": 1000}))
                .await
        ),
        422,
        "below 1 Mbit/s"
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

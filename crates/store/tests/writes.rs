//! Writes: each one commits together with its event (and a refused one leaves neither), unique
//! and foreign-key constraints become the right `StoreError`, missing objects are `NotFound`.
//!
//! Straight on the store, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use common::{
    assign, event_count, last_event, node, node_create, person, person_create, site, slice,
    slice_create, Backend, TestStore, ADMIN, ED25519, NOW,
};
use slicelab_model::{SiteCreate, SliceUpdate, TagName};
use slicelab_store::{Paging, SliceFilter, Store, StoreError};

both_backends!(
    every_write_commits_with_its_event,
    refused_writes_store_nothing_and_log_nothing,
    missing_objects_are_not_found,
);

/// Runs `write`, then checks it added exactly one event, `action` on `object`.
macro_rules! logged {
    ($s:expr, $action:expr, $object:expr, $write:expr) => {{
        let before = event_count($s).await;
        let out = $write.await.unwrap_or_else(|e| panic!("{}: {e}", $action));
        assert_eq!(
            event_count($s).await,
            before + 1,
            "{} logs one event",
            $action
        );
        assert_eq!(
            last_event($s).await,
            ($action.to_string(), $object.to_string())
        );
        out
    }};
}

async fn every_write_commits_with_its_event(b: Backend) {
    let s = TestStore::open(b).await;
    let st = logged!(
        &s,
        "site.create",
        "pl",
        s.create_site(
            ADMIN,
            NOW,
            &SiteCreate {
                login_base: "pl".into(),
                name: "PlanetLab".into(),
                url: String::new(),
                max_slices: 5,
                latitude: None,
                longitude: None,
            }
        )
    );
    let n = logged!(
        &s,
        "node.create",
        "n1.pl.test",
        s.create_node(ADMIN, NOW, &node_create("n1.pl.test", &st), st.id, "h1")
    );
    let pi = person(&s, "pi@pl.test", &st).await;
    logged!(
        &s,
        "key.create",
        "pi@pl.test",
        s.add_key(ADMIN, NOW, &pi, ED25519)
    );
    let sl = logged!(
        &s,
        "slice.create",
        "pl_a",
        s.create_slice(ADMIN, NOW, &slice_create("pl_a"), st.id, 5, NOW + 3600)
    );
    let sl = logged!(
        &s,
        "slice.add_nodes",
        "pl_a",
        s.add_slice_nodes(ADMIN, NOW, &sl, &[(n.id, n.hostname.clone())])
    );
    assert_eq!(sl.nodes, vec!["n1.pl.test".to_string()]);
    logged!(
        &s,
        "slice.tag_set",
        "pl_a",
        s.set_slice_tag(ADMIN, NOW, &sl, TagName::CpuShare, "4", None)
    );
    let sl = logged!(
        &s,
        "slice.update",
        "pl_a",
        s.update_slice(
            ADMIN,
            NOW,
            &sl,
            &SliceUpdate {
                description: Some("new".into()),
                ..Default::default()
            }
        )
    );
    assert_eq!(sl.description, "new");
    // Adding a node the slice already has changes nothing, so it logs nothing.
    let before = event_count(&s).await;
    assign(&s, &sl, &[&n]).await;
    assert_eq!(event_count(&s).await, before);

    // The actor is recorded as given.
    let (events, _) = s
        .list_events(&Default::default(), Paging::default())
        .await
        .unwrap();
    assert!(events.iter().all(|e| e.actor == ADMIN), "{events:?}");
    s.close().await;
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) -> String {
    match r {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("{what}: expected a conflict, got {other:?}"),
    }
}

async fn counts(s: &Store) -> Vec<(&'static str, i64)> {
    s.counts().await.expect("counts")
}

async fn refused_writes_store_nothing_and_log_nothing(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 2).await;
    let n = node(&s, "n1.pl.test", &st).await;
    let pi = person(&s, "pi@pl.test", &st).await;
    s.add_key(ADMIN, NOW, &pi, ED25519).await.unwrap();
    let a = slice(&s, &st, "pl_a").await;
    slice(&s, &st, "pl_b").await;
    let mut reservable = node_create("r.pl.test", &st);
    reservable.reservable = true;
    let r = s
        .create_node(ADMIN, NOW, &reservable, st.id, "hr")
        .await
        .unwrap();
    s.create_lease(ADMIN, NOW, &a, &r, NOW, NOW + 3600)
        .await
        .unwrap();
    let big = site(&s, "big", 10).await;
    let before = counts(&s).await;
    let events = event_count(&s).await;

    let m = is_conflict(
        s.create_site(
            ADMIN,
            NOW,
            &SiteCreate {
                login_base: "pl".into(),
                name: "Again".into(),
                url: String::new(),
                max_slices: 1,
                latitude: None,
                longitude: None,
            },
        )
        .await,
        "duplicate site",
    );
    assert!(m.contains("login_base \"pl\""), "{m}");
    let m = is_conflict(
        s.create_node(ADMIN, NOW, &node_create("n1.pl.test", &st), st.id, "h2")
            .await,
        "duplicate node",
    );
    assert!(m.contains("n1.pl.test"), "{m}");
    let m = is_conflict(
        s.create_person(
            ADMIN,
            NOW,
            &person_create("pi@pl.test", &st),
            None,
            &[st.id],
        )
        .await,
        "duplicate person",
    );
    assert!(m.contains("pi@pl.test"), "{m}");
    is_conflict(s.add_key(ADMIN, NOW, &pi, ED25519).await, "duplicate key");
    // Slice names are unique across sites.
    let m = is_conflict(
        s.create_slice(ADMIN, NOW, &slice_create("pl_a"), big.id, 10, NOW + 60)
            .await,
        "duplicate slice",
    );
    assert!(m.contains("pl_a"), "{m}");
    let m = is_conflict(
        s.create_slice(
            ADMIN,
            NOW,
            &slice_create("pl_c"),
            st.id,
            st.max_slices,
            NOW + 60,
        )
        .await,
        "max_slices",
    );
    assert!(m.contains("max_slices is 2"), "{m}");
    let m = is_conflict(
        s.create_lease(ADMIN, NOW, &a, &r, NOW + 1800, NOW + 7200)
            .await,
        "overlapping lease",
    );
    assert!(m.contains("already leased to pl_a"), "{m}");
    // Foreign keys: a site with nodes and slices stays.
    let m = is_conflict(s.delete_site(ADMIN, NOW, &st).await, "site in use");
    assert!(m.contains("still has nodes, slices or images"), "{m}");

    assert_eq!(counts(&s).await, before, "nothing was stored");
    assert_eq!(event_count(&s).await, events, "nothing was logged");
    assert!(s.slice("pl_c").await.is_err());
    assert_eq!(s.site("pl").await.unwrap().id, st.id);
    assert_eq!(s.node("n1.pl.test").await.unwrap().id, n.id);
    assert_eq!(s.list_keys(pi.person.id).await.unwrap().len(), 1);
    assert_eq!(s.list_leases(Some(r.id), None, 0).await.unwrap().len(), 1);
    s.close().await;
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(r, Err(StoreError::NotFound(_))),
        "{what}: expected not found, got {r:?}"
    );
}

async fn missing_objects_are_not_found(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 5).await;
    let n = node(&s, "n1.pl.test", &st).await;
    let p = person(&s, "pi@pl.test", &st).await;
    let a = slice(&s, &st, "pl_a").await;
    is_not_found(s.site("nope").await, "site by name");
    is_not_found(s.site("9999").await, "site by id");
    is_not_found(s.node("nope.test").await, "node");
    is_not_found(s.person("nobody@x.test").await, "person");
    is_not_found(s.slice("pl_nope").await, "slice");
    is_not_found(s.key(9999).await, "key");
    is_not_found(s.lease(9999).await, "lease");
    is_not_found(
        s.remove_slice_node(ADMIN, NOW, &a, (n.id, &n.hostname))
            .await,
        "node not in the slice",
    );
    is_not_found(
        s.remove_slice_person(ADMIN, NOW, &a, (p.person.id, &p.person.email))
            .await,
        "person not in the slice",
    );
    is_not_found(
        s.delete_slice_tag(ADMIN, NOW, &a, TagName::CpuShare, None)
            .await,
        "tag not set",
    );
    // Objects are addressed by id as well as by name.
    assert_eq!(s.slice(&a.id.to_string()).await.unwrap().name, "pl_a");
    let (all, total) = s
        .list_slices(&SliceFilter::default(), Paging::default())
        .await
        .unwrap();
    assert_eq!((all.len(), total), (1, 1));
    s.close().await;
}

#[tokio::test]
async fn an_unknown_database_url_is_refused() {
    assert!(matches!(
        Store::open("mysql://localhost/x").await,
        Err(StoreError::BadUrl(_))
    ));
}

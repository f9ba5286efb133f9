//! The node's desired state (`store::desired`): which slices it runs, with which keys and
//! resources, when the answer changes by the clock alone, and a revision that changes with the
//! content only.
//!
//! Straight on the store, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use common::{
    assign, node, node_create, person, site, slice, Backend, TestStore, ADMIN, ED25519, NOW,
};
use slicelab_model::{BootState, NodeUpdate, SliceUpdate, SliverSpec, TagName};

both_backends!(
    a_node_gets_its_live_slices_with_keys_and_resolved_tags,
    disabled_slices_and_nodes_do_not_run,
    on_a_reservable_node_only_the_lease_holder_runs,
    the_revision_follows_the_content_only,
    the_parts_read_in_bulk_or_per_slice_give_the_same_answer,
);

fn names(slivers: &[SliverSpec]) -> Vec<(&str, bool)> {
    slivers
        .iter()
        .map(|s| (s.slice_name.as_str(), s.run))
        .collect()
}

async fn a_node_gets_its_live_slices_with_keys_and_resolved_tags(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 10).await;
    let n1 = node(&s, "n1.pl.test", &st).await;
    let n2 = node(&s, "n2.pl.test", &st).await;
    let a = slice(&s, &st, "pl_a").await;
    let bb = slice(&s, &st, "pl_b").await;
    let c = slice(&s, &st, "pl_c").await;
    let old = s
        .create_slice(
            ADMIN,
            NOW,
            &common::slice_create("pl_old"),
            st.id,
            10,
            NOW - 1,
        )
        .await
        .unwrap();
    // Added out of order: the answer is sorted by slice name.
    assign(&s, &bb, &[&n1]).await;
    let a = assign(&s, &a, &[&n1, &n2]).await;
    assign(&s, &c, &[&n2]).await;
    assign(&s, &old, &[&n1]).await;
    let pi = person(&s, "pi@pl.test", &st).await;
    s.add_key(ADMIN, NOW, &pi, ED25519).await.unwrap();
    s.add_slice_persons(ADMIN, NOW, &a, &[(pi.person.id, pi.person.email.clone())])
        .await
        .unwrap();
    s.set_slice_tag(ADMIN, NOW, &a, TagName::CpuShare, "10", None)
        .await
        .unwrap();
    s.set_slice_tag(
        ADMIN,
        NOW,
        &a,
        TagName::CpuShare,
        "20",
        Some((n1.id, &n1.hostname)),
    )
    .await
    .unwrap();
    s.set_slice_tag(ADMIN, NOW, &a, TagName::MemMax, "512M", None)
        .await
        .unwrap();

    let (d1, next) = s.desired_slivers_until(&n1, NOW).await.unwrap();
    assert_eq!((d1.node_id, d1.hostname.as_str()), (n1.id, "n1.pl.test"));
    assert_eq!(names(&d1.slivers), vec![("pl_a", true), ("pl_b", true)]);
    let sa = &d1.slivers[0];
    assert_eq!((sa.slice_id, sa.expires), (a.id, NOW + 86_400));
    assert_eq!(sa.keys.len(), 1);
    assert_eq!(
        (sa.keys[0].person.as_str(), sa.keys[0].key.as_str()),
        ("pi@pl.test", ED25519)
    );
    assert!(d1.slivers[1].keys.is_empty());
    // The node's own value wins over the slice-wide one; other tags still apply.
    assert_eq!(sa.resources.cpu_share, Some(20));
    assert_eq!(sa.resources.mem_max, Some(512 << 20));
    // The answer changes by the clock when the first slice expires.
    assert_eq!(next, Some(NOW + 86_400));

    let d2 = s.desired_slivers(&n2, NOW).await.unwrap();
    assert_eq!(names(&d2.slivers), vec![("pl_a", true), ("pl_c", true)]);
    assert_eq!(d2.slivers[0].resources.cpu_share, Some(10));
    // Past the expiry nothing is handed out.
    let later = s.desired_slivers(&n1, NOW + 86_400).await.unwrap();
    assert!(later.slivers.is_empty());
    s.close().await;
}

async fn disabled_slices_and_nodes_do_not_run(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 10).await;
    let n = node(&s, "n1.pl.test", &st).await;
    let a = slice(&s, &st, "pl_a").await;
    let bb = slice(&s, &st, "pl_b").await;
    let a = assign(&s, &a, &[&n]).await;
    assign(&s, &bb, &[&n]).await;
    s.update_slice(
        ADMIN,
        NOW,
        &a,
        &SliceUpdate {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let d = s.desired_slivers(&n, NOW).await.unwrap();
    assert_eq!(names(&d.slivers), vec![("pl_a", false), ("pl_b", true)]);

    let set = |boot_state| NodeUpdate {
        boot_state: Some(boot_state),
        ..Default::default()
    };
    let n = s
        .update_node(ADMIN, NOW, &n, &set(BootState::Safeboot))
        .await
        .unwrap();
    let d = s.desired_slivers(&n, NOW).await.unwrap();
    assert_eq!(d.boot_state, BootState::Safeboot);
    assert_eq!(names(&d.slivers), vec![("pl_a", false), ("pl_b", false)]);
    let n = s
        .update_node(ADMIN, NOW, &n, &set(BootState::Disabled))
        .await
        .unwrap();
    assert!(s.desired_slivers(&n, NOW).await.unwrap().slivers.is_empty());
    s.close().await;
}

async fn on_a_reservable_node_only_the_lease_holder_runs(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 10).await;
    let mut c = node_create("r.pl.test", &st);
    c.reservable = true;
    let r = s.create_node(ADMIN, NOW, &c, st.id, "hr").await.unwrap();
    let a = slice(&s, &st, "pl_a").await;
    let bb = slice(&s, &st, "pl_b").await;
    let a = assign(&s, &a, &[&r]).await;
    let bb = assign(&s, &bb, &[&r]).await;
    s.create_lease(ADMIN, NOW, &a, &r, NOW + 100, NOW + 200)
        .await
        .unwrap();
    s.create_lease(ADMIN, NOW, &bb, &r, NOW + 200, NOW + 300)
        .await
        .unwrap();

    let at = |t: i64| {
        let (s, r) = (&s, &r);
        async move { s.desired_slivers_until(r, t).await.unwrap() }
    };
    // Before any lease both are kept, paused; the next change is the first lease's start.
    let (d, next) = at(NOW).await;
    assert_eq!(names(&d.slivers), vec![("pl_a", false), ("pl_b", false)]);
    assert_eq!(next, Some(NOW + 100));
    let (d, next) = at(NOW + 150).await;
    assert_eq!(names(&d.slivers), vec![("pl_a", true), ("pl_b", false)]);
    assert_eq!(next, Some(NOW + 200));
    // Lease windows are [start, end): at the boundary the next holder runs.
    let (d, next) = at(NOW + 200).await;
    assert_eq!(names(&d.slivers), vec![("pl_a", false), ("pl_b", true)]);
    assert_eq!(next, Some(NOW + 300));
    let (d, _) = at(NOW + 300).await;
    assert_eq!(names(&d.slivers), vec![("pl_a", false), ("pl_b", false)]);
    s.close().await;
}

async fn the_revision_follows_the_content_only(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 10).await;
    let n1 = node(&s, "n1.pl.test", &st).await;
    let n2 = node(&s, "n2.pl.test", &st).await;
    let a = slice(&s, &st, "pl_a").await;
    let a = assign(&s, &a, &[&n1]).await;
    let rev = |n| {
        let s = &s;
        async move { s.desired_slivers(n, NOW).await.unwrap().revision }
    };
    let r1 = rev(&n1).await;
    assert_eq!(rev(&n1).await, r1, "same content, same revision");
    // A change elsewhere in the registry does not concern n1.
    let other = slice(&s, &st, "pl_other").await;
    assign(&s, &other, &[&n2]).await;
    s.update_slice(
        ADMIN,
        NOW,
        &a,
        &SliceUpdate {
            description: Some("only words".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(rev(&n1).await, r1);
    // A tag of one of its slices does.
    s.set_slice_tag(ADMIN, NOW, &a, TagName::CpuShare, "3", None)
        .await
        .unwrap();
    let r2 = rev(&n1).await;
    assert_ne!(r2, r1);
    s.delete_slice_tag(ADMIN, NOW, &a, TagName::CpuShare, None)
        .await
        .unwrap();
    assert_eq!(rev(&n1).await, r1, "the revision is a hash of the content");
    // So does the node's bandwidth cap, which the answer carries; `null` removes it.
    let cap = |bwlimit| NodeUpdate {
        bwlimit: Some(bwlimit),
        ..Default::default()
    };
    let n1 = s
        .update_node(ADMIN, NOW, &n1, &cap(Some(30_000_000)))
        .await
        .unwrap();
    assert_eq!(n1.bwlimit, Some(30_000_000));
    let d = s.desired_slivers(&n1, NOW).await.unwrap();
    assert_eq!(d.bwlimit, Some(30_000_000));
    assert_ne!(d.revision, r1);
    let kept = s
        .update_node(ADMIN, NOW, &n1, &NodeUpdate::default())
        .await
        .unwrap();
    assert_eq!(kept.bwlimit, Some(30_000_000), "absent keeps the cap");
    let n1 = s.update_node(ADMIN, NOW, &n1, &cap(None)).await.unwrap();
    assert_eq!(n1.bwlimit, None);
    assert_eq!(rev(&n1).await, r1);
    s.close().await;
}

/// Central assembles each node's state from every slice's part read in bulk, or one slice's part
/// read after a change (`central::desired`): the answer, revision included, is the one the node
/// would get straight from the database.
async fn the_parts_read_in_bulk_or_per_slice_give_the_same_answer(b: Backend) {
    use slicelab_store::{assemble, DesiredScope};
    let s = TestStore::open(b).await;
    let st = site(&s, "pl", 10).await;
    let n1 = node(&s, "n1.pl.test", &st).await;
    let n2 = node(&s, "n2.pl.test", &st).await;
    let a = slice(&s, &st, "pl_a").await;
    let bb = slice(&s, &st, "pl_b").await;
    let a = assign(&s, &a, &[&n1, &n2]).await;
    assign(&s, &bb, &[&n2]).await;
    let pi = person(&s, "pi@pl.test", &st).await;
    s.add_key(ADMIN, NOW, &pi, ED25519).await.unwrap();
    s.add_slice_persons(ADMIN, NOW, &a, &[(pi.person.id, pi.person.email.clone())])
        .await
        .unwrap();
    s.set_slice_tag(ADMIN, NOW, &a, TagName::CpuShare, "10", None)
        .await
        .unwrap();
    s.set_slice_tag(
        ADMIN,
        NOW,
        &a,
        TagName::CpuShare,
        "30",
        Some((n2.id, &n2.hostname)),
    )
    .await
    .unwrap();

    let all = s.slice_inputs(DesiredScope::All).await.unwrap();
    assert_eq!(all.len(), 2);
    let one = s.slice_inputs(DesiredScope::Slice(a.id)).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0], all[0], "one slice's part is its part in bulk");
    assert_eq!(
        one[0].nodes,
        [(n1.id, n1.hostname.clone()), (n2.id, n2.hostname.clone())]
    );
    for n in [&n1, &n2] {
        let inputs = s.node_inputs(n.clone(), NOW).await.unwrap();
        let from_parts = assemble(&inputs, all.iter(), NOW);
        let direct = s.desired_slivers_until(n, NOW).await.unwrap();
        assert_eq!(from_parts.0.revision, direct.0.revision);
        assert_eq!(from_parts.0.slivers, direct.0.slivers);
        assert_eq!(from_parts.1, direct.1);
    }
    let d2 = s.desired_slivers(&n2, NOW).await.unwrap();
    assert_eq!(names(&d2.slivers), vec![("pl_a", true), ("pl_b", true)]);
    assert_eq!(d2.slivers[0].resources.cpu_share, Some(30));
    assert!(s
        .slice_inputs(DesiredScope::Slice(999_999))
        .await
        .unwrap()
        .is_empty());
    s.close().await;
}

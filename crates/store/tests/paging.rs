//! Listings: `limit` and `offset` page through a stable order, `total` counts every match, and
//! filters narrow both.
//!
//! Straight on the store, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use common::{assign, node, person, site, slice, Backend, TestStore};
use slicelab_store::{EventFilter, NodeFilter, Paging, PersonFilter, SliceFilter};

both_backends!(listings_page_through_a_stable_order_with_totals);

fn page(limit: i64, offset: i64) -> Paging {
    Paging { limit, offset }
}

async fn listings_page_through_a_stable_order_with_totals(b: Backend) {
    let s = TestStore::open(b).await;
    let pl = site(&s, "pl", 10).await;
    let mit = site(&s, "mit", 10).await;
    let n1 = node(&s, "n1.pl.test", &pl).await;
    node(&s, "n2.pl.test", &pl).await;
    node(&s, "m1.mit.test", &mit).await;
    for i in [4, 1, 3, 0, 2] {
        let sl = slice(&s, &pl, &format!("pl_s{i}")).await;
        if i % 2 == 0 {
            assign(&s, &sl, &[&n1]).await;
        }
    }
    slice(&s, &mit, "mit_x").await;
    person(&s, "b@pl.test", &pl).await;
    person(&s, "a@pl.test", &pl).await;
    person(&s, "c@mit.test", &mit).await;

    // Slices: by name, in pages.
    let all = SliceFilter::default();
    let (p1, total) = s.list_slices(&all, page(2, 0)).await.unwrap();
    assert_eq!(total, 6);
    let names = |v: &[slicelab_model::Slice]| v.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&p1), vec!["mit_x", "pl_s0"]);
    let (p2, _) = s.list_slices(&all, page(2, 2)).await.unwrap();
    assert_eq!(names(&p2), vec!["pl_s1", "pl_s2"]);
    let (p3, _) = s.list_slices(&all, page(2, 4)).await.unwrap();
    assert_eq!(names(&p3), vec!["pl_s3", "pl_s4"]);
    let (past, total) = s.list_slices(&all, page(2, 6)).await.unwrap();
    assert!(past.is_empty());
    assert_eq!(total, 6, "the total does not depend on the page");
    // Filters narrow the total too.
    let of_pl = SliceFilter {
        site_id: Some(pl.id),
        ..Default::default()
    };
    assert_eq!(s.list_slices(&of_pl, page(1, 0)).await.unwrap().1, 5);
    let on_n1 = SliceFilter {
        node_id: Some(n1.id),
        ..Default::default()
    };
    let (v, total) = s.list_slices(&on_n1, page(10, 0)).await.unwrap();
    assert_eq!(names(&v), vec!["pl_s0", "pl_s2", "pl_s4"]);
    assert_eq!(total, 3);

    // Sites by login_base, nodes by hostname, persons by email.
    let (sites, total) = s.list_sites(None, page(1, 1)).await.unwrap();
    assert_eq!((sites[0].login_base.as_str(), total), ("pl", 2));
    let (sites, total) = s.list_sites(Some("mit"), page(10, 0)).await.unwrap();
    assert_eq!((sites.len(), total), (1, 1));
    let (nodes, total) = s
        .list_nodes(&NodeFilter::default(), page(2, 0))
        .await
        .unwrap();
    let hosts: Vec<&str> = nodes.iter().map(|n| n.hostname.as_str()).collect();
    assert_eq!((hosts, total), (vec!["m1.mit.test", "n1.pl.test"], 3));
    let pl_nodes = NodeFilter {
        site_id: Some(pl.id),
        ..Default::default()
    };
    assert_eq!(s.list_nodes(&pl_nodes, page(10, 0)).await.unwrap().1, 2);
    let (persons, total) = s
        .list_persons(&PersonFilter::default(), page(2, 1))
        .await
        .unwrap();
    let emails: Vec<&str> = persons.iter().map(|p| p.email.as_str()).collect();
    assert_eq!((emails, total), (vec!["b@pl.test", "c@mit.test"], 3));

    // Events: newest first; pages are disjoint and together hold every event.
    let (everything, total) = s
        .list_events(&EventFilter::default(), page(1000, 0))
        .await
        .unwrap();
    assert_eq!(everything.len() as i64, total);
    assert!(everything.windows(2).all(|w| w[0].id > w[1].id));
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let (p, t) = s
            .list_events(&EventFilter::default(), page(4, offset))
            .await
            .unwrap();
        assert_eq!(t, total);
        if p.is_empty() {
            break;
        }
        seen.extend(p.into_iter().map(|e| e.id));
        offset += 4;
    }
    assert_eq!(seen, everything.iter().map(|e| e.id).collect::<Vec<_>>());
    let about_pl_s0 = EventFilter {
        object: Some("pl_s0".into()),
        ..Default::default()
    };
    let (v, total) = s.list_events(&about_pl_s0, page(10, 0)).await.unwrap();
    let actions: Vec<&str> = v.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["slice.add_nodes", "slice.create"]);
    assert_eq!(total, 2);
    s.close().await;
}

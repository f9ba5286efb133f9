//! Federation's storage (`store::peers`), both halves on one store and on both databases: as
//! *host*, a peer's slice on our nodes (quota in the transaction, keys in the desired state, a
//! suspended peer's slivers stopped, the status sent back, replayed nonces refused, removal with
//! an event per sliver); at *home*, a peer's registry taken under its site, the records of our
//! slices on its nodes, and its status stored as our own slivers, usage and flows.

mod common;

use common::{assign, node, site, slice, Backend, TestStore, ADMIN, ED25519, NOW};
use slicelab_model::peer::{
    ForeignSlice, ForeignSliver, ForeignUsage, PeerCreate, PeerNode, PeerRegistry, PeerState,
    PeerStatus,
};
use slicelab_model::sliver::SliverKey;
use slicelab_model::UsageSample;
use slicelab_store::{StoreError, UsageScope};

both_backends!(
    a_peers_slice_runs_here_within_its_quota,
    a_peers_registry_and_status_land_in_our_own_tables,
);

fn create(name: &str, max: i64) -> PeerCreate {
    PeerCreate {
        name: name.into(),
        url: format!("https://{name}.test"),
        ca_fingerprint: None,
        secret: "s".repeat(40),
        max_slivers: Some(max),
        max_cpu_reserve: None,
        max_mem_reserve_mb: Some(64),
    }
}

fn record(nodes: &[&str]) -> ForeignSlice {
    ForeignSlice {
        name: "lab_exp".into(),
        expires: NOW + 3600,
        enabled: true,
        description: "an experiment".into(),
        contact: "pi@ple.test".into(),
        keys: vec![SliverKey {
            person: "user@ple.test".into(),
            key: ED25519.into(),
        }],
        tags: vec![],
        nodes: nodes.iter().map(|s| s.to_string()).collect(),
    }
}

async fn a_peers_slice_runs_here_within_its_quota(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "plc", 10).await;
    let n1 = node(&s, "n1.plc.test", &st).await;
    let n2 = node(&s, "n2.plc.test", &st).await;
    // A site named like the peer cannot exist: the name prefixes its slices here.
    site(&s, "taken", 1).await;
    assert!(matches!(
        s.create_peer(ADMIN, NOW, &create("taken", 1)).await,
        Err(StoreError::Conflict(_))
    ));
    let peer = s.create_peer(ADMIN, NOW, &create("ple", 1)).await.unwrap();
    let ids = |ns: &[&slicelab_model::Node]| -> Vec<(i64, String)> {
        ns.iter().map(|n| (n.id, n.hostname.clone())).collect()
    };
    let (sl, woken) = s
        .apply_foreign_slice(
            &peer,
            NOW,
            &record(&[&n1.hostname]),
            "ple_lab_exp",
            &ids(&[&n1]),
            &[("mem_reserve".into(), "32M".into(), None)],
        )
        .await
        .unwrap();
    let sl = sl.expect("the slice exists here");
    assert_eq!(sl.authority.as_deref(), Some("ple"));
    assert_eq!(woken, vec![n1.hostname.clone()]);
    assert_eq!(peer.max_mem_reserve_mb, 64);
    // Its guarantees count against its reservation quota (the slice itself left out on change).
    assert_eq!(s.peer_reserved(peer.id, "other").await.unwrap().mem_mb, 32);
    assert_eq!(s.peer_reserved(peer.id, "lab_exp").await.unwrap().mem_mb, 0);
    // Over the quota: refused, naming it; nothing changed.
    let e = s
        .apply_foreign_slice(
            &peer,
            NOW,
            &record(&[&n1.hostname, &n2.hostname]),
            "ple_lab_exp",
            &ids(&[&n1, &n2]),
            &[],
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("quota"), "{e}");
    assert_eq!(
        s.slice("ple_lab_exp").await.unwrap().nodes,
        vec![n1.hostname.clone()]
    );
    // The node runs it with the peer's keys.
    let d = s.desired_slivers(&n1, NOW).await.unwrap();
    assert_eq!(d.slivers.len(), 1);
    assert!(d.slivers[0].run);
    assert_eq!(d.slivers[0].keys[0].person, "user@ple.test");
    // Suspended: kept, stopped; the status says why.
    let peer = s.peer("ple").await.unwrap();
    assert_eq!(peer.slivers, 1);
    let (peer, _) = s
        .set_peer_state(ADMIN, NOW, &peer, PeerState::Suspended, "abuse")
        .await
        .unwrap();
    let d = s.desired_slivers(&n1, NOW).await.unwrap();
    assert!(!d.slivers[0].run, "a suspended peer's sliver stops");
    let status = s.status_for_peer(&peer, 0, 0, 100).await.unwrap();
    assert_eq!(status.suspended.as_deref(), Some("abuse"));
    // Nonces: once each.
    assert!(s
        .take_peer_nonce(peer.id, "n1", NOW + 60, NOW)
        .await
        .unwrap());
    assert!(!s
        .take_peer_nonce(peer.id, "n1", NOW + 60, NOW)
        .await
        .unwrap());
    // Removal: its slice goes, with an event per sliver.
    let woken = s.delete_peer(ADMIN, NOW, &peer).await.unwrap();
    assert_eq!(woken, vec![n1.hostname.clone()]);
    assert!(matches!(
        s.slice("ple_lab_exp").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s
        .desired_slivers(&n1, NOW)
        .await
        .unwrap()
        .slivers
        .is_empty());
    assert_eq!(common::last_event(&s).await.0, "peer.remove");
    s.close().await;
}

async fn a_peers_registry_and_status_land_in_our_own_tables(b: Backend) {
    let s = TestStore::open(b).await;
    let st = site(&s, "ple", 10).await;
    let mine = slice(&s, &st, "ple_exp").await;
    let peer = s.create_peer(ADMIN, NOW, &create("plc", 5)).await.unwrap();
    let pnode = |h: &str| PeerNode {
        hostname: h.into(),
        site: "princeton".into(),
        boot_state: "boot".into(),
        status: "up".into(),
        cpu_cores: 4,
        mem_mb: 8192,
        disk_gb: 100,
        region: "na".into(),
        reservable: false,
        slivers: 0,
    };
    let reg = PeerRegistry {
        authority: "plc".into(),
        revision: "r1".into(),
        nodes: vec![pnode("a.plc.test"), pnode("b.plc.test")],
    };
    assert!(s.apply_peer_registry(&peer, NOW, &reg).await.unwrap().0);
    assert!(
        !s.apply_peer_registry(&peer, NOW, &reg).await.unwrap().0,
        "same revision"
    );
    let a = s.node("a.plc.test").await.unwrap();
    assert_eq!(a.authority.as_deref(), Some("plc"));
    // Our slice on its node: the record the peer gets.
    assign(&s, &mine, &[&a]).await;
    let recs = s.foreign_slices_for(&peer, NOW).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].nodes, vec!["a.plc.test".to_string()]);
    let with_b = s
        .foreign_slice(&peer, mine.id, &["b.plc.test".into()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(with_b.nodes.len(), 2);
    // Its status: our sliver's state, usage and a flow, in our own tables.
    let status = PeerStatus {
        suspended: None,
        slivers: vec![ForeignSliver {
            slice: "ple_exp".into(),
            node: "a.plc.test".into(),
            state: "running".into(),
            message: String::new(),
            address: None,
            updated: NOW,
        }],
        usage: vec![ForeignUsage {
            node: "a.plc.test".into(),
            sample: UsageSample {
                slice: Some("ple_exp".into()),
                time: NOW,
                interval_s: 10,
                cpu_s: 1.5,
                mem_bytes: 1,
                disk_bytes: 1,
                tx_bytes: 100,
                rx_bytes: 100,
                tx_pkts: 1,
                rx_pkts: 1,
                spoofed_pkts: 0,
            },
        }],
        flows: vec![],
    };
    s.apply_peer_status(&peer, NOW, &status).await.unwrap();
    s.apply_peer_status(&peer, NOW, &status).await.unwrap();
    let slivers = s.slivers_of_slice(mine.id).await.unwrap();
    assert_eq!(slivers.len(), 1);
    assert_eq!(slivers[0].node, "a.plc.test");
    let series = s
        .usage_series(
            &UsageScope::Slice {
                id: mine.id,
                name: mine.name.clone(),
            },
            NOW - 3600,
            NOW + 3600,
            3600,
        )
        .await
        .unwrap();
    assert!(
        (series.total_cpu_s - 1.5).abs() < 1e-9,
        "a status taken twice counts once: {series:?}"
    );
    assert_eq!(s.peer_cursors(peer.id).await.unwrap().0, NOW);
    // A node the peer no longer lists leaves our slice.
    let reg2 = PeerRegistry {
        revision: "r2".into(),
        nodes: vec![pnode("b.plc.test")],
        ..reg
    };
    s.apply_peer_registry(&peer, NOW, &reg2).await.unwrap();
    assert!(s.slice("ple_exp").await.unwrap().nodes.is_empty());
    s.close().await;
}

//! Every write appends an event and wakes exactly the nodes it concerns (no more: a wake-up makes
//! a node recompute its desired slivers; no fewer: a missed one delays a change by seconds).

use std::sync::Arc;

use serde_json::json;
use slicelab_model::{Actor, PersonCreate, Role, TagName};
use slicelab_store::{EventFilter, Paging, Store};
use tokio::sync::watch::Receiver;

use crate::ops;
use crate::state::AppState;

/// Whether `rx` was signalled since last asked.
fn woken(rx: &mut Receiver<u64>) -> bool {
    let w = rx.has_changed().unwrap_or(false);
    rx.borrow_and_update();
    w
}

struct Watch {
    all: Receiver<u64>,
    n1: Receiver<u64>,
    n2: Receiver<u64>,
}

impl Watch {
    /// (all nodes, node 1, node 2) woken since last asked.
    fn take(&mut self) -> (bool, bool, bool) {
        (
            woken(&mut self.all),
            woken(&mut self.n1),
            woken(&mut self.n2),
        )
    }
}

async fn events(st: &AppState) -> i64 {
    st.store
        .list_events(&EventFilter::default(), Paging::default())
        .await
        .map(|(_, n)| n)
        .unwrap_or(-1)
}

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("model value")
}

#[tokio::test]
async fn writes_log_an_event_and_wake_only_their_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let blobs = crate::blobs::BlobStore::open(&Default::default(), &url).expect("blobs");
    let st = AppState::new(
        Arc::new(Store::open(&url).await.expect("store")),
        Arc::new(blobs),
    );
    let c = PersonCreate {
        email: "admin@test".into(),
        first_name: "A".into(),
        last_name: "D".into(),
        password: None,
        roles: vec![Role::Admin],
        sites: vec![],
    };
    let p = st
        .store
        .create_person("system", 0, &c, None, &[])
        .await
        .expect("admin");
    let admin = Actor::Person {
        id: p.id,
        email: p.email,
        roles: vec![Role::Admin],
        site_ids: vec![],
    };
    let (h1, h2) = ("n1.test".to_string(), "n2.test".to_string());
    ops::sites::create(&st, &admin, &from(json!({"login_base": "pl", "name": "P"})))
        .await
        .expect("site");
    for h in [&h1, &h2] {
        ops::nodes::create(&st, &admin, &from(json!({"hostname": h, "site": "pl"})))
            .await
            .expect("node");
    }
    let mut w = Watch {
        all: st.changes.subscribe(),
        n1: st.watch_node(&h1),
        n2: st.watch_node(&h2),
    };
    let none = (false, false, false);
    let (all, one, two) = (
        (true, false, false),
        (false, true, false),
        (false, false, true),
    );
    let mut logged = events(&st).await;
    macro_rules! step {
        ($what:expr, $op:expr, $want:expr) => {{
            $op.await.expect($what);
            assert_eq!(w.take(), $want, "{} wakes", $what);
            let now = events(&st).await;
            assert!(now > logged, "{} is logged", $what);
            logged = now;
        }};
    }
    let sl = "pl_x";
    step!(
        "slice create",
        ops::slices::create(&st, &admin, &from(json!({"name": sl}))),
        none
    );
    step!(
        "add node 1",
        ops::slices::add_nodes(&st, &admin, sl, std::slice::from_ref(&h1)),
        one
    );
    step!(
        "tag",
        ops::tags::set(&st, &admin, sl, TagName::CpuPct, "50", None),
        one
    );
    step!(
        "tag delete",
        ops::tags::delete(&st, &admin, sl, TagName::CpuPct, None),
        one
    );
    let renew = from(json!({"days": 7}));
    step!("renew", ops::slices::renew(&st, &admin, sl, &renew), one);
    let disable = from(json!({"enabled": false}));
    step!(
        "disable",
        ops::slices::update(&st, &admin, sl, &disable),
        one
    );
    let admin_email = vec!["admin@test".to_string()];
    step!(
        "add person",
        ops::slices::add_persons(&st, &admin, sl, &admin_email),
        one
    );
    step!(
        "remove person",
        ops::slices::remove_person(&st, &admin, sl, "admin@test"),
        one
    );
    let boot = from(json!({"boot_state": "safeboot"}));
    step!(
        "node 2 update",
        ops::nodes::update(&st, &admin, &h2, &boot),
        two
    );
    let cap = from(json!({"bwlimit": 30_000_000}));
    step!(
        "node 1 bwlimit",
        ops::nodes::update(&st, &admin, &h1, &cap),
        one
    );
    step!(
        "site update",
        ops::sites::update(&st, &admin, "pl", &from(json!({"name": "Q"}))),
        all
    );
    // A tag that named an image before it was published (set before tags were checked): the
    // publication changes that slice's desired state, so it wakes the slice's node.
    let slice = st.store.slice(sl).await.expect("slice");
    st.store
        .set_slice_tag("system", 0, &slice, TagName::Image, "tools", None)
        .await
        .expect("tag");
    w.take();
    // A real (tiny) layer: publishing reads it as a node would.
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(2);
        h.set_cksum();
        b.append_data(&mut h, "etc/x", &b"hi"[..]).expect("tar");
        b.into_inner().expect("tar")
    };
    let digest = {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&layer)))
    };
    let file = st
        .blobs
        .dir()
        .join("sha256")
        .join(slicelab_model::image::digest_hex(&digest));
    std::fs::write(&file, &layer).expect("blob file");
    st.store
        .record_blob("system", 0, &digest, layer.len() as u64)
        .await
        .expect("blob");
    let img = from(
        json!({"name": "tools", "visibility": "platform", "site_id": 1,
        "manifest": {"config": {}, "layers": [{"digest": digest, "size": layer.len(),
        "media_type": slicelab_model::image::LAYER_TAR}]}}),
    );
    step!("image create", ops::images::create(&st, &admin, &img), one);
    st.store
        .delete_slice_tag("system", 0, &slice, TagName::Image, None)
        .await
        .expect("untag");
    w.take();
    step!(
        "image delete",
        ops::images::delete(&st, &admin, "tools"),
        none
    );
    step!(
        "remove node 1",
        ops::slices::remove_node(&st, &admin, sl, &h1),
        one
    );
    step!("slice delete", ops::slices::remove(&st, &admin, sl), none);
    assert!(logged > 0);
}

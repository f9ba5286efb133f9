//! Slice tags: typed values, node-specific overrides.
//!
//! Through the real HTTP API, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use std::time::Duration;

use common::{fixture, new_slice, status, Backend, TestCentral};
use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::Slice;

both_backends!(tags_are_typed_and_node_specific,);

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

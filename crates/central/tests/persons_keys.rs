//! Persons' SSH keys: only well-formed public keys of known types are stored.
//!
//! Through the real HTTP API, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use common::{fixture, status, Backend, TestCentral};
use serde_json::{json, Value};

both_backends!(ssh_keys_are_validated,);

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6mwuiCgEj5IOErDJ69hnStVLbIEwiAnpCShyp6iSC/ alice@laptop";

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

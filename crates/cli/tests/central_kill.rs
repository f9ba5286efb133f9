//! A write that central acknowledged survives SIGKILL of the central process right after. Central
//! runs as `slicelab central` does by default: HTTPS with its own CA, pinned by the fingerprint
//! it prints.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use slicelab_client::{Client, Endpoint, Trust};
use slicelab_model::objects::LoginResponse;

mod central_process;

const PASSWORD: &str = "kill-test-password";

/// Starts `slicelab central` on an ephemeral loopback port; returns the process and its URL
/// with the CA fingerprint it printed.
fn start(db: &str, tls_dir: &std::path::Path) -> (Child, Endpoint) {
    let c = central_process::spawn(
        Command::new(env!("CARGO_BIN_EXE_slicelab"))
            .args(["central", "--db", db, "--listen", "127.0.0.1:0"])
            .arg("--tls-dir")
            .arg(tls_dir)
            .env("SLICELAB_ADMIN_PASSWORD", PASSWORD)
            .stderr(Stdio::null()),
    );
    let trust = Trust::fingerprint(&c.fingerprint).expect("a fingerprint");
    (c.child, Endpoint::new(&c.url).trust(trust))
}

fn sigkill(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "central was killed, not exited");
}

async fn admin(endpoint: &Endpoint) -> Client {
    let anon = Client::connect(endpoint, None).expect("a client");
    let r: LoginResponse = anon
        .post(
            "/auth/login",
            &json!({"email": "admin@localhost", "password": PASSWORD}),
        )
        .await
        .expect("login");
    anon.with_token(r.token)
}

async fn survives(db: &str) {
    let tls = tempfile::tempdir().expect("tempdir");
    let (child, url) = start(db, tls.path());
    let c = admin(&url).await;
    // Several acknowledged writes, then SIGKILL with no pause: each 2xx must be durable.
    for i in 0..5 {
        let _: Value = c
            .post(
                "/sites",
                &json!({"login_base": format!("killed{i}"), "name": "Kill test"}),
            )
            .await
            .expect("write acknowledged");
    }
    sigkill(child);
    let (child, url) = start(db, tls.path());
    let c = admin(&url).await;
    for i in 0..5 {
        let site: Value = c
            .get(&format!("/sites/killed{i}"))
            .await
            .expect("write kept after SIGKILL");
        assert_eq!(site["login_base"], format!("killed{i}"));
    }
    let ev: Value = c.get("/events?object_type=site").await.expect("events");
    assert_eq!(ev["total"], 5, "each write's event survived with it");
    sigkill(child);
}

#[tokio::test]
async fn acknowledged_write_survives_sigkill_sqlite() {
    let tmp = tempfile::tempdir().expect("tmp");
    survives(&format!("sqlite://{}/central.db", tmp.path().display())).await;
}

#[tokio::test]
async fn acknowledged_write_survives_sigkill_postgres() {
    let Ok(admin_url) = std::env::var("SLICELAB_TEST_PG") else {
        assert!(std::env::var("CI").is_err(), "CI must set SLICELAB_TEST_PG");
        eprintln!("SKIPPED: set SLICELAB_TEST_PG to run the PostgreSQL variant");
        return;
    };
    use sqlx::Connection;
    let name = format!("slicelab_kill_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.expect("pg");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await
        .expect("drop");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create");
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .expect("url");
    survives(&format!("{base}/{name}")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;
}

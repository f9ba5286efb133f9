//! A real central on loopback, on SQLite (a temp file) or PostgreSQL (a fresh database per test
//! on the server named by `SLICELAB_TEST_PG`, which `.ci/run` starts).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};
use slicelab_central::{BlobConfig, Config, Running};
use slicelab_client::Client;
use slicelab_model::objects::{LoginResponse, NodeWithKey};
use slicelab_model::Slice;
use sqlx::Connection;

pub const ADMIN_EMAIL: &str = "admin@slicelab.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "password-123";

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// Server URL of an administrative database (e.g. `postgres://postgres:pw@127.0.0.1/postgres`).
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend if configured. Under CI it must be: a silent skip there would hide
    /// the PostgreSQL half of the suite.
    pub fn postgres() -> Option<Backend> {
        match std::env::var("SLICELAB_TEST_PG") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                assert!(
                    std::env::var("CI").is_err(),
                    "CI must set SLICELAB_TEST_PG so the registry tests run on PostgreSQL too"
                );
                eprintln!("SKIPPED: PostgreSQL variant; set SLICELAB_TEST_PG=postgres://USER:PW@127.0.0.1/postgres to run it");
                None
            }
        }
    }
}

/// Runs an async test body against SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(b) = common::Backend::postgres() {
                    super::$name(b).await
                }
            }
        }
    )*};
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct TestCentral {
    pub running: Option<Running>,
    pub base: String,
    pub db_url: String,
    /// Where this central keeps image blobs (`sha256/<hex>` below).
    pub blob_dir: std::path::PathBuf,
    pub admin: Client,
    _tmp: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestCentral {
    pub async fn start(backend: Backend) -> TestCentral {
        Self::start_with(backend, BlobConfig::default()).await
    }

    /// A central whose blobs are as `blobs` says, in a directory of its own.
    pub async fn start_with(backend: Backend, mut blobs: BlobConfig) -> TestCentral {
        let tmp = tempfile::tempdir().expect("tempdir");
        let blob_dir = tmp.path().join("blobs");
        blobs.blob_dir = Some(blob_dir.clone());
        let (db_url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}/central.db", tmp.path().display()),
                None,
            ),
            Backend::Postgres(admin_url) => {
                let name = format!(
                    "slicelab_test_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst)
                );
                let mut c = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("connect to PostgreSQL");
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&mut c)
                    .await
                    .expect("drop db");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await
                    .expect("create db");
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or(admin_url.clone());
                (format!("{base}/{name}"), Some((admin_url, name)))
            }
        };
        let running = start_central_with(&db_url, blobs).await;
        let base = format!("http://{}", running.addr);
        let admin = login(&base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        TestCentral {
            running: Some(running),
            base,
            db_url,
            blob_dir,
            admin,
            _tmp: tmp,
            pg,
        }
    }

    pub fn anon(&self) -> Client {
        Client::new(&self.base, None)
    }

    pub async fn login(&self, email: &str) -> Client {
        login(&self.base, email, PASSWORD).await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        // The database goes with `self` (`Drop`, below).
    }
}

pub async fn start_central(db_url: &str) -> Running {
    slicelab_central::start(config(db_url))
        .await
        .expect("central starts")
}

fn config(db_url: &str) -> Config {
    Config {
        db_url: db_url.to_string(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_email: ADMIN_EMAIL.into(),
        admin_password: Some(ADMIN_PASSWORD.into()),
        tls: None,
    }
}

pub async fn start_central_with(db_url: &str, blobs: BlobConfig) -> Running {
    slicelab_central::start_with(config(db_url), blobs, axum::Router::new())
        .await
        .expect("central starts")
}

pub async fn login(base: &str, email: &str, password: &str) -> Client {
    let anon = Client::new(base, None);
    let r: LoginResponse = anon
        .post(
            "/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
        .unwrap_or_else(|e| panic!("login {email}: {e}"));
    anon.with_token(r.token)
}

/// Two sites with a PI, a user and a tech each (princeton has all three; mit a PI and a user),
/// and a node at each site.
pub struct Fixture {
    pub pi_p: Client,
    pub user_p: Client,
    pub tech_p: Client,
    pub pi_m: Client,
    pub user_m: Client,
    pub node_p: NodeWithKey,
    pub node_m: NodeWithKey,
}

pub async fn fixture(tc: &TestCentral) -> Fixture {
    let a = &tc.admin;
    for (lb, name) in [("princeton", "Princeton University"), ("mit", "MIT")] {
        let _: Value = a
            .post(
                "/sites",
                &json!({"login_base": lb, "name": name, "max_slices": 3}),
            )
            .await
            .expect("site");
    }
    for (email, role, site) in [
        ("pi@princeton.test", "pi", "princeton"),
        ("user@princeton.test", "user", "princeton"),
        ("tech@princeton.test", "tech", "princeton"),
        ("pi@mit.test", "pi", "mit"),
        ("user@mit.test", "user", "mit"),
    ] {
        let _: Value = a
            .post(
                "/persons",
                &json!({"email": email, "first_name": "A", "last_name": "B", "password": PASSWORD,
                        "roles": [role], "sites": [site]}),
            )
            .await
            .expect("person");
    }
    let node_p: NodeWithKey = a
        .post(
            "/nodes",
            &json!({"hostname": "node1.princeton.test", "site": "princeton"}),
        )
        .await
        .expect("node");
    let node_m: NodeWithKey = a
        .post(
            "/nodes",
            &json!({"hostname": "node1.mit.test", "site": "mit"}),
        )
        .await
        .expect("node");
    Fixture {
        pi_p: tc.login("pi@princeton.test").await,
        user_p: tc.login("user@princeton.test").await,
        tech_p: tc.login("tech@princeton.test").await,
        pi_m: tc.login("pi@mit.test").await,
        user_m: tc.login("user@mit.test").await,
        node_p,
        node_m,
    }
}

/// The HTTP status of a failed call (panics if it succeeded).
pub fn status<T: std::fmt::Debug>(r: Result<T, slicelab_client::ClientError>) -> u16 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e
            .status()
            .unwrap_or_else(|| panic!("expected an HTTP error, got {e}")),
    }
}

/// Creates slice `name` as `c` (which must be allowed to).
pub async fn new_slice(c: &Client, name: &str) -> Slice {
    c.post("/slices", &json!({"name": name, "description": "test"}))
        .await
        .unwrap_or_else(|e| panic!("create slice {name}: {e}"))
}

/// Drops the test's PostgreSQL database when the fixture goes: after `stop`, or when a test
/// ended without it (a failed assertion, an early return). No database is left on the server.
impl Drop for TestCentral {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.pg.take() else {
            return;
        };
        // Drop may run inside the test's runtime: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

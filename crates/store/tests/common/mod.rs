//! A fresh store per test, on SQLite (a temp file) or PostgreSQL (a fresh database on the server
//! named by `SLICELAB_TEST_PG`, as central's tests use it), and a small registry to test on.

#![allow(dead_code)]

use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};

use slicelab_model::{
    BootState, Node, NodeCreate, PersonCreate, Role, Site, SiteCreate, Slice, SliceCreate,
};
use slicelab_store::{EventFilter, Paging, PersonRecord, Store};
use sqlx::Connection;

/// The clock of every test: a fixed moment, so expiry and windows are exact.
pub const NOW: i64 = 1_800_000_000;
/// Who makes the registry writes of the tests.
pub const ADMIN: &str = "person:admin@store.test";

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
                    "CI must set SLICELAB_TEST_PG so the store tests run on PostgreSQL too"
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

/// An open store on a database of its own, removed by [`TestStore::close`].
pub struct TestStore {
    store: Store,
    /// The database's URL, to open another store on it (a second central replica).
    pub url: String,
    _tmp: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl TestStore {
    pub async fn open(backend: Backend) -> TestStore {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (url, pg) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/store.db", tmp.path().display()), None),
            Backend::Postgres(admin_url) => {
                let name = format!(
                    "slicelab_store_test_{}_{}",
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
        let store = Store::open(&url).await.expect("store opens");
        TestStore {
            store,
            url,
            _tmp: tmp,
            pg,
        }
    }

    pub async fn close(self) {
        self.store.close().await;
        // The database goes with `self` (`Drop`, below).
    }
}

pub async fn site(s: &Store, login_base: &str, max_slices: i64) -> Site {
    s.create_site(
        ADMIN,
        NOW,
        &SiteCreate {
            login_base: login_base.into(),
            name: format!("Site {login_base}"),
            url: String::new(),
            max_slices,
            latitude: None,
            longitude: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("site {login_base}: {e}"))
}

pub fn node_create(hostname: &str, site: &Site) -> NodeCreate {
    NodeCreate {
        hostname: hostname.into(),
        site: site.login_base.clone(),
        boot_state: BootState::Boot,
        cpu_cores: 2,
        mem_mb: 4096,
        disk_gb: 100,
        region: String::new(),
        reservable: false,
    }
}

pub async fn node(s: &Store, hostname: &str, site: &Site) -> Node {
    s.create_node(
        ADMIN,
        NOW,
        &node_create(hostname, site),
        site.id,
        &format!("hash-{hostname}"),
    )
    .await
    .unwrap_or_else(|e| panic!("node {hostname}: {e}"))
}

pub fn slice_create(name: &str) -> SliceCreate {
    SliceCreate {
        name: name.into(),
        description: format!("slice {name}"),
        url: String::new(),
    }
}

/// A slice of `site` expiring a day from [`NOW`].
pub async fn slice(s: &Store, site: &Site, name: &str) -> Slice {
    s.create_slice(
        ADMIN,
        NOW,
        &slice_create(name),
        site.id,
        site.max_slices,
        NOW + 86_400,
    )
    .await
    .unwrap_or_else(|e| panic!("slice {name}: {e}"))
}

pub fn person_create(email: &str, site: &Site) -> PersonCreate {
    PersonCreate {
        email: email.into(),
        first_name: "A".into(),
        last_name: "B".into(),
        password: None,
        roles: vec![Role::Pi],
        sites: vec![site.login_base.clone()],
    }
}

pub async fn person(s: &Store, email: &str, site: &Site) -> PersonRecord {
    s.create_person(ADMIN, NOW, &person_create(email, site), None, &[site.id])
        .await
        .unwrap_or_else(|e| panic!("person {email}: {e}"));
    s.person(email).await.expect("person reads back")
}

/// Adds `nodes` to `slice`.
pub async fn assign(s: &Store, slice: &Slice, nodes: &[&Node]) -> Slice {
    let ids: Vec<(i64, String)> = nodes.iter().map(|n| (n.id, n.hostname.clone())).collect();
    s.add_slice_nodes(ADMIN, NOW, slice, &ids)
        .await
        .expect("add nodes")
}

/// How many events the log holds.
pub async fn event_count(s: &Store) -> i64 {
    s.list_events(&EventFilter::default(), Paging::default())
        .await
        .expect("events")
        .1
}

/// The newest event's action and object name.
pub async fn last_event(s: &Store) -> (String, String) {
    let (events, _) = s
        .list_events(&EventFilter::default(), Paging::default())
        .await
        .expect("events");
    let e = events.first().expect("an event");
    (e.action.clone(), e.object_name.clone())
}

pub const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6mwuiCgEj5IOErDJ69hnStVLbIEwiAnpCShyp6iSC/ alice@laptop";

/// Drops the test's PostgreSQL database when the fixture goes: after `close`, or when a test
/// ended without it (a failed assertion, an early return). No database is left on the server.
impl Drop for TestStore {
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

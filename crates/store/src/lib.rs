//! central's store: the registry, the event log and node reports, in SQLite or PostgreSQL.
//!
//! One code path serves both backends through sqlx's `Any` driver: queries use `$N` placeholders
//! (which SQLite accepts too), columns hold only integers, reals and text, and each backend has
//! its own copy of the migrations where DDL differs (`migrations/{sqlite,postgres}`). The one
//! exception is the flow ingest on PostgreSQL (`flows::pg`), which sends binary `COPY` and binds
//! whole columns as arrays through a small typed pool.
//! Every write runs in one transaction that also appends its event, so the audit log cannot miss
//! a change that was stored.

#![forbid(unsafe_code)]

mod auth;
mod captures;
mod defaults;
mod desired;
mod events;
mod flows;
mod images;
mod join;
mod leases;
mod nodes;
mod peers;
mod persons;
mod pgcopy;
mod placement;
mod replicas;
mod reports;
mod reports_batch;
mod rows;
mod sites;
mod slices;
mod usage;

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Transaction};
use thiserror::Error;

pub use auth::{AuthSubject, TokenKind};
pub use desired::{assemble, DesiredScope, NodeInputs, PublishedImage, SliceInputs, SliceTagInput};
pub use events::{EventFilter, NewEvent};
pub use flows::{FlowFilter, LookupRow};
pub use images::{ImageRecord, NewImageRecord};
pub use join::Redeemed;
pub use nodes::NodeFilter;
pub use peers::{foreign_slice_hash, PeerWithSecret, Woken};
pub use persons::{PersonFilter, PersonRecord};
pub use replicas::{
    Allowance, ChangeListener, Heard, LeaderLock, Take, CHANGES_CHANNEL, MAX_NOTIFY_PAYLOAD,
};
pub use slices::SliceFilter;
pub use usage::{UsageRank, UsageScope};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Publishing an image would take its site over its image quota.
    #[error("{0}")]
    OverQuota(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    BadUrl(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Turns constraint violations into `Conflict` with a message people can act on.
pub(crate) fn conflict_or(e: sqlx::Error, unique: &str, foreign: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => {
                return StoreError::Conflict(unique.to_string())
            }
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                return StoreError::Conflict(foreign.to_string())
            }
            // SQLite enforces `ON DELETE RESTRICT` like a trigger and reports it as
            // SQLITE_CONSTRAINT_TRIGGER (1811), which sqlx does not classify; PostgreSQL reports
            // the same refusal as a foreign-key violation.
            _ if db.code().as_deref() == Some("1811")
                && db.message().contains("FOREIGN KEY constraint failed") =>
            {
                return StoreError::Conflict(foreign.to_string())
            }
            _ => {}
        }
    }
    StoreError::Db(e)
}

#[derive(Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer; a deferred transaction that reads and then writes can fail with
    /// SQLITE_BUSY if another wrote meanwhile. Serialising our own writes avoids that.
    write_lock: tokio::sync::Mutex<()>,
    /// For the connections outside the pool (`replicas`: change listener, leader lock).
    url: replicas::DbUrl,
    /// PostgreSQL only: a small typed pool for the flow ingest, which binds whole columns as
    /// arrays (the `Any` driver binds only scalars). Connects on first use.
    pg: Option<sqlx::PgPool>,
}

pub(crate) type Tx<'a> = Transaction<'a, Any>;

/// A write in progress: a transaction plus, for SQLite, the writer lock held until commit.
pub struct WriteTx<'a> {
    pub(crate) tx: Tx<'static>,
    _guard: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl WriteTx<'_> {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        let url = match backend {
            // Create the file on first start.
            Backend::Sqlite if !url.contains("mode=") => {
                if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            _ => url.to_string(),
        };
        if backend == Backend::Sqlite {
            if let Some(path) = url
                .strip_prefix("sqlite://")
                .and_then(|p| p.split('?').next())
            {
                if let Some(dir) = std::path::Path::new(path).parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
                    }
                }
            }
        }
        let opts = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; synchronous=FULL makes a commit
                        // durable before we answer, so a kill right after a 2xx keeps the write.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 10000",
                            // Flow and usage tables grow large; a bigger page cache keeps their
                            // index inserts from re-reading pages (default is only 2 MiB).
                            "PRAGMA cache_size = -65536",
                            "PRAGMA temp_store = MEMORY",
                            // Bulk flow batches dirty many index pages; checkpoint the WAL in
                            // bigger, rarer steps.
                            "PRAGMA wal_autocheckpoint = 16384",
                            "PRAGMA mmap_size = 268435456",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect_lazy_with(sqlx::postgres::PgConnectOptions::from_str(&url)?),
            ),
        };
        Ok(Store {
            pool,
            backend,
            write_lock: tokio::sync::Mutex::new(()),
            url: replicas::DbUrl(url),
            pg,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        if let Some(pg) = &self.pg {
            pg.close().await;
        }
        self.pool.close().await;
    }

    pub(crate) async fn write(&self) -> Result<WriteTx<'_>> {
        let guard = match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        };
        // SQLite: take the database's write lock at BEGIN. A deferred transaction that read
        // first fails at once ("database is locked", SQLITE_BUSY_SNAPSHOT) if a write outside
        // this lock (a counter, another process) committed after its read; IMMEDIATE waits for
        // the lock (busy_timeout) and never works on a stale snapshot.
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx { tx, _guard: guard })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// One row of `select` (which ends before its WHERE) whose `id_col` is `key` if `key` is a
    /// number, else whose `name_col` is `key`: objects are addressed by id or by name.
    pub(crate) async fn by_id_or_name<T>(
        &self,
        select: &str,
        id_col: &str,
        name_col: &str,
        key: &str,
    ) -> Result<Option<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let id = rows::as_id(key);
        let col = if id.is_some() { id_col } else { name_col };
        let sql = format!("{select} WHERE {col} = $1");
        let q = sqlx::query_as::<_, T>(&sql);
        let q = match id {
            Some(id) => q.bind(id),
            None => q.bind(key.to_string()),
        };
        Ok(q.fetch_optional(&self.pool).await?)
    }

    /// Sizes of the registry, for `/metrics`.
    pub async fn counts(&self) -> Result<Vec<(&'static str, i64)>> {
        let mut out = Vec::new();
        for (name, table) in [
            ("sites", "sites"),
            ("persons", "persons"),
            ("nodes", "nodes"),
            ("slices", "slices"),
            ("slice_nodes", "slice_nodes"),
            ("events", "events"),
            ("images", "images"),
            ("image_blobs", "image_blobs"),
        ] {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&self.pool)
                .await?;
            out.push((name, n));
        }
        Ok(out)
    }
}

/// A listing page request.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub limit: i64,
    pub offset: i64,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            limit: 100,
            offset: 0,
        }
    }
}

/// Builds `WHERE` clauses with numbered placeholders; values are bound in order.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I(i64),
    S(String),
}

impl Filter {
    /// `clause` uses `{}` where the placeholder goes.
    pub(crate) fn add(&mut self, clause: &str, arg: Arg) {
        self.args.push(arg);
        let ph = format!("${}", self.args.len());
        self.clauses.push(clause.replace("{}", &ph));
    }

    /// Adds `(a OR b OR ...)`; each clause uses `{}` for its placeholder.
    pub(crate) fn any_of(&mut self, alts: Vec<(&str, Arg)>) {
        let mut parts = Vec::new();
        for (clause, arg) in alts {
            self.args.push(arg);
            parts.push(clause.replace("{}", &format!("${}", self.args.len())));
        }
        if !parts.is_empty() {
            self.clauses.push(format!("({})", parts.join(" OR ")));
        }
    }

    pub(crate) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub(crate) fn bind<'q, O>(
        &self,
        mut q: sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>> {
        for a in &self.args {
            q = match a {
                Arg::I(v) => q.bind(*v),
                Arg::S(v) => q.bind(v.clone()),
            };
        }
        q
    }

    pub(crate) fn bind_scalar<'q, O>(
        &self,
        mut q: sqlx::query::QueryScalar<'q, Any, O, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::QueryScalar<'q, Any, O, sqlx::any::AnyArguments<'q>> {
        for a in &self.args {
            q = match a {
                Arg::I(v) => q.bind(*v),
                Arg::S(v) => q.bind(v.clone()),
            };
        }
        q
    }
}

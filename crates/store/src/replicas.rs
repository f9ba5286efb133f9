//! What lets several central replicas share one PostgreSQL database: change notifications
//! (`LISTEN`/`NOTIFY`), the leader's advisory lock, per-job transaction locks, and shared rate
//! allowances. On SQLite (one central process) notifications and leadership are no-ops: the
//! process is alone, hence always the leader.
//!
//! Nothing here is registry state: notifications are transient, the leader lock lives as long as
//! one connection, and rate allowances are counters in an `UNLOGGED` table (a crash of the
//! database gives every client a full allowance again). None of it appends events.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::{Backend, Result, Store, StoreError, WriteTx};

/// The channel central replicas announce committed changes on.
pub const CHANGES_CHANNEL: &str = "slicelab_changes";

/// PostgreSQL refuses a notification payload of 8000 bytes or more.
pub const MAX_NOTIFY_PAYLOAD: usize = 7999;

/// Session-level advisory lock held by the leading replica (ASCII "slicelab").
const LEADER_KEY: i64 = 0x736c_6963_656c_6162;
/// First half of the two-part keys of [`JobLock`]s (ASCII "slab"; two-part keys are a key space
/// of their own, apart from [`LEADER_KEY`]).
const JOB_LOCK_CLASS: i32 = 0x736c_6162;

/// Transaction-level advisory locks that serialise one periodic job across replicas, so a brief
/// overlap of two leaders at a handover runs the job twice in a row, never interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobLock {
    UsageRollup = 1,
    FlowExpiry = 2,
}

/// How long the leader's connection may stay silent before PostgreSQL ends it (and so releases
/// the lock): longer than a leader takes to notice a dead connection (`LeaderLock::still_held`
/// under its caller's timeout), so a cut-off leader stops before another can start.
const LEADER_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A token bucket: `burst` tokens at most, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    pub burst: f64,
    pub per_second: f64,
}

/// What taking a token from a shared bucket gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    Granted,
    /// No token left; one is back in this many seconds.
    Refused {
        wait_s: f64,
    },
}

/// What a change listener heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A notification's payload.
    Payload(String),
    /// The connection was lost and made again: notifications sent meanwhile are lost.
    Reconnected,
}

/// The database URL, kept to open the connections a pool cannot serve (a listener, the leader's
/// lock); never printed, as it may hold a password.
pub(crate) struct DbUrl(pub(crate) String);

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbUrl(..)")
    }
}

impl Store {
    fn pg_options(&self, application: &str) -> Result<PgConnectOptions> {
        Ok(PgConnectOptions::from_str(&self.url.0)?.application_name(application))
    }

    /// Announces `payload` to every replica listening on [`CHANGES_CHANNEL`] (after the write it
    /// describes has committed). Nothing on SQLite.
    pub async fn notify_changes(&self, payload: &str) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        if payload.len() > MAX_NOTIFY_PAYLOAD {
            return Err(StoreError::Conflict(format!(
                "a change notification holds at most {MAX_NOTIFY_PAYLOAD} bytes"
            )));
        }
        // `pg_notify` returns `void`, which the `Any` driver cannot decode: count its one row.
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM (SELECT pg_notify($1, $2)) AS n")
            .bind(CHANGES_CHANNEL)
            .bind(payload)
            .fetch_one(self.pool())
            .await?;
        Ok(())
    }

    /// A connection listening on [`CHANGES_CHANNEL`]; `None` on SQLite.
    pub async fn change_listener(&self) -> Result<Option<ChangeListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        // As `PgListener::connect` does, with our application name.
        let pool = sqlx::pool::PoolOptions::<sqlx::Postgres>::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.pg_options("slicelab-central-listener")?);
        let mut l = PgListener::connect_with(&pool).await?;
        l.listen(CHANGES_CHANNEL).await?;
        Ok(Some(ChangeListener(l)))
    }

    /// A dedicated connection for the leader's advisory lock; `None` on SQLite (always leader).
    pub async fn leader_lock(&self) -> Result<Option<LeaderLock>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut conn = self
            .pg_options("slicelab-central-leader")?
            .connect()
            .await?;
        // A leader cut off from the database must lose the lock even if no FIN reaches the
        // server: end the session once it is silent (the holder pings far more often).
        let idle = format!(
            "SET idle_session_timeout = {}",
            LEADER_IDLE_TIMEOUT.as_millis()
        );
        for set in [
            idle.as_str(),
            "SET tcp_keepalives_idle = 5",
            "SET tcp_keepalives_interval = 2",
            "SET tcp_keepalives_count = 3",
        ] {
            if let Err(e) = sqlx::query(set).execute(&mut conn).await {
                tracing::debug!(error = %e, "leader connection setting refused");
            }
        }
        Ok(Some(LeaderLock { conn }))
    }

    /// Takes one token from the bucket `key` shared by every replica, refilling it for the time
    /// since it was last used (`now` in fractional Unix seconds). One statement: concurrent takes
    /// of one key queue on its row, so no token is handed out twice.
    pub async fn take_token(&self, key: &str, now: f64, a: Allowance) -> Result<Take> {
        // Every right-hand side sees the row as it was: `avail` is the refilled balance.
        let avail = "(CASE WHEN rate_buckets.tokens + (CASE WHEN $3 > rate_buckets.at \
                     THEN $3 - rate_buckets.at ELSE 0 END) * $4 > $2 THEN $2 \
                     ELSE rate_buckets.tokens + (CASE WHEN $3 > rate_buckets.at \
                     THEN $3 - rate_buckets.at ELSE 0 END) * $4 END)";
        let sql = format!(
            "INSERT INTO rate_buckets (key, tokens, at, granted) VALUES ($1, $2 - 1, $3, 1) \
             ON CONFLICT (key) DO UPDATE SET \
             tokens = CASE WHEN {avail} >= 1 THEN {avail} - 1 ELSE {avail} END, \
             granted = CASE WHEN {avail} >= 1 THEN 1 ELSE 0 END, \
             at = CASE WHEN $3 > rate_buckets.at THEN $3 ELSE rate_buckets.at END \
             RETURNING tokens, granted"
        );
        let (tokens, granted): (f64, i32) = sqlx::query_as(&sql)
            .bind(key)
            .bind(a.burst)
            .bind(now)
            .bind(a.per_second)
            .fetch_one(self.pool())
            .await?;
        Ok(if granted == 1 {
            Take::Granted
        } else {
            Take::Refused {
                wait_s: (1.0 - tokens) / a.per_second,
            }
        })
    }

    /// Forgets buckets untouched since `before` (they have refilled: a new one is the same).
    pub async fn forget_rate_buckets(&self, before: f64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM rate_buckets WHERE at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }
}

impl Store {
    /// A write transaction that first waits for (PostgreSQL) the transaction-level lock of
    /// `job`, held until it ends; on SQLite the writer lock already serialises writes.
    pub(crate) async fn write_job(&self, job: JobLock) -> Result<WriteTx<'_>> {
        let mut w = self.write().await?;
        if self.backend == Backend::Postgres {
            // `pg_advisory_xact_lock` returns `void`: count its one row.
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1, $2)) AS l",
            )
            .bind(JOB_LOCK_CLASS)
            .bind(job as i32)
            .fetch_one(&mut *w.tx)
            .await?;
        }
        Ok(w)
    }
}

/// A connection subscribed to [`CHANGES_CHANNEL`].
pub struct ChangeListener(PgListener);

impl ChangeListener {
    /// The next notification, or [`Heard::Reconnected`] after the connection was lost and made
    /// again. An error means it could not be made again (yet); calling again retries.
    pub async fn next(&mut self) -> Result<Heard> {
        Ok(match self.0.try_recv().await? {
            Some(n) => Heard::Payload(n.payload().to_string()),
            None => Heard::Reconnected,
        })
    }
}

/// The leader's dedicated connection. The lock is session-level: PostgreSQL releases it when
/// the session ends, whether the holder unlocks, exits, is killed or loses its connection.
pub struct LeaderLock {
    conn: PgConnection,
}

impl LeaderLock {
    /// Takes the leader's lock if no other session holds it.
    pub async fn try_acquire(&mut self) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_KEY)
            .fetch_one(&mut self.conn)
            .await?)
    }

    /// Whether this session still holds the lock (an error: the connection is gone, so the lock
    /// is too).
    pub async fn still_held(&mut self) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = $1 \
             AND objsubid = 1)",
        )
        .bind(LEADER_KEY)
        .fetch_one(&mut self.conn)
        .await?)
    }

    /// Releases the lock and closes the connection (a successor need not wait for the server to
    /// notice a dropped one).
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut self.conn)
            .await;
        let _ = self.conn.close().await;
    }
}

//! Which central replica runs the periodic jobs: the one holding PostgreSQL's session-level
//! advisory lock (`slicelab_store::LeaderLock`) on a connection of its own.
//!
//! The lock lives exactly as long as that session: when the leader exits, is killed or loses the
//! connection, PostgreSQL releases it and a follower (which tries every [`RETRY`]) takes it. The
//! leader checks every [`CHECK`] that its session still holds the lock; a check that fails or
//! takes longer than [`CHECK_TIMEOUT`] ends its leadership before it runs another job. The server
//! ends a silent leader session after 10 s (`idle_session_timeout`, longer than a leader takes to
//! notice), so a leader cut off from the database stops before a successor can start. The jobs
//! themselves stay safe if two ever overlap (see `crate::jobs`). On SQLite the one process leads.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use slicelab_store::Store;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often a follower tries to take the lock.
pub(crate) const RETRY: Duration = Duration::from_secs(2);
/// How often the leader checks that it still holds the lock.
const CHECK: Duration = Duration::from_secs(1);
/// A check or attempt slower than this counts as a lost connection.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Sets and logs this central's leadership.
struct Role {
    tx: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl Role {
    fn set(&self, lead: bool, why: &str) {
        if *self.tx.borrow() == lead {
            return;
        }
        self.metrics
            .leader
            .store(i64::from(lead), Ordering::Relaxed);
        self.tx.send_replace(lead);
        if lead {
            tracing::info!("this central is now the leader: it runs the periodic jobs ({why})");
        } else {
            tracing::warn!("this central is no longer the leader ({why})");
        }
    }
}

/// Keeps `tx` saying whether this central leads, until `stop` (then releases the lock).
pub(crate) async fn hold(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    tx: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let role = Role { tx, metrics };
    loop {
        let mut lock = match store.leader_lock().await {
            Ok(Some(l)) => l,
            Ok(None) => {
                role.set(true, "the only central on its SQLite database");
                stop.cancelled().await;
                role.set(false, "shutting down");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect for the leader's lock; retrying");
                if pause(&stop, RETRY).await {
                    return;
                }
                continue;
            }
        };
        loop {
            let leading = *role.tx.borrow();
            let step = if leading {
                tokio::time::timeout(CHECK_TIMEOUT, lock.still_held()).await
            } else {
                tokio::time::timeout(CHECK_TIMEOUT, lock.try_acquire()).await
            };
            match step {
                Ok(Ok(true)) => role.set(true, "took the advisory lock"),
                Ok(Ok(false)) if !leading => {}
                Ok(Ok(false)) => {
                    role.set(false, "its session no longer holds the lock");
                    break;
                }
                Ok(Err(e)) => {
                    role.set(false, "lost its database connection");
                    tracing::warn!(error = %e, "leader's connection failed; connecting again");
                    break;
                }
                Err(_) => {
                    role.set(false, "its database connection stopped answering");
                    break;
                }
            }
            let every = if *role.tx.borrow() { CHECK } else { RETRY };
            if pause(&stop, every).await {
                role.set(false, "shutting down");
                // Unlock at once: a successor need not wait for the server to see us gone.
                lock.release().await;
                return;
            }
        }
        // The connection (and so the lock, if held) is dropped; connect again after a pause.
        drop(lock);
        if pause(&stop, RETRY).await {
            return;
        }
    }
}

/// Sleeps `d`; true if `stop` came first.
async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

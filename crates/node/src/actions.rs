//! What persons did through the node's services (the `site_admin` context, captures), kept on
//! disk until central has stored it: each goes out with the next report and becomes an event
//! whose actor is the person (`store::reports`).
//!
//! A crash loses nothing recorded: every action is written (atomically) before the service
//! answers, and removed only once a report carrying it was acknowledged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use slicelab_model::sliver::{NodeAction, NodeActionKind};
use slicelab_model::time::now;
use tokio::sync::Notify;
use tracing::warn;

use crate::state::write_atomic;

/// The most actions one report carries (the API's bound); more wait for the next.
pub const PER_REPORT: usize = 1000;

/// The most actions kept while central is unreachable; beyond it the oldest are dropped (and
/// the log says so), so a node cut off for weeks does not fill its disk.
const KEPT_MAX: usize = 100_000;

/// The node's journal of actions not yet acknowledged by central. Cheap to clone.
#[derive(Clone)]
pub struct ActionLog {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    pending: Mutex<Vec<NodeAction>>,
    /// Wakes the daemon so that an action reaches central (and a stop takes effect) at once.
    kick: Notify,
}

impl ActionLog {
    /// Opens (or starts) the journal under `state_dir`.
    pub fn open(state_dir: &Path) -> ActionLog {
        let path = state_dir.join("actions.json");
        let pending = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        ActionLog {
            inner: Arc::new(Inner {
                path,
                pending: Mutex::new(pending),
                kick: Notify::new(),
            }),
        }
    }

    /// Records that `person` did `kind` (on `slice`), and wakes the daemon.
    pub fn record(&self, person: &str, kind: NodeActionKind, slice: Option<&str>, detail: Value) {
        let detail = match detail {
            Value::Object(m) => m,
            Value::Null => serde_json::Map::new(),
            other => serde_json::Map::from_iter([("detail".to_string(), other)]),
        };
        let action = NodeAction {
            at: now(),
            person: person.to_string(),
            kind,
            slice: slice.map(String::from),
            detail,
        };
        {
            let mut p = self.lock();
            p.push(action);
            if p.len() > KEPT_MAX {
                let drop = p.len() - KEPT_MAX;
                warn!(
                    dropped = drop,
                    "too many actions not yet stored by central; oldest dropped"
                );
                p.drain(..drop);
            }
            self.save(&p);
        }
        self.inner.kick.notify_one();
    }

    /// The oldest actions not yet acknowledged (at most [`PER_REPORT`]), for the next report.
    pub fn next_batch(&self) -> Vec<NodeAction> {
        self.lock().iter().take(PER_REPORT).cloned().collect()
    }

    /// Central stored the first `n` actions of the batch it was sent.
    pub fn acknowledged(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut p = self.lock();
        let n = n.min(p.len());
        p.drain(..n);
        self.save(&p);
    }

    /// How many wait for central.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Resolves when an action was recorded (or [`ActionLog::kick`] called) since the last wait.
    pub async fn kicked(&self) {
        self.inner.kick.notified().await
    }

    /// Wakes the daemon without an action (e.g. a sliver to restart now).
    pub fn kick(&self) {
        self.inner.kick.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<NodeAction>> {
        self.inner.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, pending: &[NodeAction]) {
        match serde_json::to_vec(pending) {
            Ok(b) => {
                if let Err(e) = write_atomic(&self.inner.path, &b) {
                    warn!(error = %e, "cannot save the node's action journal");
                }
            }
            Err(e) => warn!(error = %e, "cannot encode the node's action journal"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_survive_a_restart_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let log = ActionLog::open(dir.path());
        log.record("a@x", NodeActionKind::SliverStop, Some("pl_a"), Value::Null);
        log.record(
            "b@x",
            NodeActionKind::AdminCommand,
            None,
            serde_json::json!({"command": "log"}),
        );
        let again = ActionLog::open(dir.path());
        let batch = again.next_batch();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].person, "a@x");
        again.acknowledged(1);
        let third = ActionLog::open(dir.path());
        assert_eq!(third.next_batch().len(), 1);
        assert_eq!(third.next_batch()[0].person, "b@x");
        third.acknowledged(5);
        assert_eq!(ActionLog::open(dir.path()).pending(), 0);
    }
}

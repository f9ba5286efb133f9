use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use slicelab_store::Store;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    /// Bumped after every committed write; node long-polls wait on it.
    pub changes: Arc<watch::Sender<u64>>,
    pub metrics: Arc<Metrics>,
    /// Set when shutting down: waiting long-polls answer at once instead of holding shutdown.
    pub stopping: Arc<AtomicBool>,
}

impl AppState {
    /// Wakes waiting node long-polls: the registry changed.
    pub fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn stop_waiters(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.changed();
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

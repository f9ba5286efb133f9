//! A thread that moves records from a [`Collector`] into a [`FlowJournal`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::warn;

use crate::collector::{Collector, CollectorStats};
use crate::error::FlowError;
use crate::journal::FlowJournal;
use crate::FlowRecord;

/// Records kept in memory while the journal cannot be written (disk full…); past this the oldest
/// are dropped rather than growing without bound.
const MAX_UNSAVED: usize = 1_000_000;

/// The auditor of a node: a thread that collects flow records and appends them to the journal
/// every `batch_every`. The sender (the node manager's loop) reads `journal.pending()`, POSTs
/// each batch and calls `journal.ack(seq)`.
///
/// The collector must have been opened in the node manager's network namespace (the one holding
/// the sliver NAT); the thread itself may run anywhere, since netlink sockets keep their
/// namespace.
pub struct Auditor {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<CollectorStats>>,
    handle: Option<JoinHandle<()>>,
}

impl Auditor {
    pub fn spawn(
        mut collector: Collector,
        journal: Arc<Mutex<FlowJournal>>,
        batch_every: Duration,
    ) -> Result<Auditor, FlowError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(collector.stats()));
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let handle = std::thread::Builder::new()
            .name("flow-auditor".into())
            .spawn(move || {
                let mut unsaved: Vec<FlowRecord> = Vec::new();
                loop {
                    let stopping = stop2.load(Ordering::Relaxed);
                    // One last quick pass after stop, so what is queued is saved.
                    let wait = if stopping {
                        Duration::ZERO
                    } else {
                        batch_every
                    };
                    match collector.next_batch(wait) {
                        Ok(recs) => unsaved.extend(recs),
                        Err(e) => {
                            warn!("flow collector: {e}");
                            if !stopping {
                                std::thread::sleep(Duration::from_secs(1));
                            }
                        }
                    }
                    if !unsaved.is_empty() {
                        let saved = journal
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .append(&unsaved);
                        match saved {
                            Ok(_) => unsaved.clear(),
                            Err(e) => {
                                warn!(
                                    "flow journal: {e}; keeping {} records in memory",
                                    unsaved.len()
                                );
                                if unsaved.len() > MAX_UNSAVED {
                                    let excess = unsaved.len() - MAX_UNSAVED;
                                    unsaved.drain(..excess);
                                }
                            }
                        }
                    }
                    *stats2.lock().unwrap_or_else(|p| p.into_inner()) = collector.stats();
                    if stopping {
                        return;
                    }
                }
            })
            .map_err(|source| FlowError::Io {
                context: "starting the flow auditor thread".into(),
                source,
            })?;
        Ok(Auditor {
            stop,
            stats,
            handle: Some(handle),
        })
    }

    pub fn stats(&self) -> CollectorStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the thread after saving what is queued (returns within about `batch_every`).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Auditor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

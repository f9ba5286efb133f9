//! The state every request handler shares: the store, the blob directory, the wake-up signals
//! of node long-polls (and their publisher to other replicas), the desired-state cache, metrics,
//! the report queue and the lookup rate limits.
//!
//! Front ends outside central (the web) only name `AppState` as their router's state: every
//! field is central's own, reached through `crate::ops` and `crate::queries`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use slicelab_store::{Backend, Store};
use tokio::sync::watch;

use crate::blobs::BlobStore;
use crate::limits::LookupLimiter;
use crate::metrics::Metrics;
use crate::wakeups::{Publisher, Wake};

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Arc<Store>,
    /// Image blobs on disk, and the bound on concurrent blob downloads.
    pub(crate) blobs: Arc<BlobStore>,
    /// Bumped after a committed write that may concern any node (a person's keys, a site).
    pub(crate) changes: Arc<watch::Sender<u64>>,
    /// Bumped per node (by hostname) after a write that concerns only some nodes, so a change
    /// to one slice wakes the long-polls of its nodes, not of all nodes.
    pub(crate) node_changes: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Each node's last computed desired slivers, with the change generations (registry-wide,
    /// node's own) they were computed at and when the clock alone changes them next.
    pub(crate) desired_cache: Arc<Mutex<HashMap<i64, CachedDesired>>>,
    /// Slices' and nodes' parts of the desired states, from which a woken poll assembles its
    /// node's state without a query (`crate::desired`).
    pub(crate) desired: Arc<crate::desired::DesiredIndex>,
    /// The nodes behind recently presented node keys (`crate::nodekeys`), dropped by wake-ups.
    pub(crate) node_keys: Arc<crate::nodekeys::NodeKeys>,
    /// Rate limits of the public flow lookup (shared by the replicas on PostgreSQL).
    pub(crate) lookups: Arc<LookupLimiter>,
    /// Sends this central's wake-ups to the other replicas (PostgreSQL only).
    pub(crate) publisher: Option<Publisher>,
    /// This central's name among the replicas (random per process), in its notifications.
    pub(crate) replica: Arc<str>,
    /// Group commit of node reports.
    pub(crate) reports: crate::batch::ReportQueue,
    /// Set when shutting down: waiting long-polls answer at once instead of holding shutdown.
    pub(crate) stopping: Arc<AtomicBool>,
    /// This central's authority name among peers (`None`: it does not federate) and how often
    /// it exchanges with them (`crate::peering`).
    pub(crate) federation: Arc<crate::peering::Federation>,
    /// Wakes the exchange with peers at once (a slice changed its nodes on a peer).
    pub(crate) peering_kick: Arc<tokio::sync::Notify>,
}

pub(crate) struct CachedDesired {
    generation: (u64, u64),
    desired: Arc<slicelab_model::DesiredSlivers>,
    next_change: Option<i64>,
}

type DesiredHit = (Arc<slicelab_model::DesiredSlivers>, Option<i64>);

impl AppState {
    /// The state over an opened store (starts the report writer and, on PostgreSQL, the
    /// publisher of wake-ups to other replicas: needs a tokio runtime).
    pub(crate) fn new(store: Arc<Store>, blobs: Arc<BlobStore>) -> AppState {
        let (tx, _rx) = watch::channel(0u64);
        let backend = store.backend();
        let metrics = Arc::new(Metrics::default());
        let replica: Arc<str> = crate::auth::new_secret("")
            .chars()
            .take(12)
            .collect::<String>()
            .into();
        let publisher = (backend == Backend::Postgres)
            .then(|| Publisher::start(store.clone(), metrics.clone(), replica.clone()));
        let desired = Arc::new(crate::desired::DesiredIndex::new(
            backend == Backend::Postgres,
            metrics.clone(),
        ));
        AppState {
            reports: crate::batch::start(store.clone()),
            store,
            blobs,
            changes: Arc::new(tx),
            metrics,
            stopping: Default::default(),
            node_changes: Default::default(),
            lookups: Arc::new(LookupLimiter::for_backend(backend)),
            publisher,
            replica,
            desired_cache: Default::default(),
            desired,
            node_keys: Default::default(),
            federation: Default::default(),
            peering_kick: Default::default(),
        }
    }

    /// This central's authority name, or a `Conflict` saying how to give it one.
    pub(crate) fn authority(&self) -> crate::ops::OpResult<&str> {
        self.federation.authority.as_deref().ok_or_else(|| {
            crate::ops::OpError::Conflict(
                "this central has no authority name: start it with --authority NAME to peer".into(),
            )
        })
    }

    /// The node's desired slivers as last computed, if nothing concerning it changed since.
    pub(crate) fn cached_desired(
        &self,
        node_id: i64,
        generation: (u64, u64),
        now: i64,
    ) -> Option<DesiredHit> {
        let map = self.desired_cache.lock().ok()?;
        let c = map.get(&node_id)?;
        (c.generation == generation && c.next_change.is_none_or(|t| t > now))
            .then(|| (c.desired.clone(), c.next_change))
    }

    pub(crate) fn cache_desired(
        &self,
        node_id: i64,
        generation: (u64, u64),
        desired: Arc<slicelab_model::DesiredSlivers>,
        next_change: Option<i64>,
    ) {
        if let Ok(mut map) = self.desired_cache.lock() {
            map.insert(
                node_id,
                CachedDesired {
                    generation,
                    desired,
                    next_change,
                },
            );
        }
    }

    /// Wakes waiting node long-polls, here and on the other replicas: the registry changed.
    pub(crate) fn changed(&self) {
        self.wake(Wake::All);
    }

    /// Wakes the long-polls of `hostnames` after a write that changed only `slices` (their
    /// nodes, settings, persons or tags): the nodes' own parts of their desired state stay as
    /// read, only these slices are read again, once (`crate::desired`). `hostnames` must name
    /// every node the slices were on before the write and are on after it.
    pub(crate) fn changed_slices<'a>(
        &self,
        slices: &[i64],
        hostnames: impl IntoIterator<Item = &'a String>,
    ) {
        self.wake(Wake::Slices {
            slices: slices.to_vec(),
            hosts: hostnames.into_iter().cloned().collect(),
        });
    }

    /// Wakes the long-polls of these nodes only, here and on the other replicas: a write
    /// concerning the nodes themselves (their own part and, in bulk, every slice are read again).
    pub(crate) fn changed_nodes<'a>(&self, hostnames: impl IntoIterator<Item = &'a String>) {
        self.wake(Wake::Nodes(hostnames.into_iter().cloned().collect()));
    }

    fn wake(&self, w: Wake) {
        self.wake_local(&w);
        if let Some(p) = &self.publisher {
            p.send(w);
        }
    }

    /// Wakes this central's long-polls only (what another replica's notification asks).
    pub(crate) fn wake_local(&self, w: &Wake) {
        // Stale first, then woken: a woken poll never reads what the write changed from memory.
        self.desired.mark(w);
        self.node_keys.forget(w);
        match w {
            Wake::All => self.changes.send_modify(|v| *v = v.wrapping_add(1)),
            Wake::Nodes(hostnames)
            | Wake::Slices {
                hosts: hostnames, ..
            } => self.bump_nodes(hostnames),
        }
    }

    /// Wakes these nodes' local polls, marking nothing stale.
    pub(crate) fn bump_nodes(&self, hostnames: &[String]) {
        if let Ok(map) = self.node_changes.lock() {
            for h in hostnames {
                if let Some(tx) = map.get(h) {
                    tx.send_modify(|v| *v = v.wrapping_add(1));
                }
            }
        }
    }

    /// The change signal of one node, for its long-poll.
    pub(crate) fn watch_node(&self, hostname: &str) -> watch::Receiver<u64> {
        match self.node_changes.lock() {
            Ok(mut map) => map
                .entry(hostname.to_string())
                .or_insert_with(|| watch::channel(0).0)
                .subscribe(),
            // A poisoned map only loses targeted wake-ups; the periodic re-check still runs.
            Err(_) => watch::channel(0).1,
        }
    }

    /// Takes one public lookup from `client`'s allowance (shared by the replicas on
    /// PostgreSQL); `Err(seconds to wait)` when spent.
    pub async fn take_lookup(&self, client: std::net::IpAddr) -> Result<(), u64> {
        self.lookups.take(&self.store, client).await
    }

    pub(crate) fn stop_waiters(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Only this central's polls: the other replicas go on.
        self.wake_local(&Wake::All);
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

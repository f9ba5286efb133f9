//! The desired-state index: what a woken long-poll needs, kept in memory so that a slice change
//! costs central O(changed slices) queries, not O(nodes × queries).
//!
//! - Each slice's part of its nodes' desired states (`store::SliceInputs`: the slice, its
//!   nodes, keys, tags and images) is read once per change and shared by all its nodes; a
//!   reverse map gives each node its slices.
//! - Each polled node's own part (`store::NodeInputs`: the node row, defaults, staff, leases) is
//!   read when first needed and again only after a write concerning that node (or everything).
//! - A node's desired state is then assembled from memory (`store::assemble`, pure), and its
//!   revision — the content hash the node compares — comes out the same as from the database.
//!
//! Staleness is tracked by marks, never by time (but see `NODE_TTL_PG`): a wake-up
//! ([`DesiredIndex::mark`], called by `AppState::wake_local` before it wakes any poll) stamps
//! what it concerns with a new sequence number; a part read from the database is stamped with the
//! sequence number current when its read began, and is stale while a later mark concerns it. So
//! a write committed before a wake-up is always seen by the read that the wake-up forces, and a
//! read racing a later write is refreshed again. Slice parts are read by one task at a time
//! (the polls woken together by one change wait for it, then all read memory).
//!
//! What each wake-up marks (`wakeups::Wake`): `Slices` marks those slices only (the node rows
//! are untouched: this is the hot path, a slice added to or removed from 10,000 nodes);
//! `Nodes` marks those nodes' own parts and every slice (a node-wide change may also move its
//! slices: the slice parts are then re-read in bulk, a few queries); `All` marks everything.
//! Replicas hear the same marks through `NOTIFY` (`crate::wakeups`); on PostgreSQL a resync task
//! ([`resync`]) re-reads every slice in bulk every few seconds and wakes the nodes of those that
//! differ, and node parts are trusted for `NODE_TTL_PG` only, so a notification lost with a
//! dying replica delays a change, never loses it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use slicelab_model::{DesiredSlivers, Node};
use slicelab_store::{assemble, DesiredScope, NodeInputs, SliceInputs, Store};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::wakeups::Wake;

/// On PostgreSQL (replicas), a node's own part is re-read at least this often (seconds): a write
/// on a replica that died before notifying still reaches the node.
const NODE_TTL_PG: i64 = 60;
/// On PostgreSQL, every slice part is re-read (in bulk) this often, waking what differs.
pub(crate) const RESYNC: Duration = Duration::from_secs(5);

/// The index; cheap to share (`AppState` holds it in an `Arc`).
pub(crate) struct DesiredIndex {
    inner: Mutex<Index>,
    /// One slice read at a time.
    loading: tokio::sync::Mutex<()>,
    /// How long a node's own part is trusted without a mark (None: until marked).
    node_ttl: Option<i64>,
    metrics: Arc<Metrics>,
}

struct SliceSlot {
    inputs: Arc<SliceInputs>,
    /// Sequence number when its read began.
    read_at: u64,
}

struct NodeSlot {
    inputs: Arc<NodeInputs>,
    read_at: u64,
    /// When it was read (clock seconds), for `node_ttl`.
    read_time: i64,
}

#[derive(Default)]
struct Index {
    /// The last mark's sequence number.
    seq: u64,
    slices: HashMap<i64, SliceSlot>,
    /// Node id → the slices on it (ids), from the slice parts in `slices`.
    by_node: HashMap<i64, BTreeSet<i64>>,
    /// When the last bulk read of every slice began; `None` before the first.
    all_read_at: Option<u64>,
    /// The last mark of every slice / of each slice.
    all_slices_marked: u64,
    slice_marks: HashMap<i64, u64>,
    /// Node parts by hostname (the key of wake-ups), and their marks.
    nodes: HashMap<String, NodeSlot>,
    all_nodes_marked: u64,
    node_marks: HashMap<String, u64>,
}

/// What the slice parts need before a node's state can be assembled.
enum SliceRead {
    Nothing,
    All,
    Some(Vec<i64>),
}

impl Index {
    fn slice_read(&self) -> SliceRead {
        match self.all_read_at {
            Some(at) if at >= self.all_slices_marked => {
                let stale: Vec<i64> = self
                    .slice_marks
                    .iter()
                    .filter(|(id, mark)| {
                        **mark > self.slices.get(id).map_or(at, |s| s.read_at.max(at))
                    })
                    .map(|(id, _)| *id)
                    .collect();
                if stale.is_empty() {
                    SliceRead::Nothing
                } else {
                    SliceRead::Some(stale)
                }
            }
            _ => SliceRead::All,
        }
    }

    fn unlink(&mut self, id: i64) -> Option<SliceSlot> {
        let old = self.slices.remove(&id)?;
        for (node, _) in &old.inputs.nodes {
            if let Some(set) = self.by_node.get_mut(node) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_node.remove(node);
                }
            }
        }
        Some(old)
    }

    fn link(&mut self, inputs: Arc<SliceInputs>, read_at: u64) {
        for (node, _) in &inputs.nodes {
            self.by_node.entry(*node).or_default().insert(inputs.id);
        }
        self.slices.insert(inputs.id, SliceSlot { inputs, read_at });
    }

    /// Installs one slice's part (None: the slice is gone) read from `read_at`.
    fn install_one(&mut self, id: i64, inputs: Option<SliceInputs>, read_at: u64) {
        if self.slices.get(&id).is_some_and(|s| s.read_at > read_at) {
            return;
        }
        self.unlink(id);
        if let Some(i) = inputs {
            self.link(Arc::new(i), read_at);
        }
        if self.slice_marks.get(&id).is_some_and(|m| *m <= read_at) {
            self.slice_marks.remove(&id);
        }
    }

    /// Installs every slice's part read from `read_at`; returns the hostnames of the nodes (before
    /// and after) of the slices whose part changed, appeared or went.
    fn install_all(&mut self, all: Vec<SliceInputs>, read_at: u64) -> BTreeSet<String> {
        let mut old = std::mem::take(&mut self.slices);
        self.by_node.clear();
        let mut changed = BTreeSet::new();
        for i in all {
            match old.remove(&i.id) {
                Some(o) if *o.inputs == i => self.link(o.inputs, read_at),
                o => {
                    let hosts = o.iter().flat_map(|o| o.inputs.nodes.iter());
                    changed.extend(hosts.chain(i.nodes.iter()).map(|(_, h)| h.clone()));
                    self.link(Arc::new(i), read_at);
                }
            }
        }
        for o in old.into_values() {
            changed.extend(o.inputs.nodes.iter().map(|(_, h)| h.clone()));
        }
        self.all_read_at = Some(read_at);
        self.slice_marks.retain(|_, m| *m > read_at);
        changed
    }
}

impl DesiredIndex {
    /// An empty index; `replicas`: the database may be written by other centrals too.
    pub(crate) fn new(replicas: bool, metrics: Arc<Metrics>) -> DesiredIndex {
        DesiredIndex {
            inner: Mutex::default(),
            loading: tokio::sync::Mutex::new(()),
            node_ttl: replicas.then_some(NODE_TTL_PG),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // The index holds no invariant a panicking holder could break half-way that a re-read
        // would not repair; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks what a write's wake-up concerns as stale (before any poll is woken).
    pub(crate) fn mark(&self, w: &Wake) {
        let mut ix = self.lock();
        ix.seq += 1;
        let seq = ix.seq;
        match w {
            Wake::All => {
                ix.all_slices_marked = seq;
                ix.all_nodes_marked = seq;
                ix.slice_marks.clear();
                ix.node_marks.clear();
            }
            Wake::Nodes(hosts) => {
                ix.all_slices_marked = seq;
                ix.slice_marks.clear();
                for h in hosts {
                    ix.node_marks.insert(h.clone(), seq);
                }
            }
            Wake::Slices { slices, .. } => {
                for id in slices {
                    ix.slice_marks.insert(*id, seq);
                }
            }
        }
    }

    /// `node`'s desired slivers (`node` as its key's lookup found it) and the next moment the
    /// clock alone changes them, from memory after reading what is stale.
    pub(crate) async fn desired(
        &self,
        store: &Store,
        node: &Node,
        now: i64,
    ) -> slicelab_store::Result<(DesiredSlivers, Option<i64>)> {
        self.refresh_slices(store).await?;
        let (inputs, read_time) = self.node_inputs(store, node, now).await?;
        let slices: Vec<Arc<SliceInputs>> = {
            let ix = self.lock();
            ix.by_node
                .get(&inputs.node.id)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|id| ix.slices.get(id).map(|s| s.inputs.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (d, mut next) = assemble(&inputs, slices.iter().map(|s| &**s), now);
        if let Some(ttl) = self.node_ttl {
            let t = read_time + ttl;
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        Ok((d, next))
    }

    /// Reads the stale slice parts, if any (all in bulk when everything is stale).
    async fn refresh_slices(&self, store: &Store) -> slicelab_store::Result<()> {
        if matches!(self.lock().slice_read(), SliceRead::Nothing) {
            return Ok(());
        }
        let _one = self.loading.lock().await;
        let (read, read_at) = {
            let ix = self.lock();
            (ix.slice_read(), ix.seq)
        };
        match read {
            SliceRead::Nothing => {}
            SliceRead::All => {
                let all = store.slice_inputs(DesiredScope::All).await?;
                self.metrics
                    .desired_bulk_reads
                    .fetch_add(1, Ordering::Relaxed);
                self.lock().install_all(all, read_at);
            }
            SliceRead::Some(ids) => {
                for id in ids {
                    let one = store.slice_inputs(DesiredScope::Slice(id)).await?;
                    self.metrics
                        .desired_slice_reads
                        .fetch_add(1, Ordering::Relaxed);
                    self.lock().install_one(id, one.into_iter().next(), read_at);
                }
            }
        }
        Ok(())
    }

    /// The node's own part (read if missing or stale) and when it was read.
    async fn node_inputs(
        &self,
        store: &Store,
        node: &Node,
        now: i64,
    ) -> slicelab_store::Result<(Arc<NodeInputs>, i64)> {
        let read_at = {
            let ix = self.lock();
            if let Some(s) = ix.nodes.get(&node.hostname) {
                let marked = ix
                    .all_nodes_marked
                    .max(ix.node_marks.get(&node.hostname).copied().unwrap_or(0));
                let fresh = self.node_ttl.is_none_or(|ttl| now < s.read_time + ttl);
                // Leases end: a reservable node's part is read again past the last one read.
                if s.read_at >= marked && fresh && s.inputs.node.id == node.id {
                    return Ok((s.inputs.clone(), s.read_time));
                }
            }
            ix.seq
        };
        let row = store.node(&node.id.to_string()).await?;
        let inputs = Arc::new(store.node_inputs(row, now).await?);
        self.metrics
            .desired_node_reads
            .fetch_add(1, Ordering::Relaxed);
        let mut ix = self.lock();
        if ix
            .nodes
            .get(&node.hostname)
            .is_none_or(|s| s.read_at <= read_at)
        {
            ix.nodes.insert(
                node.hostname.clone(),
                NodeSlot {
                    inputs: inputs.clone(),
                    read_at,
                    read_time: now,
                },
            );
        }
        if ix
            .node_marks
            .get(&node.hostname)
            .is_some_and(|m| *m <= read_at)
        {
            ix.node_marks.remove(&node.hostname);
        }
        Ok((inputs, now))
    }

    /// Re-reads every slice part in bulk; returns the hostnames of the nodes of those that
    /// differed from memory (they should be woken).
    pub(crate) async fn reread_all(&self, store: &Store) -> slicelab_store::Result<Vec<String>> {
        let _one = self.loading.lock().await;
        let read_at = self.lock().seq;
        let all = store.slice_inputs(DesiredScope::All).await?;
        self.metrics
            .desired_bulk_reads
            .fetch_add(1, Ordering::Relaxed);
        let mut ix = self.lock();
        let first = ix.all_read_at.is_none();
        let changed = ix.install_all(all, read_at);
        // The first read has nothing to compare with: nobody was served from memory yet.
        Ok(if first {
            Vec::new()
        } else {
            changed.into_iter().collect()
        })
    }

    /// Marks `slices` stale and reads them again now; returns the hostnames of their nodes
    /// before and after (a replica's notification of a change too wide to name them).
    pub(crate) async fn reread_slices(
        &self,
        store: &Store,
        slices: &[i64],
    ) -> slicelab_store::Result<Vec<String>> {
        let mut hosts = BTreeSet::new();
        {
            let mut ix = self.lock();
            ix.seq += 1;
            let seq = ix.seq;
            for id in slices {
                ix.slice_marks.insert(*id, seq);
                if let Some(s) = ix.slices.get(id) {
                    hosts.extend(s.inputs.nodes.iter().map(|(_, h)| h.clone()));
                }
            }
        }
        self.refresh_slices(store).await?;
        let ix = self.lock();
        for id in slices {
            if let Some(s) = ix.slices.get(id) {
                hosts.extend(s.inputs.nodes.iter().map(|(_, h)| h.clone()));
            }
        }
        Ok(hosts.into_iter().collect())
    }
}

/// On PostgreSQL: re-reads every slice part every [`RESYNC`] and wakes the local polls of the
/// nodes whose slices differ (a write on a replica whose notification was lost).
pub(crate) async fn resync(st: crate::state::AppState, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RESYNC) => {}
        }
        match st.desired.reread_all(&st.store).await {
            Ok(hosts) if !hosts.is_empty() => st.bump_nodes(&hosts),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot re-read the slices' desired state"),
        }
    }
}

#[cfg(test)]
mod tests;

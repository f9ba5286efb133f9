//! Who a node key belongs to, kept in memory: a node's report and its next long-poll follow
//! each change, and each would otherwise cost a query to find the node behind the key.
//!
//! The cache maps a key's SHA-256 (`auth::secret_hash`, as stored) to the node its lookup found.
//! It holds only keys that were presented and found, at most one per node. It must never let a
//! revoked key through for long, so:
//!
//! - Every write that changes a node's key or row, or deletes it, wakes that node
//!   (`AppState::changed_nodes`; a site's or peer's removal wakes everything), and every wake-up
//!   — this replica's own, or another replica's heard through `NOTIFY` (`crate::wakeups`) —
//!   drops the entries of the nodes it names ([`NodeKeys::forget`]) before any poll is woken. A
//!   re-keyed or deleted node's old key thus stops working on every replica as soon as the
//!   notification arrives.
//! - An entry is trusted for [`TTL`] seconds at most, then looked up again: a notification lost
//!   with a dying replica delays a revocation by that much, never more.
//! - A lookup racing a write cannot put back what the write's wake-up dropped: it is stored only
//!   if no wake-up dropped anything since the lookup began (`epoch`).
//!
//! It also remembers when this replica last heard from each cached node (a poll's `last_contact`
//! touch, an acknowledged report), so a cached row's `last_contact` does not look old and make
//! every poll write it again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use slicelab_model::Node;

use crate::wakeups::Wake;

/// Seconds a cached key is trusted without a wake-up naming its node.
pub(crate) const TTL: i64 = 30;

struct Entry {
    node: Node,
    /// When its lookup began (clock seconds).
    read_time: i64,
}

#[derive(Default)]
struct Keys {
    by_hash: HashMap<String, Entry>,
    /// Hostname → the hash cached for it (a wake-up names nodes by hostname).
    by_host: HashMap<String, String>,
    /// Bumped by every wake-up that dropped entries.
    epoch: u64,
}

/// The cache; `AppState` holds it in an `Arc`.
#[derive(Default)]
pub(crate) struct NodeKeys {
    inner: Mutex<Keys>,
}

impl NodeKeys {
    fn lock(&self) -> MutexGuard<'_, Keys> {
        // Entries are inserted and removed whole; a panicking holder leaves them consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node of the key whose hash is `hash`, if cached and fresh at `now`.
    pub(crate) fn get(&self, hash: &str, now: i64) -> Option<Node> {
        let k = self.lock();
        k.by_hash
            .get(hash)
            .filter(|e| now >= e.read_time && now < e.read_time + TTL)
            .map(|e| e.node.clone())
    }

    /// Where a lookup begins: pass it to [`NodeKeys::insert`].
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Caches `node` for `hash`, found by a lookup that began at `read_time` in `epoch`; not if a
    /// wake-up dropped entries since (it may concern this node).
    pub(crate) fn insert(&self, hash: String, node: Node, read_time: i64, epoch: u64) {
        let mut k = self.lock();
        if k.epoch != epoch {
            return;
        }
        if let Some(old) = k.by_host.insert(node.hostname.clone(), hash.clone()) {
            if old != hash {
                k.by_hash.remove(&old);
            }
        }
        k.by_hash.insert(hash, Entry { node, read_time });
    }

    /// Drops what a wake-up concerns: the named nodes' keys (`Nodes`), or every key (`All`).
    /// A slice change concerns no key.
    pub(crate) fn forget(&self, w: &Wake) {
        let mut k = self.lock();
        match w {
            Wake::All => {
                k.by_hash.clear();
                k.by_host.clear();
            }
            Wake::Nodes(hosts) => {
                for h in hosts {
                    if let Some(hash) = k.by_host.remove(h) {
                        k.by_hash.remove(&hash);
                    }
                }
            }
            Wake::Slices { .. } => return,
        }
        k.epoch = k.epoch.wrapping_add(1);
    }

    /// Notes that `hostname` was heard from at `now` (its `last_contact` was written).
    pub(crate) fn contacted(&self, hostname: &str, now: i64) {
        let mut k = self.lock();
        let Some(hash) = k.by_host.get(hostname).cloned() else {
            return;
        };
        if let Some(e) = k.by_hash.get_mut(&hash) {
            if e.node.last_contact.is_none_or(|t| t < now) {
                e.node.last_contact = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i64, host: &str) -> Node {
        Node {
            id,
            hostname: host.into(),
            site: "s".into(),
            site_id: 1,
            boot_state: slicelab_model::objects::BootState::Boot,
            cpu_cores: 1,
            mem_mb: 1,
            disk_gb: 1,
            region: String::new(),
            last_contact: None,
            status: slicelab_model::objects::NodeStatus::Up,
            reservable: false,
            created: 0,
            bwlimit: None,
            authority: None,
        }
    }

    #[test]
    fn a_cached_key_expires_and_is_dropped_by_its_nodes_wake_up() {
        let keys = NodeKeys::default();
        keys.insert("h1".into(), node(1, "a"), 100, keys.epoch());
        keys.insert("h2".into(), node(2, "b"), 100, keys.epoch());
        assert_eq!(keys.get("h1", 100).map(|n| n.id), Some(1));
        assert!(keys.get("h1", 100 + TTL).is_none(), "trusted for TTL only");
        assert!(keys.get("nope", 100).is_none());
        keys.forget(&Wake::Slices {
            slices: vec![1],
            hosts: vec!["a".into()],
        });
        assert!(keys.get("h1", 101).is_some(), "a slice change keeps keys");
        keys.forget(&Wake::Nodes(vec!["a".into()]));
        assert!(keys.get("h1", 101).is_none(), "its node's wake-up drops it");
        assert!(keys.get("h2", 101).is_some());
        keys.forget(&Wake::All);
        assert!(keys.get("h2", 101).is_none());
    }

    #[test]
    fn a_lookup_racing_a_wake_up_is_not_cached_and_a_new_key_replaces_the_old() {
        let keys = NodeKeys::default();
        let began = keys.epoch();
        keys.forget(&Wake::Nodes(vec!["a".into()]));
        keys.insert("h1".into(), node(1, "a"), 100, began);
        assert!(
            keys.get("h1", 100).is_none(),
            "the lookup may have read the old row"
        );
        keys.insert("h1".into(), node(1, "a"), 100, keys.epoch());
        keys.insert("h1b".into(), node(1, "a"), 101, keys.epoch());
        assert!(keys.get("h1", 101).is_none(), "one key per node");
        assert!(keys.get("h1b", 101).is_some());
    }

    #[test]
    fn contact_is_remembered() {
        let keys = NodeKeys::default();
        keys.insert("h1".into(), node(1, "a"), 100, keys.epoch());
        keys.contacted("a", 105);
        assert_eq!(keys.get("h1", 106).and_then(|n| n.last_contact), Some(105));
        keys.contacted("a", 103);
        assert_eq!(keys.get("h1", 106).and_then(|n| n.last_contact), Some(105));
    }
}

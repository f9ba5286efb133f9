//! Slivers a site's staff stopped on this node (`ssh site_admin@NODE stop SLICE`): PlanetLab's
//! local authority over the machines a site hosts. A held sliver stays stopped — whatever
//! central wants — until the staff restart it there or central stops listing the slice; its
//! report says who stopped it and why, so the slice's persons see it.
//!
//! Kept on disk (`<state_dir>/holds.json`), so neither a daemon restart nor a reboot lifts one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use slicelab_model::{DesiredSlivers, SliverState, SliverStatus};

use crate::error::NodeError;
use crate::state::write_atomic;

/// Who stopped a sliver, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub by: String,
    pub at: i64,
    #[serde(default)]
    pub reason: String,
}

impl Hold {
    /// What the sliver's report says.
    pub fn message(&self) -> String {
        let reason = if self.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", self.reason)
        };
        format!(
            "stopped on this node by its site's staff ({}) at {}{reason}",
            self.by,
            slicelab_model::time::fmt_time(self.at)
        )
    }
}

/// The node's holds. Cheap to clone.
#[derive(Clone)]
pub struct Holds {
    inner: Arc<(PathBuf, Mutex<BTreeMap<String, Hold>>)>,
}

impl Holds {
    pub fn open(state_dir: &Path) -> Holds {
        let path = state_dir.join("holds.json");
        let map = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Holds {
            inner: Arc::new((path, Mutex::new(map))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Hold>> {
        self.inner.1.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, map: &BTreeMap<String, Hold>) -> Result<(), NodeError> {
        let b = serde_json::to_vec(map).map_err(|e| NodeError::Invalid {
            what: "holds",
            message: e.to_string(),
        })?;
        write_atomic(&self.inner.0, &b)
    }

    /// Holds `slice` stopped; replaces an earlier hold of it.
    pub fn hold(&self, slice: &str, hold: Hold) -> Result<(), NodeError> {
        let mut m = self.lock();
        m.insert(slice.to_string(), hold);
        self.save(&m)
    }

    /// Lifts the hold of `slice`; the hold there was, if any.
    pub fn release(&self, slice: &str) -> Result<Option<Hold>, NodeError> {
        let mut m = self.lock();
        let old = m.remove(slice);
        if old.is_some() {
            self.save(&m)?;
        }
        Ok(old)
    }

    pub fn get(&self, slice: &str) -> Option<Hold> {
        self.lock().get(slice).cloned()
    }

    /// Marks held slivers not to run, and forgets holds of slices central no longer lists here
    /// (a slice deleted and made again is a new one).
    pub fn apply(&self, desired: &mut DesiredSlivers) {
        let mut m = self.lock();
        let before = m.len();
        m.retain(|slice, _| desired.slivers.iter().any(|s| &s.slice_name == slice));
        if m.len() != before {
            let _ = self.save(&m);
        }
        for s in &mut desired.slivers {
            if m.contains_key(&s.slice_name) {
                s.run = false;
            }
        }
    }

    /// Says in the reports of held, stopped slivers who stopped them.
    pub fn annotate(&self, statuses: &mut [SliverStatus]) {
        let m = self.lock();
        for st in statuses.iter_mut() {
            if let Some(h) = m.get(&st.slice_name) {
                if st.state == SliverState::Stopped {
                    st.message = h.message();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slicelab_model::objects::BootState;
    use slicelab_model::{Resources, SliverSpec};

    fn desired(names: &[&str]) -> DesiredSlivers {
        DesiredSlivers {
            node_id: 1,
            hostname: "n".into(),
            boot_state: BootState::Boot,
            revision: "r".into(),
            slivers: names
                .iter()
                .map(|n| SliverSpec {
                    slice_id: 1,
                    slice_name: n.to_string(),
                    expires: i64::MAX,
                    run: true,
                    keys: vec![],
                    resources: Resources::default(),
                    image_digest: None,
                })
                .collect(),
            staff: vec![],
        }
    }

    #[test]
    fn a_hold_stops_its_sliver_survives_restarts_and_ends_with_the_slice() {
        let dir = tempfile::tempdir().unwrap();
        let h = Holds::open(dir.path());
        h.hold(
            "pl_a",
            Hold {
                by: "tech@pl".into(),
                at: 0,
                reason: "floods".into(),
            },
        )
        .unwrap();
        let mut d = desired(&["pl_a", "pl_b"]);
        Holds::open(dir.path()).apply(&mut d);
        assert_eq!(
            d.slivers.iter().map(|s| s.run).collect::<Vec<_>>(),
            vec![false, true]
        );
        let mut st = vec![SliverStatus {
            slice_name: "pl_a".into(),
            state: SliverState::Stopped,
            message: String::new(),
            address: None,
            throttled: None,
            limits: Default::default(),
        }];
        h.annotate(&mut st);
        assert!(st[0].message.contains("tech@pl"), "{}", st[0].message);
        assert!(st[0].message.ends_with(": floods"), "{}", st[0].message);
        // Central dropped the slice here: the hold goes with it.
        let mut d = desired(&["pl_b"]);
        h.apply(&mut d);
        assert_eq!(Holds::open(dir.path()).get("pl_a"), None);
        h.hold(
            "pl_b",
            Hold {
                by: "x".into(),
                at: 0,
                reason: String::new(),
            },
        )
        .unwrap();
        assert!(h.release("pl_b").unwrap().is_some());
        assert!(h.release("pl_b").unwrap().is_none());
    }
}

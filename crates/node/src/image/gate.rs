//! Between the desired state and the reconciler: a sliver whose published image is not on this
//! node yet is held stopped while the image is fetched, and reports what it waits for
//! (`fetching image (N%)`, or the failure and its reason) instead of plain "creating".

use std::collections::{BTreeMap, HashSet};

use slicelab_model::{DesiredSlivers, SliverState, SliverStatus};

use super::fetch::{FetchStatus, Fetcher};

/// The desired state as it can be enforced now, and the slivers waiting for an image. Starts
/// (or resumes) the fetch of every missing image a running sliver needs.
pub fn hold(
    fetcher: &Fetcher,
    desired: &DesiredSlivers,
) -> (DesiredSlivers, BTreeMap<String, FetchStatus>) {
    let mut held = desired.clone();
    let mut waiting = BTreeMap::new();
    for s in &mut held.slivers {
        let Some(digest) = &s.image_digest else {
            continue;
        };
        if !s.run {
            continue;
        }
        fetcher.ensure(digest);
        if let Some(st) = fetcher.status(digest) {
            s.run = false;
            waiting.insert(s.slice_name.clone(), st);
        }
    }
    (held, waiting)
}

/// Reports of waiting slivers say what they wait for.
pub fn annotate(statuses: &mut [SliverStatus], waiting: &BTreeMap<String, FetchStatus>) {
    for st in statuses {
        let Some(w) = waiting.get(&st.slice_name) else {
            continue;
        };
        if st.state == SliverState::Running {
            continue;
        }
        st.state = match w {
            FetchStatus::Fetching { .. } => SliverState::Creating,
            FetchStatus::Failed { .. } => SliverState::Failed,
        };
        st.message = w.message();
    }
}

/// Manifest digests the node must keep: those of desired slivers and of slivers it has.
pub fn in_use(
    desired: Option<&DesiredSlivers>,
    recorded: impl IntoIterator<Item = Option<String>>,
) -> HashSet<String> {
    let mut set: HashSet<String> = recorded.into_iter().flatten().collect();
    if let Some(d) = desired {
        set.extend(d.slivers.iter().filter_map(|s| s.image_digest.clone()));
    }
    set
}

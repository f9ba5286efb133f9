//! Glue between the registry and the broker's pure rules (`slicelab_placement`): admission
//! control of guarantees, called by the slice and tag operations (`crate::ops`).

use slicelab_model::tags::{self, TagValue};
use slicelab_model::{Slice, TagName};
use slicelab_placement::{admit, Reservation};

use crate::ops::{OpError, OpResult};
use crate::state::AppState;

/// Refuses (`Conflict`) adding `nodes` to `slice` if its guarantees would over-commit any of them.
pub(crate) async fn admit_nodes(
    st: &AppState,
    slice: &Slice,
    nodes: &[(i64, String)],
) -> OpResult<()> {
    let ids: Vec<i64> = nodes.iter().map(|(id, _)| *id).collect();
    let wants = st.store.slice_reservations(slice.id, &ids).await?;
    if wants.iter().all(|w| w.is_zero()) {
        // Nothing guaranteed: nothing to over-commit (and no need to gather every node's facts).
        return Ok(());
    }
    let candidates = st
        .store
        .placement_candidates(slice.id, crate::now())
        .await?;
    for (id, want) in ids.iter().zip(wants) {
        if want.is_zero() {
            continue;
        }
        if let Some(c) = candidates.iter().find(|c| c.node_id == *id && !c.in_slice) {
            admit(c, want).map_err(|e| OpError::Conflict(format!("admission control: {e}")))?;
        }
    }
    Ok(())
}

/// Refuses (`Conflict`) a new guarantee tag value that would over-commit one of the slice's nodes.
pub(crate) async fn admit_tag(
    st: &AppState,
    slice: &Slice,
    tag: TagName,
    value: &str,
    node: Option<i64>,
) -> OpResult<()> {
    if !matches!(tag, TagName::CpuReserve | TagName::MemReserve) {
        return Ok(());
    }
    let mut current: Vec<(TagName, String, Option<i64>)> = Vec::new();
    for t in st.store.slice_tags(slice).await? {
        let node_id = match &t.node {
            Some(h) => Some(st.store.node(h).await?.id),
            None => None,
        };
        if !(t.name == tag && node_id == node) {
            current.push((t.name, t.value, node_id));
        }
    }
    current.push((tag, value.to_string(), node));
    let candidates = st
        .store
        .placement_candidates(slice.id, crate::now())
        .await?;
    for c in candidates.iter().filter(|c| c.in_slice) {
        let r = tags::resolve(
            current.iter().map(|(n, v, nid)| TagValue {
                name: *n,
                value: v,
                node_id: *nid,
            }),
            c.node_id,
        );
        admit(c, Reservation::from_resources(&r))
            .map_err(|e| OpError::Conflict(format!("admission control: {e}")))?;
    }
    Ok(())
}

//! Slice tags (resources, initscript, ports…): set slice-wide or for one node, checked by the
//! broker's admission control for guarantees. A change wakes the slice's nodes.

use slicelab_model::{tags, Actor, Slice, SliceTag, TagName};

use crate::ops::{named_node, slice_and_member, OpResult};
use crate::state::AppState;

/// The slice, once the actor may set `tag` on it, and the node (id, hostname) a value is for.
async fn target(
    st: &AppState,
    actor: &Actor,
    key: &str,
    tag: TagName,
    node: Option<&str>,
) -> OpResult<(Slice, Option<(i64, String)>)> {
    let (sl, member) = slice_and_member(st, actor, key).await?;
    actor.can_set_tag(tag, sl.site_id, member)?;
    let node = match node {
        Some(n) => Some(named_node(st, "node", n).await?),
        None => None,
    };
    Ok((sl, node))
}

/// Sets a tag slice-wide or, with `node`, for one node (node values override slice-wide ones).
pub async fn set(
    st: &AppState,
    actor: &Actor,
    key: &str,
    tag: TagName,
    value: &str,
    node: Option<&str>,
) -> OpResult<SliceTag> {
    let (sl, node) = target(st, actor, key, tag, node).await?;
    let value = tags::validate(tag, value)?;
    crate::broker::admit_tag(st, &sl, tag, &value, node.as_ref().map(|n| n.0)).await?;
    let t = st
        .store
        .set_slice_tag(
            &actor.label(),
            crate::now(),
            &sl,
            tag,
            &value,
            node.as_ref().map(|(id, h)| (*id, h.as_str())),
        )
        .await?;
    st.changed_nodes(&sl.nodes);
    Ok(t)
}

/// Deletes a slice-wide value or, with `node`, one node's value; `NotFound` if there is none.
pub async fn delete(
    st: &AppState,
    actor: &Actor,
    key: &str,
    tag: TagName,
    node: Option<&str>,
) -> OpResult<Slice> {
    let (sl, node) = target(st, actor, key, tag, node).await?;
    st.store
        .delete_slice_tag(
            &actor.label(),
            crate::now(),
            &sl,
            tag,
            node.as_ref().map(|(id, h)| (*id, h.as_str())),
        )
        .await?;
    st.changed_nodes(&sl.nodes);
    Ok(sl)
}

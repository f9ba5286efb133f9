//! Slice tags (resources, initscript, ports…): set slice-wide or for one node, checked by the
//! broker's admission control for guarantees; an `image` tag must name the built-in image or a
//! published image the slice's site may use. A change wakes the slice's nodes.

use slicelab_model::image::BUILTIN_IMAGE;
use slicelab_model::{tags, Actor, Slice, SliceTag, TagName};
use slicelab_store::StoreError;

use crate::ops::images::usable_by_site;
use crate::ops::{named_node, slice_and_member, OpError, OpResult};
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

/// An `image` tag names the built-in image or a published image the slice's site may use.
async fn check_image(st: &AppState, sl: &Slice, name: &str) -> OpResult<()> {
    if name == BUILTIN_IMAGE {
        return Ok(());
    }
    let usable = match st.store.image(name).await {
        Ok(rec) => usable_by_site(&rec.image, sl.site_id),
        Err(StoreError::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    if usable {
        Ok(())
    } else {
        Err(OpError::invalid(
            "image",
            format!(
                "image {name:?} is neither the built-in {BUILTIN_IMAGE:?} nor a published image \
                 slices of site {} may use (see GET /api/v1/images)",
                sl.site
            ),
        ))
    }
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
    if tag == TagName::Image {
        check_image(st, &sl, &value).await?;
    }
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
    st.changed_slices(&[sl.id], &sl.nodes);
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
    st.changed_slices(&[sl.id], &sl.nodes);
    Ok(sl)
}

//! The default allocation (`slicelab_model::defaults`): platform defaults, set by admins, and a
//! node's overrides, set by admins or the node's site's PIs and techs (their machine). A platform
//! change wakes every node; a node's override wakes that node.

use slicelab_model::defaults::{self, DefaultTag, Defaults};
use slicelab_model::{Actor, Node, TagName};

use crate::ops::OpResult;
use crate::state::AppState;

/// Everything in force (readable by anyone: the defaults are the platform's published policy).
pub async fn list(st: &AppState) -> OpResult<Defaults> {
    Ok(st.store.defaults().await?)
}

/// The node an override is for, once the actor may manage it; `None` for a platform default,
/// once the actor is an admin.
async fn target(st: &AppState, actor: &Actor, node: Option<&str>) -> OpResult<Option<Node>> {
    match node {
        None => {
            actor.require_admin("change the platform defaults")?;
            Ok(None)
        }
        Some(n) => {
            let node = st.store.node(n).await?;
            actor.can_manage_node(node.site_id)?;
            Ok(Some(node))
        }
    }
}

fn wake(st: &AppState, node: Option<&Node>) {
    match node {
        Some(n) => st.changed_nodes([&n.hostname]),
        None => st.changed(),
    }
}

/// Sets a platform default or (with `node`) a node's override of `tag`.
pub async fn set(
    st: &AppState,
    actor: &Actor,
    tag: &str,
    value: &str,
    node: Option<&str>,
) -> OpResult<DefaultTag> {
    let node = target(st, actor, node).await?;
    let (tag, value) = defaults::validate(tag, value)?;
    let d = st
        .store
        .set_default(&actor.label(), crate::now(), tag, &value, node.as_ref())
        .await?;
    wake(st, node.as_ref());
    Ok(d)
}

/// Removes a platform default or a node's override; `NotFound` if there is none.
pub async fn delete(st: &AppState, actor: &Actor, tag: &str, node: Option<&str>) -> OpResult<()> {
    let node = target(st, actor, node).await?;
    let tag = TagName::parse(tag)?;
    st.store
        .delete_default(&actor.label(), crate::now(), tag, node.as_ref())
        .await?;
    wake(st, node.as_ref());
    Ok(())
}

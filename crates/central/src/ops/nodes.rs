//! Nodes: registered, changed, re-keyed and deleted by admins and the node's site techs and
//! PIs. A change wakes that node only; creation and re-keying wake none (the node's desired
//! slivers do not change, and a re-keyed node manager starts its next poll with the new key).

use slicelab_model::{Actor, Node, NodeCreate, NodeUpdate, NodeWithKey};
use slicelab_store::StoreError;

use crate::auth::{new_secret, secret_hash, NODE_KEY_PREFIX};
use crate::ops::{person_id, OpError, OpResult};
use crate::state::AppState;

/// Registers a node; its key is in the answer, once (only its hash is stored).
pub async fn create(st: &AppState, actor: &Actor, c: &NodeCreate) -> OpResult<NodeWithKey> {
    person_id(actor)?;
    c.validate()?;
    let site = match st.store.site(&c.site).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => {
            return Err(OpError::invalid(
                "site",
                format!("unknown site {:?}", c.site),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    actor.can_manage_node(site.id)?;
    let key = new_secret(NODE_KEY_PREFIX);
    let node = st
        .store
        .create_node(&actor.label(), crate::now(), c, site.id, &secret_hash(&key))
        .await?;
    Ok(NodeWithKey {
        node,
        node_key: key,
    })
}

/// Changes a node (boot state, capacity, region, reservable…).
pub async fn update(st: &AppState, actor: &Actor, key: &str, u: &NodeUpdate) -> OpResult<Node> {
    let n = st.store.node(key).await?;
    actor.can_manage_node(n.site_id)?;
    u.validate()?;
    let n = st
        .store
        .update_node(&actor.label(), crate::now(), &n, u)
        .await?;
    st.changed_nodes([&n.hostname]);
    Ok(n)
}

pub async fn remove(st: &AppState, actor: &Actor, key: &str) -> OpResult<()> {
    let n = st.store.node(key).await?;
    actor.can_manage_node(n.site_id)?;
    st.store
        .delete_node(&actor.label(), crate::now(), &n)
        .await?;
    st.changed_nodes([&n.hostname]);
    Ok(())
}

/// Issues a new node key; the old one stops working at once.
pub async fn rekey(st: &AppState, actor: &Actor, key: &str) -> OpResult<NodeWithKey> {
    let n = st.store.node(key).await?;
    actor.can_manage_node(n.site_id)?;
    let secret = new_secret(NODE_KEY_PREFIX);
    st.store
        .set_node_key(&actor.label(), crate::now(), &n, &secret_hash(&secret))
        .await?;
    Ok(NodeWithKey {
        node: n,
        node_key: secret,
    })
}

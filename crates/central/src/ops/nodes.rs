//! Nodes: registered, changed, re-keyed and deleted by admins and the node's site techs and
//! PIs. A change wakes that node only; creation wakes none (the node's desired slivers do not
//! change). Re-keying and joining wake the node too, so that every replica forgets its old key at
//! once (`crate::nodekeys`); its manager starts its next poll with the new key.

use slicelab_model::{
    Actor, JoinRequest, JoinToken, JoinTokenCreate, Node, NodeCreate, NodeUpdate, NodeWithKey,
    JOIN_TOKEN_TTL, JOIN_TOKEN_TTL_MAX, JOIN_TOKEN_TTL_MIN,
};
use slicelab_store::{Redeemed, StoreError};

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
    crate::ops::peers::refuse_peer_site(st, &site.login_base).await?;
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
    if let Some(a) = &n.authority {
        return Err(OpError::Conflict(format!(
            "node {} is authority {a}'s: its own authority manages it",
            n.hostname
        )));
    }
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
    // Every replica forgets the old key (`crate::nodekeys`).
    st.changed_nodes([&n.hostname]);
    Ok(NodeWithKey {
        node: n,
        node_key: secret,
    })
}

/// Prefix of join tokens (distinct from node keys, sessions and API tokens).
const JOIN_TOKEN_PREFIX: &str = "slj_";

/// Issues a single-use join token for a node, valid `ttl_secs` (default a day).
pub async fn join_token(
    st: &AppState,
    actor: &Actor,
    key: &str,
    c: &JoinTokenCreate,
) -> OpResult<JoinToken> {
    person_id(actor)?;
    let n = st.store.node(key).await?;
    actor.can_manage_node(n.site_id)?;
    let ttl = c.ttl_secs.unwrap_or(JOIN_TOKEN_TTL);
    if !(JOIN_TOKEN_TTL_MIN..=JOIN_TOKEN_TTL_MAX).contains(&ttl) {
        return Err(OpError::invalid(
            "ttl_secs",
            format!(
                "a join token lives {JOIN_TOKEN_TTL_MIN} to {JOIN_TOKEN_TTL_MAX} seconds, not {ttl}"
            ),
        ));
    }
    let token = new_secret(JOIN_TOKEN_PREFIX);
    let now = crate::now();
    st.store
        .create_join_token(&actor.label(), now, &n, &secret_hash(&token), now + ttl)
        .await?;
    Ok(JoinToken {
        token,
        node: n.hostname,
        expires: now + ttl,
    })
}

/// Exchanges a join token for the node's key (a new one: any earlier key stops working).
/// Anyone may call it: the token is the credential. Refusals say why (unknown, used, expired).
pub async fn join(st: &AppState, req: &JoinRequest) -> OpResult<NodeWithKey> {
    let token = req.token.trim();
    if req.token.len() > 200 {
        return Err(OpError::invalid(
            "token",
            "a join token is at most 200 characters",
        ));
    }
    if !token.starts_with(JOIN_TOKEN_PREFIX) {
        return Err(OpError::Unauthorized(format!(
            "not a join token (they start with {JOIN_TOKEN_PREFIX}): ask for one with \
             `slicelab node add` or `slicelab node join-token`"
        )));
    }
    let secret = new_secret(NODE_KEY_PREFIX);
    let now = crate::now();
    let again = "ask for a new one with `slicelab node join-token`";
    match st
        .store
        .redeem_join_token(now, &secret_hash(token), &secret_hash(&secret))
        .await?
    {
        Redeemed::Joined(node) => {
            // Every replica forgets any earlier key (`crate::nodekeys`).
            st.changed_nodes([&node.hostname]);
            Ok(NodeWithKey {
                node,
                node_key: secret,
            })
        }
        Redeemed::Unknown => Err(OpError::Unauthorized("unknown join token".into())),
        Redeemed::Used(at) => Err(OpError::Unauthorized(format!(
            "this join token was already used ({}s ago): {again}",
            now - at
        ))),
        Redeemed::Expired(at) => Err(OpError::Unauthorized(format!(
            "this join token expired ({}s ago): {again}",
            now - at
        ))),
    }
}

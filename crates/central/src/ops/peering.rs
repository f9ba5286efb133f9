//! At *home*: our side of the exchange with a peer (`model::peer`). One round takes its
//! registry (its nodes, read-only here), pushes every one of our slices on its nodes whose
//! record changed since the peer last accepted it (and ends those that left), and takes back
//! what became of them (states, usage, flows) into our own tables. A round that fails leaves
//! everything as last known and the next one catches up: the records are whole and idempotent.
//!
//! Adding a peer's nodes to a slice asks the peer first (`offer_nodes`): its policy decides
//! (its quota), and its refusal reaches the person who asked.

use std::collections::BTreeMap;

use slicelab_client::peer::PeerClient;
use slicelab_client::ClientError;
use slicelab_model::peer::{ForeignSlice, Peer};
use slicelab_model::Slice;
use slicelab_store::{foreign_slice_hash, PeerWithSecret};

use crate::ops::{OpError, OpResult};
use crate::state::AppState;

fn client(st: &AppState, p: &PeerWithSecret) -> OpResult<PeerClient> {
    PeerClient::connect(
        &p.peer.url,
        p.peer.ca_fingerprint.as_deref(),
        st.authority()?,
        &p.secret,
    )
    .map_err(|e| OpError::Conflict(format!("peer {}: {e}", p.peer.name)))
}

/// A peer's refusal or silence, for the person who asked or the peer's `last_error`.
fn peer_error(peer: &Peer, e: ClientError) -> OpError {
    match e {
        ClientError::Api { message, .. } => {
            OpError::Conflict(format!("peer {} refused: {message}", peer.name))
        }
        other => OpError::Conflict(format!(
            "peer {} cannot be reached ({other}); try again later",
            peer.name
        )),
    }
}

/// Splits `nodes` into ours (returned, for the caller's own admission) and peers' ones, which
/// each peer is asked to accept first (the slice's whole record there, with them added). A
/// refusal stops the change before anything is stored here.
pub(crate) async fn offer_nodes(
    st: &AppState,
    sl: &Slice,
    nodes: &[(i64, String)],
) -> OpResult<Vec<(i64, String)>> {
    let mut ours = Vec::new();
    let mut theirs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let ids: Vec<i64> = nodes.iter().map(|(id, _)| *id).collect();
    let peers_of = st.store.node_authorities(&ids).await?;
    for (id, host) in nodes {
        match peers_of.get(id).cloned() {
            None => ours.push((*id, host.clone())),
            Some(a) => theirs.entry(a).or_default().push(host.clone()),
        }
    }
    if theirs.is_empty() {
        return Ok(ours);
    }
    if sl.authority.is_some() {
        return Err(OpError::Conflict(format!(
            "slice {} is a peer's: only its own authority adds nodes to it",
            sl.name
        )));
    }
    for (authority, hosts) in theirs {
        let p = st.store.peer_with_secret(&authority).await?;
        let Some(record) = st.store.foreign_slice(&p.peer, sl.id, &hosts).await? else {
            continue;
        };
        client(st, &p)?
            .put_slice(&record)
            .await
            .map_err(|e| peer_error(&p.peer, e))?;
        st.store
            .record_peer_push(
                p.peer.id,
                &record.name,
                Some(&foreign_slice_hash(&record)),
                crate::now(),
            )
            .await?;
    }
    Ok(ours)
}

/// One round of the exchange with a peer; its failure is also noted on the peer.
pub async fn exchange(st: &AppState, p: &PeerWithSecret) -> OpResult<()> {
    let r = exchange_inner(st, p).await;
    let now = crate::now();
    let failed = match r {
        // The peer answered; a refused push is still its last error.
        Ok((remote, pushed)) => {
            st.store
                .note_peer_contact(p.peer.id, now, "", Some(&remote))
                .await?;
            pushed.err()
        }
        Err(e) => Some(e),
    };
    match failed {
        Some(e) => {
            st.store
                .note_peer_contact(p.peer.id, now, &e.to_string(), None)
                .await?;
            Err(e)
        }
        None => Ok(()),
    }
}

/// The round; returns what the peer says of us and how the pushes went (a refused record does
/// not keep the status from coming back).
async fn exchange_inner(st: &AppState, p: &PeerWithSecret) -> OpResult<(String, OpResult<()>)> {
    let c = client(st, p)?;
    let peer = &p.peer;
    let now = crate::now();
    let reg = c.registry().await.map_err(|e| peer_error(peer, e))?;
    if reg.authority != peer.name {
        return Err(OpError::Conflict(format!(
            "the central at {} says it is authority {:?}, registered here as {:?}",
            peer.url, reg.authority, peer.name
        )));
    }
    let (changed, _) = st.store.apply_peer_registry(peer, now, &reg).await?;
    if changed {
        // The broker and the pages see its nodes; no node of ours is concerned.
        tracing::info!(peer = %peer.name, nodes = reg.nodes.len(), "peer registry taken");
    }
    let pushed = push_slices(st, p, &c).await;
    let (usage_after, flows_after) = st.store.peer_cursors(peer.id).await?;
    let status = c
        .status(usage_after, flows_after)
        .await
        .map_err(|e| peer_error(peer, e))?;
    st.store.apply_peer_status(peer, now, &status).await?;
    let remote = status
        .suspended
        .map(|r| format!("suspended by {}: {r}", peer.name))
        .unwrap_or_default();
    Ok((remote, pushed))
}

/// Pushes the records that changed since the peer last accepted them; ends the slices that no
/// longer use its nodes. The first refusal is returned after the others were tried.
async fn push_slices(st: &AppState, p: &PeerWithSecret, c: &PeerClient) -> OpResult<()> {
    let peer = &p.peer;
    let now = crate::now();
    let want = st.store.foreign_slices_for(peer, now).await?;
    let mut pushed = st.store.peer_pushes(peer.id).await?;
    let mut first_error = None;
    for f in &want {
        let hash = foreign_slice_hash(f);
        if pushed.remove(&f.name).as_deref() == Some(hash.as_str()) {
            continue;
        }
        match c.put_slice(f).await {
            Ok(_) => {
                st.store
                    .record_peer_push(peer.id, &f.name, Some(&hash), now)
                    .await?
            }
            Err(e) => {
                first_error.get_or_insert(peer_error(peer, e));
            }
        }
    }
    // What is left was pushed once and uses none of its nodes now (or expired, or deleted).
    for name in pushed.into_keys() {
        let end = ForeignSlice {
            name: name.clone(),
            expires: now,
            enabled: false,
            description: String::new(),
            contact: String::new(),
            keys: Vec::new(),
            tags: Vec::new(),
            nodes: Vec::new(),
        };
        match c.put_slice(&end).await {
            Ok(_) => st.store.record_peer_push(peer.id, &name, None, now).await?,
            Err(e) => {
                first_error.get_or_insert(peer_error(peer, e));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

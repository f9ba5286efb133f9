//! Federation's transport (`model::peer`): the signed calls peers make here (`/peer/v1/…`,
//! outside `/api/v1`: no person or node ever calls them) and the loop that makes ours to them.
//!
//! Every call carries the caller's authority name, a time, a nonce and an HMAC-SHA-256 of the
//! call with the secret both admins set (`slicelab_client::peer`). Here it is refused (401 with
//! a JSON body) when unsigned, from an unknown peer, signed with another secret, more than
//! `signing::WINDOW_S` off our clock, or a replay (the nonce was seen: `store::peers`). Our
//! answers are authenticated by TLS: the caller pins our CA. The loop runs on the leading
//! replica only, every `Federation::sync_every` or at once when kicked (a slice offered a
//! peer's node).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use slicelab_model::peer::{
    signing, ForeignSlice, ForeignSliceAck, Peer, PeerRegistry, PeerStatus,
};
use slicelab_store::StoreError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ApiResult};
use crate::ops;
use crate::state::AppState;

/// This central's place among peers.
#[derive(Debug, Clone)]
pub struct Federation {
    /// Its authority name (a valid `login_base`); `None`: it does not federate.
    pub authority: Option<String>,
    /// How often it exchanges with each peer.
    pub sync_every: Duration,
}

impl Default for Federation {
    fn default() -> Self {
        Federation {
            authority: None,
            sync_every: Duration::from_secs(10),
        }
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/registry", get(registry))
        .route("/slices/{name}", put(put_slice))
        .route("/status", get(status))
}

fn unsigned(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The peer that signed this call, or why it is refused.
async fn signed_by(
    st: &AppState,
    method: &Method,
    uri: &OriginalUri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Peer> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(caller), Some(time), Some(nonce), Some(sig)) = (
        header(signing::PEER),
        header(signing::TIME),
        header(signing::NONCE),
        header(signing::SIGNATURE),
    ) else {
        return Err(unsigned(format!(
            "unsigned peer call: the {}, {}, {} and {} headers are required",
            signing::PEER,
            signing::TIME,
            signing::NONCE,
            signing::SIGNATURE
        )));
    };
    let time: i64 = time
        .parse()
        .map_err(|_| unsigned(format!("{} is not Unix seconds", signing::TIME)))?;
    if nonce.is_empty() || nonce.len() > 64 {
        return Err(unsigned(format!(
            "{} must be 1 to 64 characters",
            signing::NONCE
        )));
    }
    let p = match st.store.peer_with_secret(caller).await {
        Ok(p) => p,
        Err(StoreError::NotFound(_)) => {
            return Err(unsigned(format!(
                "{caller:?} is not a peer of this authority"
            )))
        }
        Err(e) => return Err(ops::OpError::from(e).into()),
    };
    let now = crate::now();
    if !signing::fresh(time, now) {
        return Err(unsigned(format!(
            "the call was signed at {time}, {} s off this central's clock (at most {} allowed)",
            now - time,
            signing::WINDOW_S
        )));
    }
    let path = uri
        .0
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| uri.0.path());
    if !slicelab_client::peer::verify(
        &p.secret,
        method.as_str(),
        path,
        time,
        nonce,
        caller,
        body,
        sig,
    ) {
        return Err(unsigned(format!(
            "the signature does not match: not signed with the secret shared with peer {caller}"
        )));
    }
    // Only a correctly signed call may spend a nonce.
    let fresh_nonce = st
        .store
        .take_peer_nonce(p.peer.id, nonce, time + signing::WINDOW_S + 1, now)
        .await
        .map_err(ops::OpError::from)?;
    if !fresh_nonce {
        return Err(unsigned("a replayed call: this nonce was already used"));
    }
    Ok(p.peer)
}

async fn registry(
    State(st): State<AppState>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Json<PeerRegistry>> {
    signed_by(&st, &method, &uri, &headers, b"").await?;
    Ok(Json(ops::peers::registry(&st).await?))
}

async fn put_slice(
    State(st): State<AppState>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ForeignSliceAck>> {
    let peer = signed_by(&st, &method, &uri, &headers, &body).await?;
    let f: ForeignSlice = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("not a slice record: {e}"),
        )
    })?;
    Ok(Json(ops::peers::accept_slice(&st, &peer, &name, &f).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    #[serde(default)]
    usage_after: i64,
    #[serde(default)]
    flows_after: i64,
}

async fn status(
    State(st): State<AppState>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    Query(q): Query<StatusQuery>,
) -> ApiResult<Json<PeerStatus>> {
    let peer = signed_by(&st, &method, &uri, &headers, b"").await?;
    Ok(Json(
        ops::peers::status(&st, &peer, q.usage_after, q.flows_after).await?,
    ))
}

/// Exchanges with every peer while this central leads (`crate::jobs`).
pub(crate) async fn run(st: AppState, mut leading: watch::Receiver<bool>, stop: CancellationToken) {
    if st.federation.authority.is_none() {
        return;
    }
    loop {
        while !*leading.borrow_and_update() {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = leading.changed() => if r.is_err() { return },
            }
        }
        loop {
            if !*leading.borrow() {
                break;
            }
            match st.store.peers_to_sync().await {
                Ok(peers) => {
                    for p in peers {
                        if let Err(e) = ops::peering::exchange(&st, &p).await {
                            tracing::warn!(peer = %p.peer.name, error = %e, "peer exchange failed");
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot list peers"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(st.federation.sync_every) => {}
                _ = st.peering_kick.notified() => {}
            }
        }
    }
}

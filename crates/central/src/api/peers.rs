//! Peer authorities under `/api/v1/peers` (admins write, persons read): writes through
//! `crate::ops::peers`. The calls peers make to each other are not here: see `crate::peering`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use slicelab_model::peer::{Peer, PeerCreate, PeerSuspend, PeerUpdate};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::ops;
use crate::state::AppState;

/// The peer authorities this central shares nodes with.
#[utoipa::path(get, path = "/api/v1/peers", tag = "peers", operation_id = "list_peers",
    responses((status = 200, body = Vec<Peer>)))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Peer>>> {
    caller.person()?;
    Ok(Json(ops::peers::list(&st, &caller.actor).await?))
}

/// Registers a peer authority (admins), with the secret both admins set out of band.
#[utoipa::path(post, path = "/api/v1/peers", tag = "peers", operation_id = "create_peer",
    request_body = PeerCreate,
    responses((status = 201, body = Peer), (status = 403),
        (status = 409, description = "The name is taken (by a peer or a site), or this central has no authority name.")))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(c): ApiJson<PeerCreate>,
) -> ApiResult<(StatusCode, Json<Peer>)> {
    caller.person()?;
    let p = ops::peers::create(&st, &caller.actor, &c).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

#[utoipa::path(get, path = "/api/v1/peers/{peer}", tag = "peers", operation_id = "show_peer",
    params(("peer" = String, Path, description = "Name or id.")),
    responses((status = 200, body = Peer), (status = 404)))]
pub async fn show(
    State(st): State<AppState>,
    caller: Caller,
    Path(peer): Path<String>,
) -> ApiResult<Json<Peer>> {
    caller.person()?;
    Ok(Json(ops::peers::show(&st, &caller.actor, &peer).await?))
}

#[utoipa::path(patch, path = "/api/v1/peers/{peer}", tag = "peers", operation_id = "update_peer",
    params(("peer" = String, Path, description = "Name or id.")), request_body = PeerUpdate,
    responses((status = 200, body = Peer), (status = 403), (status = 404)))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    Path(peer): Path<String>,
    ApiJson(u): ApiJson<PeerUpdate>,
) -> ApiResult<Json<Peer>> {
    caller.person()?;
    Ok(Json(
        ops::peers::update(&st, &caller.actor, &peer, &u).await?,
    ))
}

/// Removes a peer: its slivers here are destroyed (an event each), its nodes leave our slices.
#[utoipa::path(delete, path = "/api/v1/peers/{peer}", tag = "peers", operation_id = "delete_peer",
    params(("peer" = String, Path, description = "Name or id.")),
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    Path(peer): Path<String>,
) -> ApiResult<StatusCode> {
    caller.person()?;
    ops::peers::remove(&st, &caller.actor, &peer).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops every sliver of the peer's slices here (kept) and refuses its changes; it sees why.
#[utoipa::path(post, path = "/api/v1/peers/{peer}/suspend", tag = "peers", operation_id = "suspend_peer",
    params(("peer" = String, Path, description = "Name or id.")), request_body = PeerSuspend,
    responses((status = 200, body = Peer), (status = 403), (status = 404)))]
pub async fn suspend(
    State(st): State<AppState>,
    caller: Caller,
    Path(peer): Path<String>,
    ApiJson(s): ApiJson<PeerSuspend>,
) -> ApiResult<Json<Peer>> {
    caller.person()?;
    Ok(Json(
        ops::peers::suspend(&st, &caller.actor, &peer, &s).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/peers/{peer}/resume", tag = "peers", operation_id = "resume_peer",
    params(("peer" = String, Path, description = "Name or id.")),
    responses((status = 200, body = Peer), (status = 403), (status = 404)))]
pub async fn resume(
    State(st): State<AppState>,
    caller: Caller,
    Path(peer): Path<String>,
) -> ApiResult<Json<Peer>> {
    caller.person()?;
    Ok(Json(ops::peers::resume(&st, &caller.actor, &peer).await?))
}

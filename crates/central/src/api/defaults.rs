//! `/defaults` and `/nodes/{node}/defaults/{tag}`: the default allocation (see `ops::defaults`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use slicelab_model::defaults::{DefaultSet, DefaultTag, Defaults};
use slicelab_model::objects::ErrorBody;
use slicelab_model::TagName;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::ops;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/defaults", tag = "defaults", operation_id = "list_defaults", security(()),
    responses((status = 200, body = Defaults)))]
pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Defaults>> {
    Ok(Json(ops::defaults::list(&st).await?))
}

/// Sets a platform default (admins).
#[utoipa::path(put, path = "/api/v1/defaults/{tag}", tag = "defaults", operation_id = "set_default", request_body = DefaultSet,
    params(("tag" = TagName, Path, description = "a resource tag, e.g. mem_max")),
    responses((status = 200, body = DefaultTag), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set(
    State(st): State<AppState>,
    caller: Caller,
    Path(tag): Path<String>,
    ApiJson(b): ApiJson<DefaultSet>,
) -> ApiResult<Json<DefaultTag>> {
    caller.person()?;
    Ok(Json(
        ops::defaults::set(&st, &caller.actor, &tag, &b.value, None).await?,
    ))
}

/// Removes a platform default (admins).
#[utoipa::path(delete, path = "/api/v1/defaults/{tag}", tag = "defaults", operation_id = "delete_default",
    params(("tag" = TagName, Path, description = "a resource tag, e.g. mem_max")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(tag): Path<String>,
) -> ApiResult<StatusCode> {
    caller.person()?;
    ops::defaults::delete(&st, &caller.actor, &tag, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Overrides a default on one node (admins, the node's site's PIs and techs).
#[utoipa::path(put, path = "/api/v1/nodes/{node}/defaults/{tag}", tag = "defaults", operation_id = "set_node_default",
    request_body = DefaultSet,
    params(("node" = String, Path, description = "id or hostname"),
        ("tag" = TagName, Path, description = "a resource tag, e.g. mem_max")),
    responses((status = 200, body = DefaultTag), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_node(
    State(st): State<AppState>,
    caller: Caller,
    Path((node, tag)): Path<(String, String)>,
    ApiJson(b): ApiJson<DefaultSet>,
) -> ApiResult<Json<DefaultTag>> {
    caller.person()?;
    Ok(Json(
        ops::defaults::set(&st, &caller.actor, &tag, &b.value, Some(&node)).await?,
    ))
}

/// Removes a node's override.
#[utoipa::path(delete, path = "/api/v1/nodes/{node}/defaults/{tag}", tag = "defaults", operation_id = "delete_node_default",
    params(("node" = String, Path, description = "id or hostname"),
        ("tag" = TagName, Path, description = "a resource tag, e.g. mem_max")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_node(
    State(st): State<AppState>,
    caller: Caller,
    Path((node, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.person()?;
    ops::defaults::delete(&st, &caller.actor, &tag, Some(&node)).await?;
    Ok(StatusCode::NO_CONTENT)
}

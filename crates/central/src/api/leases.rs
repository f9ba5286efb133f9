//! Leases under `/api/v1/leases`: writes through `crate::ops::leases`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use slicelab_model::{Lease, LeaseCreate};

use crate::api::path_id;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::ops;
use crate::queries;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LeaseQuery {
    /// Node hostname or id.
    pub node: Option<String>,
    /// Slice name or id.
    pub slice: Option<String>,
}

/// Current and future leases, in time order.
#[utoipa::path(get, path = "/api/v1/leases", tag = "leases", operation_id = "list_leases",
    params(LeaseQuery), responses((status = 200, body = Vec<Lease>), (status = 404, description = "No such node or slice.")))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<LeaseQuery>,
) -> ApiResult<Json<Vec<Lease>>> {
    caller.person()?;
    let node = match &q.node {
        Some(n) => Some(queries::node(&st, n).await?.id),
        None => None,
    };
    let slice = match &q.slice {
        Some(s) => Some(queries::slice(&st, s).await?.id),
        None => None,
    };
    Ok(Json(st.store.list_leases(node, slice, crate::now()).await?))
}

/// Reserves a reservable node for a slice: during the window only that slice's sliver runs there.
#[utoipa::path(post, path = "/api/v1/leases", tag = "leases", operation_id = "create_lease",
    request_body = LeaseCreate,
    responses((status = 201, body = Lease), (status = 403), (status = 404, description = "No such slice or node."),
        (status = 409, description = "The window overlaps another lease of the node."),
        (status = 422, description = "The node is not reservable, or the window is not a future one of at most a week starting within 8 weeks.")))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(c): ApiJson<LeaseCreate>,
) -> ApiResult<(StatusCode, Json<Lease>)> {
    caller.person()?;
    let lease = ops::leases::create(&st, &caller.actor, &c).await?;
    Ok((StatusCode::CREATED, Json(lease)))
}

#[utoipa::path(delete, path = "/api/v1/leases/{id}", tag = "leases", operation_id = "delete_lease",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 400, description = "The id is not a number."), (status = 403), (status = 404)))]
pub async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.person()?;
    let id = path_id("lease", &id)?;
    ops::leases::remove(&st, &caller.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

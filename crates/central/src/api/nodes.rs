//! Nodes under `/api/v1/nodes`: public reads; writes through `crate::ops::nodes`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use slicelab_model::objects::Page;
use slicelab_model::sliver::Sliver;
use slicelab_model::{
    BootState, ErrorBody, JoinRequest, JoinToken, JoinTokenCreate, Node, NodeCreate, NodeUpdate,
    NodeWithKey,
};

use crate::api::paging;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::ops;
use crate::queries::{self, NodeFilter};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NodeQuery {
    /// Site id or login_base.
    pub site: Option<String>,
    pub boot_state: Option<BootState>,
    pub region: Option<String>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// Nodes are public: anyone may list them (PlanetLab published its node list).
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes", operation_id = "list_nodes",
    params(NodeQuery), security(()),
    responses((status = 200, body = Page<Node>), (status = 404, description = "No such site."), (status = 422)))]
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<NodeQuery>,
) -> ApiResult<Json<Page<Node>>> {
    let p = paging(q.limit, q.offset)?;
    let site_id = match &q.site {
        Some(s) => Some(queries::site(&st, s).await?.id),
        None => None,
    };
    let f = NodeFilter {
        site_id,
        boot_state: q.boot_state,
        region: q.region,
    };
    let (items, total) = queries::nodes(&st, &f, p).await?;
    Ok(Json(Page {
        items,
        total,
        limit: p.limit,
        offset: p.offset,
    }))
}

#[utoipa::path(post, path = "/api/v1/nodes", tag = "nodes", operation_id = "create_node",
    request_body = NodeCreate,
    responses((status = 201, body = NodeWithKey), (status = 403), (status = 409, description = "The hostname is taken.")))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(c): ApiJson<NodeCreate>,
) -> ApiResult<(StatusCode, Json<NodeWithKey>)> {
    caller.person()?;
    let node = ops::nodes::create(&st, &caller.actor, &c).await?;
    Ok((StatusCode::CREATED, Json(node)))
}

#[utoipa::path(get, path = "/api/v1/nodes/{node}", tag = "nodes", operation_id = "show_node",
    params(("node" = String, Path, description = "id or hostname")), security(()), responses((status = 200, body = Node), (status = 404)))]
pub async fn show(State(st): State<AppState>, Path(node): Path<String>) -> ApiResult<Json<Node>> {
    Ok(Json(queries::node(&st, &node).await?))
}

#[utoipa::path(patch, path = "/api/v1/nodes/{node}", tag = "nodes", operation_id = "update_node",
    request_body = NodeUpdate, params(("node" = String, Path, description = "id or hostname")),
    responses((status = 200, body = Node), (status = 403), (status = 404)))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
    ApiJson(u): ApiJson<NodeUpdate>,
) -> ApiResult<Json<Node>> {
    Ok(Json(
        ops::nodes::update(&st, &caller.actor, &node, &u).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/nodes/{node}", tag = "nodes", operation_id = "delete_node",
    params(("node" = String, Path, description = "id or hostname")), responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
) -> ApiResult<StatusCode> {
    ops::nodes::remove(&st, &caller.actor, &node).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a new node key; the old one stops working at once.
#[utoipa::path(post, path = "/api/v1/nodes/{node}/key", tag = "nodes", operation_id = "rekey_node",
    params(("node" = String, Path, description = "id or hostname")), responses((status = 200, body = NodeWithKey), (status = 403), (status = 404)))]
pub async fn rekey(
    State(st): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
) -> ApiResult<Json<NodeWithKey>> {
    Ok(Json(ops::nodes::rekey(&st, &caller.actor, &node).await?))
}

/// Issues a single-use, expiring join token for the node (`slicelab node join`).
#[utoipa::path(post, path = "/api/v1/nodes/{node}/join-token", tag = "nodes", operation_id = "create_join_token",
    request_body = JoinTokenCreate, params(("node" = String, Path, description = "id or hostname")),
    responses((status = 201, body = JoinToken), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "ttl_secs out of range")))]
pub async fn join_token(
    State(st): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
    ApiJson(c): ApiJson<JoinTokenCreate>,
) -> ApiResult<(StatusCode, Json<JoinToken>)> {
    caller.person()?;
    let t = ops::nodes::join_token(&st, &caller.actor, &node, &c).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

/// A new machine exchanges its join token for the node's key (a new key: earlier ones stop
/// working). The token is the credential; it works once, until it expires.
#[utoipa::path(post, path = "/api/v1/node/join", tag = "node", operation_id = "join_node",
    request_body = JoinRequest, security(()),
    responses((status = 200, body = NodeWithKey),
        (status = 401, body = ErrorBody, description = "Unknown, used or expired join token (the message says which).")))]
pub async fn join(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<JoinRequest>,
) -> ApiResult<Json<NodeWithKey>> {
    Ok(Json(ops::nodes::join(&st, &req).await?))
}

#[utoipa::path(get, path = "/api/v1/nodes/{node}/slivers", tag = "nodes", operation_id = "list_node_slivers",
    params(("node" = String, Path, description = "id or hostname")), responses((status = 200, body = Vec<Sliver>), (status = 404)))]
pub async fn slivers(
    State(st): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
) -> ApiResult<Json<Vec<Sliver>>> {
    caller.person()?;
    let n = queries::node(&st, &node).await?;
    Ok(Json(queries::slivers_of_node(&st, n.id).await?))
}

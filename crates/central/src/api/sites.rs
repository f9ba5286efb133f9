//! Sites under `/api/v1/sites`: public reads; writes through `crate::ops::sites`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use slicelab_model::objects::Page;
use slicelab_model::{Site, SiteCreate, SiteUpdate};

use crate::api::paging;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::ops;
use crate::queries;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SiteQuery {
    pub login_base: Option<String>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// Sites are public: anyone may list them.
#[utoipa::path(get, path = "/api/v1/sites", tag = "sites", operation_id = "list_sites",
    params(SiteQuery), security(()),
    responses((status = 200, body = Page<Site>), (status = 422)))]
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<SiteQuery>,
) -> ApiResult<Json<Page<Site>>> {
    let p = paging(q.limit, q.offset)?;
    let (items, total) = queries::sites(&st, q.login_base.as_deref(), p).await?;
    Ok(Json(Page {
        items,
        total,
        limit: p.limit,
        offset: p.offset,
    }))
}

#[utoipa::path(post, path = "/api/v1/sites", tag = "sites", operation_id = "create_site",
    request_body = SiteCreate,
    responses((status = 201, body = Site), (status = 403), (status = 409, description = "The login_base is taken.")))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(c): ApiJson<SiteCreate>,
) -> ApiResult<(StatusCode, Json<Site>)> {
    let site = ops::sites::create(&st, &caller.actor, &c).await?;
    Ok((StatusCode::CREATED, Json(site)))
}

#[utoipa::path(get, path = "/api/v1/sites/{site}", tag = "sites", operation_id = "show_site",
    params(("site" = String, Path, description = "id or login_base")), security(()),
    responses((status = 200, body = Site), (status = 404)))]
pub async fn show(State(st): State<AppState>, Path(site): Path<String>) -> ApiResult<Json<Site>> {
    Ok(Json(queries::site(&st, &site).await?))
}

#[utoipa::path(patch, path = "/api/v1/sites/{site}", tag = "sites", operation_id = "update_site",
    request_body = SiteUpdate, params(("site" = String, Path, description = "id or login_base")),
    responses((status = 200, body = Site),
        (status = 403, description = "Not an admin nor the site's PI, or a PI changing max_slices, image_quota_mb or enabled."),
        (status = 404)))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    Path(site): Path<String>,
    ApiJson(u): ApiJson<SiteUpdate>,
) -> ApiResult<Json<Site>> {
    Ok(Json(
        ops::sites::update(&st, &caller.actor, &site, &u).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/sites/{site}", tag = "sites", operation_id = "delete_site",
    params(("site" = String, Path, description = "id or login_base")),
    responses((status = 204), (status = 403), (status = 404),
        (status = 409, description = "The site still has nodes, slices or persons.")))]
pub async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    Path(site): Path<String>,
) -> ApiResult<StatusCode> {
    ops::sites::remove(&st, &caller.actor, &site).await?;
    Ok(StatusCode::NO_CONTENT)
}

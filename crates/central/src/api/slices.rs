//! Slices under `/api/v1/slices`: the handlers parse and answer; the work is `crate::ops::slices`
//! and `crate::ops::tags`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use slicelab_model::objects::Page;
use slicelab_model::sliver::Sliver;
use slicelab_model::{
    NameList, Slice, SliceCreate, SliceRenew, SliceTag, SliceTagSet, SliceUpdate, TagName,
};
use slicelab_placement::{SelectRequest, SelectResult};

use crate::api::{paging, NodeParam};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::ops::{self, slice_and_member};
use crate::queries::{self, SliceFilter};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SliceQuery {
    /// Site id or login_base.
    pub site: Option<String>,
    /// Person id or email.
    pub person: Option<String>,
    /// Node id or hostname.
    pub node: Option<String>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/slices", tag = "slices", operation_id = "list_slices",
    params(SliceQuery),
    responses((status = 200, body = Page<Slice>), (status = 404, description = "No such site, person or node."), (status = 422)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SliceQuery>,
) -> ApiResult<Json<Page<Slice>>> {
    caller.person()?;
    let p = paging(q.limit, q.offset)?;
    let mut f = SliceFilter::default();
    if let Some(s) = &q.site {
        f.site_id = Some(queries::site(&st, s).await?.id);
    }
    if let Some(s) = &q.person {
        f.person_id = Some(st.store.person(s).await?.person.id);
    }
    if let Some(s) = &q.node {
        f.node_id = Some(queries::node(&st, s).await?.id);
    }
    let (items, total) = queries::slices(&st, &f, p).await?;
    Ok(Json(Page {
        items,
        total,
        limit: p.limit,
        offset: p.offset,
    }))
}

/// Creates a slice of the site its name starts with; it expires in 4 weeks unless renewed.
#[utoipa::path(post, path = "/api/v1/slices", tag = "slices", operation_id = "create_slice",
    request_body = SliceCreate,
    responses((status = 201, body = Slice), (status = 403),
        (status = 409, description = "The name is taken, the site is disabled or has max_slices slices."),
        (status = 422, description = "A value breaks a rule, or no site has the name's login_base.")))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(c): ApiJson<SliceCreate>,
) -> ApiResult<(StatusCode, Json<Slice>)> {
    caller.person()?;
    let sl = ops::slices::create(&st, &caller.actor, &c).await?;
    Ok((StatusCode::CREATED, Json(sl)))
}

#[utoipa::path(get, path = "/api/v1/slices/{slice}", tag = "slices", operation_id = "show_slice",
    params(("slice" = String, Path, description = "id or name")), responses((status = 200, body = Slice), (status = 404)))]
pub async fn show(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
) -> ApiResult<Json<Slice>> {
    caller.person()?;
    Ok(Json(queries::slice(&st, &slice).await?))
}

#[utoipa::path(patch, path = "/api/v1/slices/{slice}", tag = "slices", operation_id = "update_slice",
    request_body = SliceUpdate, params(("slice" = String, Path, description = "id or name")),
    responses((status = 200, body = Slice), (status = 403), (status = 404)))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
    ApiJson(u): ApiJson<SliceUpdate>,
) -> ApiResult<Json<Slice>> {
    caller.person()?;
    Ok(Json(
        ops::slices::update(&st, &caller.actor, &slice, &u).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/slices/{slice}", tag = "slices", operation_id = "delete_slice",
    params(("slice" = String, Path, description = "id or name")), responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
) -> ApiResult<StatusCode> {
    caller.person()?;
    ops::slices::remove(&st, &caller.actor, &slice).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves the expiry: at most 8 weeks ahead; by the slice's persons, its site PIs and admins.
#[utoipa::path(post, path = "/api/v1/slices/{slice}/renew", tag = "slices", operation_id = "renew_slice",
    request_body = SliceRenew, params(("slice" = String, Path, description = "id or name")),
    responses((status = 200, body = Slice), (status = 403), (status = 404),
        (status = 422, description = "Not exactly one of expires and days, or the expiry is not in the next 8 weeks.")))]
pub async fn renew(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
    ApiJson(r): ApiJson<SliceRenew>,
) -> ApiResult<Json<Slice>> {
    caller.person()?;
    Ok(Json(
        ops::slices::renew(&st, &caller.actor, &slice, &r).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/slices/{slice}/nodes", tag = "slices", operation_id = "add_slice_nodes",
    request_body = NameList, params(("slice" = String, Path, description = "id or name")),
    responses((status = 200, body = Slice), (status = 403), (status = 404),
        (status = 409, description = "Admission control: a node cannot honour the slice's guarantees."),
        (status = 422, description = "An unknown node.")))]
pub async fn add_nodes(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
    ApiJson(l): ApiJson<NameList>,
) -> ApiResult<Json<Slice>> {
    caller.person()?;
    Ok(Json(
        ops::slices::add_nodes(&st, &caller.actor, &slice, &l.names).await?,
    ))
}

/// Lets the broker choose nodes for the slice: live nodes meeting every constraint, least loaded
/// first, spread as asked, never over-committing guarantees. 409 explains an impossible request.
#[utoipa::path(post, path = "/api/v1/slices/{slice}/nodes/select", tag = "slices", operation_id = "select_slice_nodes",
    request_body = SelectRequest, params(("slice" = String, Path, description = "id or name")),
    responses((status = 200, body = SelectResult), (status = 403), (status = 404),
        (status = 409, description = "No set of nodes meets the request; the message says which constraint failed."),
        (status = 422, description = "The selection does not parse.")))]
pub async fn select_nodes(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
    ApiJson(req): ApiJson<SelectRequest>,
) -> ApiResult<Json<SelectResult>> {
    caller.person()?;
    Ok(Json(
        ops::slices::select_nodes(&st, &caller.actor, &slice, &req).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/slices/{slice}/nodes/{node}", tag = "slices", operation_id = "remove_slice_node",
    params(("slice" = String, Path, description = "id or name"), ("node" = String, Path, description = "id or hostname")),
    responses((status = 200, body = Slice), (status = 403), (status = 404)))]
pub async fn remove_node(
    State(st): State<AppState>,
    caller: Caller,
    Path((slice, node)): Path<(String, String)>,
) -> ApiResult<Json<Slice>> {
    caller.person()?;
    Ok(Json(
        ops::slices::remove_node(&st, &caller.actor, &slice, &node).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/slices/{slice}/persons", tag = "slices", operation_id = "add_slice_persons",
    request_body = NameList, params(("slice" = String, Path, description = "id or name")),
    responses((status = 200, body = Slice), (status = 403), (status = 404), (status = 422, description = "An unknown person.")))]
pub async fn add_persons(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
    ApiJson(l): ApiJson<NameList>,
) -> ApiResult<Json<Slice>> {
    caller.person()?;
    Ok(Json(
        ops::slices::add_persons(&st, &caller.actor, &slice, &l.names).await?,
    ))
}

/// Removes a person from the slice (its PIs, admins, or the person itself leaving).
#[utoipa::path(delete, path = "/api/v1/slices/{slice}/persons/{person}", tag = "slices", operation_id = "remove_slice_person",
    params(("slice" = String, Path, description = "id or name"), ("person" = String, Path, description = "id or email")),
    responses((status = 200, body = Slice), (status = 403), (status = 404)))]
pub async fn remove_person(
    State(st): State<AppState>,
    caller: Caller,
    Path((slice, person)): Path<(String, String)>,
) -> ApiResult<Json<Slice>> {
    caller.person()?;
    Ok(Json(
        ops::slices::remove_person(&st, &caller.actor, &slice, &person).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/slices/{slice}/slivers", tag = "slices", operation_id = "list_slice_slivers",
    params(("slice" = String, Path, description = "id or name")), responses((status = 200, body = Vec<Sliver>), (status = 404)))]
pub async fn slivers(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
) -> ApiResult<Json<Vec<Sliver>>> {
    caller.person()?;
    let (sl, _) = slice_and_member(&st, &caller.actor, &slice).await?;
    Ok(Json(queries::slivers_of_slice(&st, sl.id).await?))
}

#[utoipa::path(get, path = "/api/v1/slices/{slice}/tags", tag = "slices", operation_id = "list_slice_tags",
    params(("slice" = String, Path, description = "id or name")), responses((status = 200, body = Vec<SliceTag>), (status = 404)))]
pub async fn tags(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
) -> ApiResult<Json<Vec<SliceTag>>> {
    caller.person()?;
    let (sl, _) = slice_and_member(&st, &caller.actor, &slice).await?;
    Ok(Json(queries::slice_tags(&st, &sl).await?))
}

/// Sets a tag slice-wide or, with `node`, for one node (node values override slice-wide ones).
#[utoipa::path(put, path = "/api/v1/slices/{slice}/tags/{tag}", tag = "slices", operation_id = "set_slice_tag",
    request_body = SliceTagSet, params(("slice" = String, Path, description = "id or name"), ("tag" = TagName, Path)),
    responses((status = 200, body = SliceTag), (status = 403), (status = 404),
        (status = 409, description = "Admission control: a node of the slice cannot honour the guarantee."),
        (status = 422, description = "The value does not parse for this tag, or an unknown node.")))]
pub async fn set_tag(
    State(st): State<AppState>,
    caller: Caller,
    Path((slice, tag)): Path<(String, String)>,
    ApiJson(b): ApiJson<SliceTagSet>,
) -> ApiResult<Json<SliceTag>> {
    caller.person()?;
    let tag = TagName::parse(&tag)?;
    let t = ops::tags::set(&st, &caller.actor, &slice, tag, &b.value, b.node.as_deref()).await?;
    Ok(Json(t))
}

#[utoipa::path(delete, path = "/api/v1/slices/{slice}/tags/{tag}", tag = "slices", operation_id = "delete_slice_tag",
    params(("slice" = String, Path, description = "id or name"), ("tag" = TagName, Path), NodeParam),
    responses((status = 204), (status = 403), (status = 404, description = "No such slice, or the tag is not set."),
        (status = 422, description = "An unknown tag or node.")))]
pub async fn delete_tag(
    State(st): State<AppState>,
    caller: Caller,
    Path((slice, tag)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<NodeParam>,
) -> ApiResult<StatusCode> {
    caller.person()?;
    let tag = TagName::parse(&tag)?;
    ops::tags::delete(&st, &caller.actor, &slice, tag, q.node.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

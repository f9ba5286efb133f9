use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use slicelab_model::objects::Page;
use slicelab_model::policy::check_renewal;
use slicelab_model::sliver::Sliver;
use slicelab_model::time::{DAY, SLICE_DEFAULT_LIFETIME};
use slicelab_model::{
    names, tags, NameList, Slice, SliceCreate, SliceRenew, SliceTag, SliceTagSet, SliceUpdate,
    TagName,
};
use slicelab_placement::{select, SelectRequest, SelectResult};
use slicelab_store::{SliceFilter, StoreError};

use crate::api::{paging, NodeParam};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
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

const MAX_NAMES: usize = 10_000;

async fn resolve_nodes(st: &AppState, names: &[String]) -> ApiResult<Vec<(i64, String)>> {
    if names.len() > MAX_NAMES {
        return Err(ApiError::invalid(
            "names",
            format!("at most {MAX_NAMES} names at once"),
        ));
    }
    let mut out = Vec::new();
    for n in names {
        match st.store.node(n).await {
            Ok(node) => out.push((node.id, node.hostname)),
            Err(StoreError::NotFound(_)) => {
                return Err(ApiError::invalid("names", format!("unknown node {n:?}")))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

async fn resolve_persons(st: &AppState, names: &[String]) -> ApiResult<Vec<(i64, String)>> {
    if names.len() > MAX_NAMES {
        return Err(ApiError::invalid(
            "names",
            format!("at most {MAX_NAMES} names at once"),
        ));
    }
    let mut out = Vec::new();
    for n in names {
        match st.store.person(n).await {
            Ok(p) => out.push((p.person.id, p.person.email)),
            Err(StoreError::NotFound(_)) => {
                return Err(ApiError::invalid("names", format!("unknown person {n:?}")))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The slice and whether the caller is one of its persons.
async fn slice_for(st: &AppState, caller: &Caller, key: &str) -> ApiResult<(Slice, bool)> {
    let me = caller.person()?;
    let sl = st.store.slice(key).await?;
    let member = st.store.is_slice_member(sl.id, me.person.id).await?;
    Ok((sl, member))
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
        f.site_id = Some(st.store.site(s).await?.id);
    }
    if let Some(s) = &q.person {
        f.person_id = Some(st.store.person(s).await?.person.id);
    }
    if let Some(s) = &q.node {
        f.node_id = Some(st.store.node(s).await?.id);
    }
    let (items, total) = st.store.list_slices(&f, p).await?;
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
    let base = names::slice_login_base(&c.name).ok_or_else(|| {
        ApiError::invalid(
            "name",
            format!("{:?} must be <login_base>_<suffix>", c.name),
        )
    })?;
    let site = match st.store.site(base).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::invalid(
                "name",
                format!(
                    "{:?} must start with a site's login_base; there is no site {base:?}",
                    c.name
                ),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    caller.actor.can_create_slice(site.id)?;
    c.validate(&site.login_base)?;
    if !site.enabled {
        return Err(ApiError::conflict(format!(
            "site {} is disabled",
            site.login_base
        )));
    }
    let now = crate::now();
    let sl = st
        .store
        .create_slice(
            &caller.label(),
            now,
            &c,
            site.id,
            site.max_slices,
            now + SLICE_DEFAULT_LIFETIME,
        )
        .await?;
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
    Ok(Json(st.store.slice(&slice).await?))
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
    let (sl, _) = slice_for(&st, &caller, &slice).await?;
    caller.actor.can_admin_slice(sl.site_id)?;
    if u.enabled.is_some() {
        caller.actor.require_admin("enable or disable a slice")?;
    }
    u.validate()?;
    let sl = st
        .store
        .update_slice(&caller.label(), crate::now(), &sl, &u)
        .await?;
    st.changed_nodes(&sl.nodes);
    Ok(Json(sl))
}

#[utoipa::path(delete, path = "/api/v1/slices/{slice}", tag = "slices", operation_id = "delete_slice",
    params(("slice" = String, Path, description = "id or name")), responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
) -> ApiResult<StatusCode> {
    let (sl, _) = slice_for(&st, &caller, &slice).await?;
    caller.actor.can_create_slice(sl.site_id)?;
    st.store
        .delete_slice(&caller.label(), crate::now(), &sl)
        .await?;
    st.changed_nodes(&sl.nodes);
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
    let (sl, member) = slice_for(&st, &caller, &slice).await?;
    caller.actor.can_use_slice(sl.site_id, member)?;
    let now = crate::now();
    let requested = match (r.expires, r.days) {
        (Some(e), None) => e,
        (None, Some(d)) if (1..=365).contains(&d) => now + d * DAY,
        (None, Some(d)) => {
            return Err(ApiError::invalid("days", format!("{d} is outside 1..=365")))
        }
        _ => {
            return Err(ApiError::invalid(
                "expires",
                "give exactly one of expires or days",
            ))
        }
    };
    let expires = check_renewal(now, requested)?;
    let sl = st
        .store
        .renew_slice(&caller.label(), now, &sl, expires)
        .await?;
    st.changed_nodes(&sl.nodes);
    Ok(Json(sl))
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
    let (sl, member) = slice_for(&st, &caller, &slice).await?;
    caller.actor.can_use_slice(sl.site_id, member)?;
    let nodes = resolve_nodes(&st, &l.names).await?;
    crate::broker::admit_nodes(&st, &sl, &nodes).await?;
    let sl = st
        .store
        .add_slice_nodes(&caller.label(), crate::now(), &sl, &nodes)
        .await?;
    st.changed_nodes(nodes.iter().map(|(_, h)| h));
    Ok(Json(sl))
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
    let (sl, member) = slice_for(&st, &caller, &slice).await?;
    caller.actor.can_use_slice(sl.site_id, member)?;
    let sel = req
        .select
        .selection()
        .map_err(|e| ApiError::invalid("select", e.to_string()))?;
    let now = crate::now();
    let candidates = st.store.placement_candidates(sl.id, now).await?;
    // The slice-wide guarantee; node-specific overrides are checked again by admission below.
    let reserve = st.store.slice_reservation(sl.id, 0).await?;
    let chosen =
        select(&sel, reserve, &candidates).map_err(|e| ApiError::conflict(e.to_string()))?;
    let nodes: Vec<(i64, String)> = chosen
        .iter()
        .filter_map(|id| candidates.iter().find(|c| c.node_id == *id))
        .map(|c| (c.node_id, c.hostname.clone()))
        .collect();
    crate::broker::admit_nodes(&st, &sl, &nodes).await?;
    let slice = st
        .store
        .add_slice_nodes(&caller.label(), now, &sl, &nodes)
        .await?;
    st.changed_nodes(nodes.iter().map(|(_, h)| h));
    Ok(Json(SelectResult {
        slice,
        added: nodes.into_iter().map(|(_, h)| h).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/slices/{slice}/nodes/{node}", tag = "slices", operation_id = "remove_slice_node",
    params(("slice" = String, Path, description = "id or name"), ("node" = String, Path, description = "id or hostname")),
    responses((status = 200, body = Slice), (status = 403), (status = 404)))]
pub async fn remove_node(
    State(st): State<AppState>,
    caller: Caller,
    Path((slice, node)): Path<(String, String)>,
) -> ApiResult<Json<Slice>> {
    let (sl, member) = slice_for(&st, &caller, &slice).await?;
    caller.actor.can_use_slice(sl.site_id, member)?;
    let n = st.store.node(&node).await?;
    let sl = st
        .store
        .remove_slice_node(&caller.label(), crate::now(), &sl, (n.id, &n.hostname))
        .await?;
    st.changed_nodes([&n.hostname]);
    Ok(Json(sl))
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
    let (sl, _) = slice_for(&st, &caller, &slice).await?;
    caller.actor.can_admin_slice(sl.site_id)?;
    let persons = resolve_persons(&st, &l.names).await?;
    let sl = st
        .store
        .add_slice_persons(&caller.label(), crate::now(), &sl, &persons)
        .await?;
    st.changed_nodes(&sl.nodes);
    Ok(Json(sl))
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
    let (sl, _) = slice_for(&st, &caller, &slice).await?;
    let p = st.store.person(&person).await?;
    if caller.actor.person_id() != Some(p.person.id) {
        caller.actor.can_admin_slice(sl.site_id)?;
    }
    let sl = st
        .store
        .remove_slice_person(
            &caller.label(),
            crate::now(),
            &sl,
            (p.person.id, &p.person.email),
        )
        .await?;
    st.changed_nodes(&sl.nodes);
    Ok(Json(sl))
}

#[utoipa::path(get, path = "/api/v1/slices/{slice}/slivers", tag = "slices", operation_id = "list_slice_slivers",
    params(("slice" = String, Path, description = "id or name")), responses((status = 200, body = Vec<Sliver>), (status = 404)))]
pub async fn slivers(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
) -> ApiResult<Json<Vec<Sliver>>> {
    let (sl, _) = slice_for(&st, &caller, &slice).await?;
    Ok(Json(st.store.slivers_of_slice(sl.id).await?))
}

#[utoipa::path(get, path = "/api/v1/slices/{slice}/tags", tag = "slices", operation_id = "list_slice_tags",
    params(("slice" = String, Path, description = "id or name")), responses((status = 200, body = Vec<SliceTag>), (status = 404)))]
pub async fn tags(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
) -> ApiResult<Json<Vec<SliceTag>>> {
    let (sl, _) = slice_for(&st, &caller, &slice).await?;
    Ok(Json(st.store.slice_tags(&sl).await?))
}

async fn tag_target(
    st: &AppState,
    caller: &Caller,
    slice: &str,
    tag: &str,
    node: Option<&str>,
) -> ApiResult<(Slice, TagName, Option<(i64, String)>)> {
    let (sl, member) = slice_for(st, caller, slice).await?;
    let tag = TagName::parse(tag)?;
    caller.actor.can_set_tag(tag, sl.site_id, member)?;
    let node = match node {
        Some(n) => match st.store.node(n).await {
            Ok(n) => Some((n.id, n.hostname)),
            Err(StoreError::NotFound(_)) => {
                return Err(ApiError::invalid("node", format!("unknown node {n:?}")))
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    Ok((sl, tag, node))
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
    let (sl, tag, node) = tag_target(&st, &caller, &slice, &tag, b.node.as_deref()).await?;
    let value = tags::validate(tag, &b.value)?;
    crate::broker::admit_tag(&st, &sl, tag, &value, node.as_ref().map(|n| n.0)).await?;
    let t = st
        .store
        .set_slice_tag(
            &caller.label(),
            crate::now(),
            &sl,
            tag,
            &value,
            node.as_ref().map(|(id, h)| (*id, h.as_str())),
        )
        .await?;
    st.changed_nodes(&sl.nodes);
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
    let (sl, tag, node) = tag_target(&st, &caller, &slice, &tag, q.node.as_deref()).await?;
    st.store
        .delete_slice_tag(
            &caller.label(),
            crate::now(),
            &sl,
            tag,
            node.as_ref().map(|(id, h)| (*id, h.as_str())),
        )
        .await?;
    st.changed_nodes(&sl.nodes);
    Ok(StatusCode::NO_CONTENT)
}

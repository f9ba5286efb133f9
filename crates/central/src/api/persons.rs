use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use slicelab_model::objects::Page;
use slicelab_model::{ssh_key, Key, KeyCreate, Person, PersonCreate, PersonUpdate, Role};
use slicelab_store::{PersonFilter, PersonRecord, StoreError};

use crate::api::paging;
use crate::auth::{hash_password, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PersonQuery {
    /// Site id or login_base.
    pub site: Option<String>,
    pub role: Option<Role>,
    pub email: Option<String>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// Site `login_base`s (or ids) to ids; an unknown one is a 422 naming it.
pub(crate) async fn site_ids(st: &AppState, sites: &[String]) -> ApiResult<Vec<i64>> {
    let mut ids = Vec::new();
    for s in sites {
        match st.store.site(s).await {
            Ok(site) => ids.push(site.id),
            Err(StoreError::NotFound(_)) => {
                return Err(ApiError::invalid("sites", format!("unknown site {s:?}")))
            }
            Err(e) => return Err(e.into()),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

#[utoipa::path(get, path = "/api/v1/persons", tag = "persons", operation_id = "list_persons",
    params(PersonQuery),
    responses((status = 200, body = Page<Person>), (status = 404, description = "No such site."), (status = 422)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PersonQuery>,
) -> ApiResult<Json<Page<Person>>> {
    let me = caller.person()?;
    let p = paging(q.limit, q.offset)?;
    let site_id = match &q.site {
        Some(s) => Some(st.store.site(s).await?.id),
        None => None,
    };
    let f = PersonFilter {
        site_id,
        role: q.role,
        email: q.email,
        visible_to: (!caller.actor.is_admin()).then(|| (me.site_ids.clone(), me.person.id)),
    };
    let (items, total) = st.store.list_persons(&f, p).await?;
    Ok(Json(Page {
        items,
        total,
        limit: p.limit,
        offset: p.offset,
    }))
}

#[utoipa::path(post, path = "/api/v1/persons", tag = "persons", operation_id = "create_person",
    request_body = PersonCreate,
    responses((status = 201, body = Person), (status = 403), (status = 409, description = "The email is taken.")))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(c): ApiJson<PersonCreate>,
) -> ApiResult<(StatusCode, Json<Person>)> {
    caller.person()?;
    c.validate()?;
    let ids = site_ids(&st, &c.sites).await?;
    caller.actor.can_grant(&c.roles, &ids)?;
    let hash = match &c.password {
        Some(p) => Some(hash_password(p.clone()).await?),
        None => None,
    };
    let person = st
        .store
        .create_person(&caller.label(), crate::now(), &c, hash, &ids)
        .await?;
    Ok((StatusCode::CREATED, Json(person)))
}

async fn visible_person(st: &AppState, caller: &Caller, key: &str) -> ApiResult<PersonRecord> {
    caller.person()?;
    let rec = st.store.person(key).await?;
    caller.actor.can_see_person(rec.person.id, &rec.site_ids)?;
    Ok(rec)
}

#[utoipa::path(get, path = "/api/v1/persons/{person}", tag = "persons", operation_id = "show_person",
    params(("person" = String, Path, description = "id or email")), responses((status = 200, body = Person), (status = 403), (status = 404)))]
pub async fn show(
    State(st): State<AppState>,
    caller: Caller,
    Path(person): Path<String>,
) -> ApiResult<Json<Person>> {
    Ok(Json(visible_person(&st, &caller, &person).await?.person))
}

#[utoipa::path(patch, path = "/api/v1/persons/{person}", tag = "persons", operation_id = "update_person",
    request_body = PersonUpdate, params(("person" = String, Path, description = "id or email")),
    responses((status = 200, body = Person), (status = 403), (status = 404)))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    Path(person): Path<String>,
    ApiJson(u): ApiJson<PersonUpdate>,
) -> ApiResult<Json<Person>> {
    let rec = visible_person(&st, &caller, &person).await?;
    let target = &rec.person;
    caller
        .actor
        .can_manage_person(target.id, &rec.site_ids, target.has_role(Role::Admin))?;
    u.validate()?;
    let is_self = caller.actor.person_id() == Some(target.id);
    if u.password.is_some() && !is_self && !caller.actor.is_admin() {
        return Err(ApiError::forbidden(
            "only the person itself and admins may set its password",
        ));
    }
    if u.enabled.is_some() && is_self && !caller.actor.is_admin() {
        return Err(ApiError::forbidden("you cannot enable or disable yourself"));
    }
    let new_sites = match &u.sites {
        Some(s) => Some(site_ids(&st, s).await?),
        None => None,
    };
    if u.roles.is_some() || new_sites.is_some() {
        // Granting: every role given and every site joined or left must be the caller's to grant.
        let roles = u.roles.clone().unwrap_or_else(|| target.roles.clone());
        let old: BTreeSet<i64> = rec.site_ids.iter().copied().collect();
        let new: BTreeSet<i64> = new_sites
            .clone()
            .unwrap_or_else(|| rec.site_ids.clone())
            .into_iter()
            .collect();
        let mut touched: Vec<i64> = old.symmetric_difference(&new).copied().collect();
        if u.roles.is_some() {
            touched.extend(new.iter().copied());
        }
        touched.sort_unstable();
        touched.dedup();
        caller.actor.can_grant(&roles, &touched)?;
    }
    let hash = match &u.password {
        Some(p) => Some(hash_password(p.clone()).await?),
        None => None,
    };
    let p = st
        .store
        .update_person(
            &caller.label(),
            crate::now(),
            &rec,
            &u,
            hash,
            new_sites.as_deref(),
        )
        .await?;
    st.changed();
    Ok(Json(p))
}

#[utoipa::path(delete, path = "/api/v1/persons/{person}", tag = "persons", operation_id = "delete_person",
    params(("person" = String, Path, description = "id or email")), responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    Path(person): Path<String>,
) -> ApiResult<StatusCode> {
    let rec = visible_person(&st, &caller, &person).await?;
    let is_pi = rec.site_ids.iter().any(|s| caller.actor.is_pi_of(*s));
    if !(caller.actor.is_admin() || (is_pi && !rec.person.has_role(Role::Admin))) {
        return Err(ApiError::forbidden(
            "only admins and the person's site PIs may delete a person",
        ));
    }
    st.store
        .delete_person(&caller.label(), crate::now(), &rec)
        .await?;
    st.changed();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/persons/{person}/keys", tag = "keys", operation_id = "list_keys",
    params(("person" = String, Path, description = "id or email")), responses((status = 200, body = Vec<Key>), (status = 403), (status = 404)))]
pub async fn list_keys(
    State(st): State<AppState>,
    caller: Caller,
    Path(person): Path<String>,
) -> ApiResult<Json<Vec<Key>>> {
    let rec = visible_person(&st, &caller, &person).await?;
    Ok(Json(st.store.list_keys(rec.person.id).await?))
}

#[utoipa::path(post, path = "/api/v1/persons/{person}/keys", tag = "keys", operation_id = "add_key",
    request_body = KeyCreate, params(("person" = String, Path, description = "id or email")),
    responses((status = 201, body = Key), (status = 403), (status = 404),
        (status = 409, description = "The person already has this key.")))]
pub async fn add_key(
    State(st): State<AppState>,
    caller: Caller,
    Path(person): Path<String>,
    ApiJson(k): ApiJson<KeyCreate>,
) -> ApiResult<(StatusCode, Json<Key>)> {
    let rec = visible_person(&st, &caller, &person).await?;
    caller.actor.can_manage_keys(rec.person.id)?;
    let key = ssh_key::parse(&k.key)?;
    let stored = st
        .store
        .add_key(&caller.label(), crate::now(), &rec, &key.to_openssh())
        .await?;
    st.changed();
    Ok((StatusCode::CREATED, Json(stored)))
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", operation_id = "delete_key",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 400, description = "The id is not a number."), (status = 403), (status = 404)))]
pub async fn delete_key(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.person()?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("key id {id:?} is not a number")))?;
    let key = st.store.key(id).await?;
    caller.actor.can_manage_keys(key.person_id)?;
    st.store
        .delete_key(&caller.label(), crate::now(), &key)
        .await?;
    st.changed();
    Ok(StatusCode::NO_CONTENT)
}

//! Persons and their keys under `/api/v1/persons` and `/api/v1/keys`: writes through
//! `crate::ops::persons` and `crate::ops::keys`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use slicelab_model::objects::Page;
use slicelab_model::{Key, KeyCreate, Person, PersonCreate, PersonUpdate, Role};

use crate::api::{paging, path_id};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::ops::{self, persons::visible};
use crate::queries::{self, PersonFilter};
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

#[utoipa::path(get, path = "/api/v1/persons", tag = "persons", operation_id = "list_persons",
    params(PersonQuery),
    responses((status = 200, body = Page<Person>), (status = 404, description = "No such site."), (status = 422)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PersonQuery>,
) -> ApiResult<Json<Page<Person>>> {
    caller.person()?;
    let p = paging(q.limit, q.offset)?;
    let site_id = match &q.site {
        Some(s) => Some(queries::site(&st, s).await?.id),
        None => None,
    };
    let f = PersonFilter {
        site_id,
        role: q.role,
        email: q.email,
        visible_to: None,
    };
    let (items, total) = queries::persons(&st, &caller.actor, f, p).await?;
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
    let person = ops::persons::create(&st, &caller.actor, &c).await?;
    Ok((StatusCode::CREATED, Json(person)))
}

#[utoipa::path(get, path = "/api/v1/persons/{person}", tag = "persons", operation_id = "show_person",
    params(("person" = String, Path, description = "id or email")), responses((status = 200, body = Person), (status = 403), (status = 404)))]
pub async fn show(
    State(st): State<AppState>,
    caller: Caller,
    Path(person): Path<String>,
) -> ApiResult<Json<Person>> {
    caller.person()?;
    Ok(Json(visible(&st, &caller.actor, &person).await?.person))
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
    caller.person()?;
    Ok(Json(
        ops::persons::update(&st, &caller.actor, &person, &u).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/persons/{person}", tag = "persons", operation_id = "delete_person",
    params(("person" = String, Path, description = "id or email")), responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    Path(person): Path<String>,
) -> ApiResult<StatusCode> {
    caller.person()?;
    ops::persons::remove(&st, &caller.actor, &person).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/persons/{person}/keys", tag = "keys", operation_id = "list_keys",
    params(("person" = String, Path, description = "id or email")), responses((status = 200, body = Vec<Key>), (status = 403), (status = 404)))]
pub async fn list_keys(
    State(st): State<AppState>,
    caller: Caller,
    Path(person): Path<String>,
) -> ApiResult<Json<Vec<Key>>> {
    caller.person()?;
    let rec = visible(&st, &caller.actor, &person).await?;
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
    caller.person()?;
    let key = ops::keys::add(&st, &caller.actor, &person, &k.key).await?;
    Ok((StatusCode::CREATED, Json(key)))
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
    let id = path_id("key", &id)?;
    ops::keys::remove(&st, &caller.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

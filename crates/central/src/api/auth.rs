//! Login, logout and API tokens under `/api/v1/auth` and `/api/v1/tokens`: through
//! `crate::ops::session` and `crate::ops::tokens`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use slicelab_model::{ApiToken, LoginRequest, LoginResponse, NewApiToken, Person, TokenCreate};

use crate::api::path_id;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::ops;
use crate::state::AppState;

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", operation_id = "login",
    request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginResponse),
        (status = 401, description = "Wrong email or password, or the person is disabled.")))]
pub async fn login(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let r = ops::session::login(&st, &req.email, &req.password, "login").await?;
    Ok(Json(r))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", operation_id = "logout",
    responses((status = 204, description = "The token used is revoked.")))]
pub async fn logout(State(st): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    caller.person()?;
    if let Some(id) = caller.token_id {
        ops::session::logout(&st, &caller.actor, id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/auth/whoami", tag = "auth", operation_id = "whoami",
    responses((status = 200, body = Person)))]
pub async fn whoami(caller: Caller) -> ApiResult<Json<Person>> {
    Ok(Json(caller.person()?.person.clone()))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "auth", operation_id = "list_tokens",
    responses((status = 200, body = Vec<ApiToken>)))]
pub async fn list_tokens(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ApiToken>>> {
    caller.person()?;
    Ok(Json(ops::tokens::list(&st, &caller.actor).await?))
}

/// An API token for scripts; the secret is shown once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "auth", operation_id = "create_token",
    request_body = TokenCreate, responses((status = 201, body = NewApiToken)))]
pub async fn create_token(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(t): ApiJson<TokenCreate>,
) -> ApiResult<(StatusCode, Json<NewApiToken>)> {
    caller.person()?;
    let t = ops::tokens::create(&st, &caller.actor, &t).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "auth", operation_id = "delete_token",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 400, description = "The id is not a number."), (status = 404)))]
pub async fn delete_token(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.person()?;
    let id = path_id("token", &id)?;
    ops::tokens::delete(&st, &caller.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

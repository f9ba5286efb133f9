use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use slicelab_model::time::DAY;
use slicelab_model::{
    names, ApiToken, LoginRequest, LoginResponse, NewApiToken, Person, TokenCreate,
};
use slicelab_store::{StoreError, TokenKind};

use crate::auth::{new_secret, secret_hash, verify_password, Caller, PERSON_TOKEN_PREFIX};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// How long a login lasts.
pub const SESSION_LIFETIME: i64 = 7 * DAY;

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", operation_id = "login",
    request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginResponse),
        (status = 401, description = "Wrong email or password, or the person is disabled.")))]
pub async fn login(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let rec = match st.store.person(&req.email).await {
        Ok(r) => Some(r),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let hash = rec
        .as_ref()
        .filter(|r| r.person.enabled)
        .and_then(|r| r.password_hash.clone());
    let ok = verify_password(req.password, hash).await;
    let (Some(rec), true) = (rec, ok) else {
        return Err(ApiError::unauthorized("wrong email or password"));
    };
    let token = new_secret(PERSON_TOKEN_PREFIX);
    let now = crate::now();
    let expires = now + SESSION_LIFETIME;
    st.store
        .create_token(
            &format!("person:{}", rec.person.email),
            now,
            &rec,
            TokenKind::Session,
            "login",
            &secret_hash(&token),
            expires,
        )
        .await?;
    Ok(Json(LoginResponse {
        token,
        expires,
        person: rec.person,
    }))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", operation_id = "logout",
    responses((status = 204, description = "The token used is revoked.")))]
pub async fn logout(State(st): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let me = caller.person()?;
    if let Some(id) = caller.token_id {
        st.store
            .delete_token(&caller.label(), crate::now(), me, id)
            .await?;
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
    let me = caller.person()?;
    Ok(Json(st.store.list_tokens(me.person.id).await?))
}

/// An API token for scripts; the secret is shown once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "auth", operation_id = "create_token",
    request_body = TokenCreate, responses((status = 201, body = NewApiToken)))]
pub async fn create_token(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(t): ApiJson<TokenCreate>,
) -> ApiResult<(StatusCode, Json<NewApiToken>)> {
    let me = caller.person()?;
    names::required_text("name", &t.name, 64)?;
    let days = t.days.unwrap_or(365);
    if !(1..=3650).contains(&days) {
        return Err(ApiError::invalid(
            "days",
            format!("{days} is outside 1..=3650"),
        ));
    }
    let token = new_secret(PERSON_TOKEN_PREFIX);
    let now = crate::now();
    let info = st
        .store
        .create_token(
            &caller.label(),
            now,
            me,
            TokenKind::Api,
            &t.name,
            &secret_hash(&token),
            now + days * DAY,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(NewApiToken { token, info })))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "auth", operation_id = "delete_token",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 400, description = "The id is not a number."), (status = 404)))]
pub async fn delete_token(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let me = caller.person()?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("token id {id:?} is not a number")))?;
    st.store
        .delete_token(&caller.label(), crate::now(), me, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

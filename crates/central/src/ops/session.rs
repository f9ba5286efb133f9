//! Logging in and out, and who a presented secret belongs to. The API's bearer tokens and the
//! web's session cookie hold the same kind of session token; only its SHA-256 is stored.

use slicelab_model::time::DAY;
use slicelab_model::{Actor, LoginResponse, Node, Person};
use slicelab_store::{PersonRecord, StoreError, TokenKind};

use crate::auth::{new_secret, secret_hash, verify_password, PERSON_TOKEN_PREFIX};
use crate::ops::{tokens, OpError, OpResult};
use crate::state::AppState;

/// How long a login lasts.
pub const SESSION_LIFETIME: i64 = 7 * DAY;

/// A logged-in person, as a presented session or API token says.
#[derive(Debug, Clone)]
pub struct Session {
    pub actor: Actor,
    pub person: Person,
    /// The token presented (to revoke at logout).
    pub token_id: i64,
}

/// The actor of a person's record: what the policy decides on.
pub(crate) fn actor_of(rec: &PersonRecord) -> Actor {
    Actor::Person {
        id: rec.person.id,
        email: rec.person.email.clone(),
        roles: rec.person.roles.clone(),
        site_ids: rec.site_ids.clone(),
    }
}

/// The person a token belongs to and the token's id; `None` for unknown or expired tokens.
pub(crate) async fn person_token(
    st: &AppState,
    secret: &str,
) -> OpResult<Option<(PersonRecord, i64)>> {
    let subject = st
        .store
        .lookup_token(&secret_hash(secret), crate::now())
        .await?;
    Ok(subject.map(|s| (s.person, s.token_id)))
}

/// The node a node key belongs to; `None` for unknown keys. Found keys are cached for a short
/// while (`crate::nodekeys`: dropped by any wake-up naming the node, on every replica).
pub(crate) async fn node_key(st: &AppState, secret: &str) -> OpResult<Option<Node>> {
    let hash = secret_hash(secret);
    let now = crate::now();
    if let Some(node) = st.node_keys.get(&hash, now) {
        return Ok(Some(node));
    }
    let epoch = st.node_keys.epoch();
    let node = st.store.node_by_key_hash(&hash).await?;
    if let Some(n) = &node {
        st.node_keys.insert(hash, n.clone(), now, epoch);
    }
    Ok(node)
}

/// Who presents the person token `secret`: `None` unless it is a live person token.
pub async fn authenticate(st: &AppState, secret: &str) -> OpResult<Option<Session>> {
    if !secret.starts_with(PERSON_TOKEN_PREFIX) {
        return Ok(None);
    }
    Ok(person_token(st, secret)
        .await?
        .map(|(rec, token_id)| Session {
            actor: actor_of(&rec),
            person: rec.person,
            token_id,
        }))
}

/// Checks the password of an enabled person and issues a session token named `token_name`.
/// Unknown emails, disabled persons and wrong passwords all take as long and say the same.
pub async fn login(
    st: &AppState,
    email: &str,
    password: &str,
    token_name: &str,
) -> OpResult<LoginResponse> {
    let rec = match st.store.person(email).await {
        Ok(r) => Some(r),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let hash = rec
        .as_ref()
        .filter(|r| r.person.enabled)
        .and_then(|r| r.password_hash.clone());
    let ok = verify_password(password.to_string(), hash).await;
    let (Some(rec), true) = (rec, ok) else {
        return Err(OpError::Unauthorized("wrong email or password".into()));
    };
    let token = new_secret(PERSON_TOKEN_PREFIX);
    let now = crate::now();
    let expires = now + SESSION_LIFETIME;
    st.store
        .create_token(
            &actor_of(&rec).label(),
            now,
            &rec,
            TokenKind::Session,
            token_name,
            &secret_hash(&token),
            expires,
        )
        .await?;
    Ok(LoginResponse {
        token,
        expires,
        person: rec.person,
    })
}

/// Revokes the session token `token_id` of the acting person.
pub async fn logout(st: &AppState, actor: &Actor, token_id: i64) -> OpResult<()> {
    tokens::delete(st, actor, token_id).await
}

//! Authentication: argon2 passwords, random bearer secrets (session and API tokens, node keys).
//!
//! Secrets carry a prefix saying what they are (`slt_` person tokens, `sln_` node keys), so a
//! lookup needs one indexed query. Only their SHA-256 is stored: a stolen database holds no
//! usable credential.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use slicelab_model::Actor;
use slicelab_store::PersonRecord;

use crate::error::ApiError;
use crate::state::AppState;

pub const PERSON_TOKEN_PREFIX: &str = "slt_";
pub const NODE_KEY_PREFIX: &str = "sln_";

pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Hashes a password on a blocking thread: argon2 is deliberately slow.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(format!("cannot hash password: {e}")))
    })
    .await
    .map_err(|e| ApiError::internal(format!("hashing task failed: {e}")))?
}

pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        // Without a stored hash (unknown person, no password) still spend the same time, so
        // timing does not tell which emails exist.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            Argon2::default()
                .hash_password(b"no such person", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        });
        let stored = hash.as_deref().unwrap_or(dummy);
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && hash.is_some()
    })
    .await
    .unwrap_or(false)
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    /// For persons: their record, and the token used (for logout).
    pub person: Option<PersonRecord>,
    pub token_id: Option<i64>,
    /// For node managers: their node as the key lookup found it (saves fetching it again).
    pub node: Option<slicelab_model::Node>,
}

impl Caller {
    pub fn label(&self) -> String {
        self.actor.label()
    }

    /// The node behind this request (node key); 401 without credentials, 403 with a person's.
    pub fn node_or_403(&self) -> Result<&slicelab_model::Node, ApiError> {
        self.actor.as_node()?;
        self.node
            .as_ref()
            .ok_or_else(|| ApiError::forbidden("this endpoint is for node managers (node key)"))
    }

    /// The person behind this request, or 401.
    pub fn person(&self) -> Result<&PersonRecord, ApiError> {
        self.person
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("log in first (Authorization: Bearer <token>)"))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(h) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Caller {
                actor: Actor::Anonymous,
                person: None,
                token_id: None,
                node: None,
            });
        };
        let secret = h
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("Authorization header must be 'Bearer <token>'")
            })?;
        let now = crate::now();
        if secret.starts_with(NODE_KEY_PREFIX) {
            let node = state
                .store
                .node_by_key_hash(&secret_hash(secret))
                .await?
                .ok_or_else(|| ApiError::unauthorized("unknown node key"))?;
            return Ok(Caller {
                actor: Actor::Node {
                    id: node.id,
                    hostname: node.hostname.clone(),
                },
                person: None,
                token_id: None,
                node: Some(node),
            });
        }
        let subject = state
            .store
            .lookup_token(&secret_hash(secret), now)
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid or expired token; log in again"))?;
        let p = &subject.person;
        Ok(Caller {
            actor: Actor::Person {
                id: p.person.id,
                email: p.person.email.clone(),
                roles: p.person.roles.clone(),
                site_ids: p.site_ids.clone(),
            },
            person: Some(subject.person),
            token_id: Some(subject.token_id),
            node: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = new_secret(PERSON_TOKEN_PREFIX);
        let b = new_secret(PERSON_TOKEN_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("slt_") && a.len() == 4 + 64);
        assert_eq!(secret_hash(&a), secret_hash(&a));
        assert_ne!(secret_hash(&a), secret_hash(&b));
    }

    #[tokio::test]
    async fn passwords_verify_only_when_right() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(verify_password("correct horse".into(), Some(h.clone())).await);
        assert!(!verify_password("wrong horse".into(), Some(h)).await);
        assert!(!verify_password("anything".into(), None).await);
    }
}

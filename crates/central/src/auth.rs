//! Authentication: argon2 passwords, random bearer secrets (session and API tokens, node keys),
//! and the API's `Caller` extractor (who sent a request, by its bearer secret).
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
use crate::ops::{session, OpError};
use crate::state::AppState;

pub(crate) const PERSON_TOKEN_PREFIX: &str = "slt_";
pub(crate) const NODE_KEY_PREFIX: &str = "sln_";

/// A random 256-bit secret, hex, after `prefix` (also the web's login-form token, with "").
pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

pub(crate) fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Hashes a password on a blocking thread: argon2 is deliberately slow.
pub(crate) async fn hash_password(password: String) -> Result<String, OpError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| OpError::Internal(format!("cannot hash password: {e}")))
    })
    .await
    .map_err(|e| OpError::Internal(format!("hashing task failed: {e}")))?
}

pub(crate) async fn verify_password(password: String, hash: Option<String>) -> bool {
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
pub(crate) struct Caller {
    pub actor: Actor,
    /// For persons: their record, and the token used (for logout).
    pub person: Option<PersonRecord>,
    pub token_id: Option<i64>,
    /// For node managers: their node as the key lookup found it (saves fetching it again).
    pub node: Option<slicelab_model::Node>,
}

impl Caller {
    /// The node behind this request (node key), or 403.
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
        if secret.starts_with(NODE_KEY_PREFIX) {
            let node = session::node_key(state, secret)
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
        let (person, token_id) = session::person_token(state, secret)
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid or expired token; log in again"))?;
        Ok(Caller {
            actor: session::actor_of(&person),
            person: Some(person),
            token_id: Some(token_id),
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

//! Session tokens, API tokens and their lookup. Only SHA-256 hashes of secrets are stored.

use serde_json::json;
use slicelab_model::ApiToken;

use crate::events::NewEvent;
use crate::persons::PersonRecord;
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// From `login`; short-lived.
    Session,
    /// For scripts; long-lived, named, listed and revocable.
    Api,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Api => "api",
        }
    }
}

/// Who a presented token belongs to.
#[derive(Debug, Clone)]
pub struct AuthSubject {
    pub token_id: i64,
    pub person: PersonRecord,
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn create_token(
        &self,
        actor: &str,
        now: i64,
        person: &PersonRecord,
        kind: TokenKind,
        name: &str,
        hash: &str,
        expires: i64,
    ) -> Result<ApiToken> {
        let mut w = self.write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tokens (person_id, token_hash, kind, name, created, expires) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(person.person.id)
        .bind(hash)
        .bind(kind.as_str())
        .bind(name)
        .bind(now)
        .bind(expires)
        .fetch_one(&mut *w.tx)
        .await?;
        // Expired sessions are swept as new ones are made, so the table stays small.
        sqlx::query("DELETE FROM tokens WHERE expires <= $1")
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        let action = match kind {
            TokenKind::Session => "person.login",
            TokenKind::Api => "token.create",
        };
        w.event(
            now,
            NewEvent {
                actor,
                action,
                object_type: "person",
                object_id: person.person.id,
                object_name: &person.person.email,
                site_id: person.site_ids.first().copied(),
                detail: json!({"token_id": id, "name": name, "expires": expires}),
            },
        )
        .await?;
        w.commit().await?;
        Ok(ApiToken {
            id,
            name: name.to_string(),
            kind: kind.as_str().to_string(),
            created: now,
            expires,
        })
    }

    /// The person a live token belongs to, if any; disabled persons have none.
    pub async fn lookup_token(&self, hash: &str, now: i64) -> Result<Option<AuthSubject>> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT t.id, t.person_id FROM tokens t JOIN persons p ON p.id = t.person_id \
             WHERE t.token_hash = $1 AND t.expires > $2 AND p.enabled = 1",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some((token_id, person_id)) = row else {
            return Ok(None);
        };
        match self.person(&person_id.to_string()).await {
            Ok(person) => Ok(Some(AuthSubject { token_id, person })),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn list_tokens(&self, person_id: i64) -> Result<Vec<ApiToken>> {
        let rows: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, name, kind, created, expires FROM tokens WHERE person_id = $1 AND kind = 'api' ORDER BY id",
        )
        .bind(person_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, kind, created, expires)| ApiToken {
                id,
                name,
                kind,
                created,
                expires,
            })
            .collect())
    }

    /// Deletes token `id` of `person`; `NotFound` if it is not theirs.
    pub async fn delete_token(
        &self,
        actor: &str,
        now: i64,
        person: &PersonRecord,
        id: i64,
    ) -> Result<()> {
        let mut w = self.write().await?;
        let r = sqlx::query("DELETE FROM tokens WHERE id = $1 AND person_id = $2")
            .bind(id)
            .bind(person.person.id)
            .execute(&mut *w.tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("token {id}")));
        }
        w.event(
            now,
            NewEvent {
                actor,
                action: "token.delete",
                object_type: "person",
                object_id: person.person.id,
                object_name: &person.person.email,
                site_id: person.site_ids.first().copied(),
                detail: json!({"token_id": id}),
            },
        )
        .await?;
        w.commit().await
    }
}

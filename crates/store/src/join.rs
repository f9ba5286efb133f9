//! Join tokens: single-use and expiring, each for one node; a new machine exchanges one for
//! the node's key (`slicelab node join`). Only hashes are stored. Redeeming marks the token used
//! and sets the node's key in one transaction, so a token works once even with several
//! centrals racing.

use serde_json::json;
use slicelab_model::Node;

use crate::events::NewEvent;
use crate::{Result, Store};

/// What redeeming a join token came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Redeemed {
    /// The node now has the new key.
    Joined(Node),
    /// No such token.
    Unknown,
    /// Used already, at this time.
    Used(i64),
    /// Expired at this time.
    Expired(i64),
}

impl Store {
    /// Records a join token for `node`, valid until `expires`.
    pub async fn create_join_token(
        &self,
        actor: &str,
        now: i64,
        node: &Node,
        token_hash: &str,
        expires: i64,
    ) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO join_tokens (node_id, token_hash, created, expires) VALUES ($1, $2, $3, $4)",
        )
        .bind(node.id)
        .bind(token_hash)
        .bind(now)
        .bind(expires)
        .execute(&mut *w.tx)
        .await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "node.join_token",
                object_type: "node",
                object_id: node.id,
                object_name: &node.hostname,
                site_id: Some(node.site_id),
                detail: json!({ "expires": expires }),
            },
        )
        .await?;
        w.commit().await
    }

    /// Exchanges the token with hash `token_hash` for the node key with hash `key_hash`.
    pub async fn redeem_join_token(
        &self,
        now: i64,
        token_hash: &str,
        key_hash: &str,
    ) -> Result<Redeemed> {
        let mut w = self.write().await?;
        // Claims the token only if unused and unexpired: one statement, so two redeemers
        // cannot both succeed.
        let claimed: Option<i64> = sqlx::query_scalar(
            "UPDATE join_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires > $1 RETURNING node_id",
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(node_id) = claimed else {
            let row: Option<(Option<i64>, i64)> =
                sqlx::query_as("SELECT used_at, expires FROM join_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(&mut *w.tx)
                    .await?;
            return Ok(match row {
                None => Redeemed::Unknown,
                Some((Some(used), _)) => Redeemed::Used(used),
                Some((None, expires)) => Redeemed::Expired(expires),
            });
        };
        // A new key means a new node manager whose batch counters start again at 1.
        sqlx::query(
            "UPDATE nodes SET key_hash = $1, report_seq = 0, usage_seq = 0, flow_seq = 0 WHERE id = $2",
        )
        .bind(key_hash)
        .bind(node_id)
        .execute(&mut *w.tx)
        .await?;
        let (hostname, site_id): (String, i64) =
            sqlx::query_as("SELECT hostname, site_id FROM nodes WHERE id = $1")
                .bind(node_id)
                .fetch_one(&mut *w.tx)
                .await?;
        w.event(
            now,
            NewEvent {
                actor: &format!("node:{hostname}"),
                action: "node.join",
                object_type: "node",
                object_id: node_id,
                object_name: &hostname,
                site_id: Some(site_id),
                detail: json!({}),
            },
        )
        .await?;
        w.commit().await?;
        Ok(Redeemed::Joined(self.node(&node_id.to_string()).await?))
    }
}

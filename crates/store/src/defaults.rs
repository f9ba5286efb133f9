//! The default allocation (`model::defaults`): platform-wide values (stored with node id 0) and
//! per-node overrides, each set or removed in one transaction with its event.

use serde_json::json;
use slicelab_model::defaults::{DefaultTag, Defaults};
use slicelab_model::{Node, TagName};

use crate::events::NewEvent;
use crate::{Result, Store, StoreError};

/// The node id under which platform defaults are stored.
const PLATFORM: i64 = 0;

impl Store {
    /// Every default: platform-wide and each node's overrides (by hostname), sorted.
    pub async fn defaults(&self) -> Result<Defaults> {
        let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT d.node_id, d.name, d.value, n.hostname FROM default_tags d \
             LEFT JOIN nodes n ON n.id = d.node_id ORDER BY n.hostname, d.name",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out = Defaults {
            platform: vec![],
            nodes: vec![],
        };
        for (node_id, name, value, host) in rows {
            let tag = DefaultTag {
                name,
                value,
                node: host.clone(),
            };
            match (node_id, host) {
                (PLATFORM, _) => out.platform.push(tag),
                (_, Some(_)) => out.nodes.push(tag),
                // An override of a node deleted since: not in force.
                (_, None) => {}
            }
        }
        Ok(out)
    }

    /// (tag, value) pairs in force for `node_id`: the platform's, then the node's overrides.
    pub(crate) async fn defaults_for(
        &self,
        node_id: i64,
    ) -> Result<(Vec<(TagName, String)>, Vec<(TagName, String)>)> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT node_id, name, value FROM default_tags WHERE node_id = $1 OR node_id = $2",
        )
        .bind(PLATFORM)
        .bind(node_id)
        .fetch_all(self.pool())
        .await?;
        let (mut platform, mut node) = (vec![], vec![]);
        for (id, name, value) in rows {
            let Ok(tag) = TagName::parse(&name) else {
                continue;
            };
            if id == PLATFORM {
                platform.push((tag, value));
            } else {
                node.push((tag, value));
            }
        }
        Ok((platform, node))
    }

    /// Sets a platform default (`node` None) or a node's override; `value` is validated.
    pub async fn set_default(
        &self,
        actor: &str,
        now: i64,
        tag: TagName,
        value: &str,
        node: Option<&Node>,
    ) -> Result<DefaultTag> {
        let node_id = node.map_or(PLATFORM, |n| n.id);
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM default_tags WHERE node_id = $1 AND name = $2")
            .bind(node_id)
            .bind(tag.as_str())
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("INSERT INTO default_tags (node_id, name, value) VALUES ($1, $2, $3)")
            .bind(node_id)
            .bind(tag.as_str())
            .bind(value)
            .execute(&mut *w.tx)
            .await?;
        w.default_event(
            now,
            actor,
            "default.set",
            node,
            json!({"tag": tag, "value": value}),
        )
        .await?;
        w.commit().await?;
        Ok(DefaultTag {
            name: tag.as_str().into(),
            value: value.into(),
            node: node.map(|n| n.hostname.clone()),
        })
    }

    /// Removes a platform default or a node's override.
    pub async fn delete_default(
        &self,
        actor: &str,
        now: i64,
        tag: TagName,
        node: Option<&Node>,
    ) -> Result<()> {
        let node_id = node.map_or(PLATFORM, |n| n.id);
        let mut w = self.write().await?;
        let gone = sqlx::query("DELETE FROM default_tags WHERE node_id = $1 AND name = $2")
            .bind(node_id)
            .bind(tag.as_str())
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(StoreError::NotFound(match node {
                Some(n) => format!("default {tag} of node {}", n.hostname),
                None => format!("platform default {tag}"),
            }));
        }
        w.default_event(now, actor, "default.delete", node, json!({"tag": tag}))
            .await?;
        w.commit().await
    }
}

impl crate::WriteTx<'_> {
    async fn default_event(
        &mut self,
        now: i64,
        actor: &str,
        action: &str,
        node: Option<&Node>,
        detail: serde_json::Value,
    ) -> Result<()> {
        let (object_type, id, name, site) = match node {
            Some(n) => ("node", n.id, n.hostname.as_str(), Some(n.site_id)),
            None => ("platform", 0, "defaults", None),
        };
        self.event(
            now,
            NewEvent {
                actor,
                action,
                object_type,
                object_id: id,
                object_name: name,
                site_id: site,
                detail,
            },
        )
        .await
    }
}

//! Nodes: create, look up (by id, hostname or node-key hash), list, update, re-key, delete; the
//! liveness bookkeeping (`touch_node`, `sweep_down_nodes`) central's upkeep runs.

use std::collections::HashMap;

use serde_json::json;
use slicelab_model::{BootState, Node, NodeCreate, NodeUpdate};

use crate::events::NewEvent;
use crate::rows::{NodeRow, NODE_COLS};
use crate::{conflict_or, Arg, Filter, Paging, Result, Store, StoreError, WriteTx};

#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    pub site_id: Option<i64>,
    pub boot_state: Option<BootState>,
    pub region: Option<String>,
}

const NODE_FROM: &str = "FROM nodes n JOIN sites s ON s.id = n.site_id";

impl Store {
    pub async fn create_node(
        &self,
        actor: &str,
        now: i64,
        c: &NodeCreate,
        site_id: i64,
        key_hash: &str,
    ) -> Result<Node> {
        let mut w = self.write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO nodes (hostname, site_id, boot_state, cpu_cores, mem_mb, disk_gb, region, key_hash, created, reservable) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(&c.hostname)
        .bind(site_id)
        .bind(c.boot_state.as_str())
        .bind(c.cpu_cores)
        .bind(c.mem_mb)
        .bind(c.disk_gb)
        .bind(&c.region)
        .bind(key_hash)
        .bind(now)
        .bind(i64::from(c.reservable))
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| conflict_or(e, &format!("a node with hostname {:?} already exists", c.hostname), ""))?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "node.create",
                object_type: "node",
                object_id: id,
                object_name: &c.hostname,
                site_id: Some(site_id),
                detail: json!(c),
            },
        )
        .await?;
        w.commit().await?;
        self.node(&id.to_string()).await
    }

    /// A node by id or hostname.
    /// Nodes by id or hostname, many at once (a few queries for 10,000 names): (id, hostname)
    /// for each name, in order; `None` for a name no node has.
    pub async fn nodes_named(&self, names: &[String]) -> Result<Vec<Option<(i64, String)>>> {
        let (ids, hosts): (Vec<&String>, Vec<&String>) =
            names.iter().partition(|n| crate::rows::as_id(n).is_some());
        let mut by_id: HashMap<i64, String> = HashMap::new();
        let mut by_host: HashMap<String, i64> = HashMap::new();
        for (col, keys) in [("id", &ids), ("hostname", &hosts)] {
            for chunk in keys.chunks(500) {
                let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT id, hostname FROM nodes WHERE {col} IN ({})",
                    list.join(", ")
                );
                let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
                for k in chunk {
                    q = match crate::rows::as_id(k) {
                        Some(id) if col == "id" => q.bind(id),
                        _ => q.bind(k.to_string()),
                    };
                }
                for (id, host) in q.fetch_all(self.pool()).await? {
                    by_host.insert(host.clone(), id);
                    by_id.insert(id, host);
                }
            }
        }
        Ok(names
            .iter()
            .map(|n| match crate::rows::as_id(n) {
                Some(id) => by_id.get(&id).map(|h| (id, h.clone())),
                None => by_host.get(n.as_str()).map(|id| (*id, n.clone())),
            })
            .collect())
    }

    /// The peer authority of each of `ids` that belongs to one (a few queries for 10,000 ids);
    /// our own nodes, and ids no node has, are absent.
    pub async fn node_authorities(&self, ids: &[i64]) -> Result<HashMap<i64, String>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT n.id, s.login_base {NODE_FROM} \
                 WHERE s.peer_id IS NOT NULL AND n.id IN ({})",
                list.join(", ")
            );
            let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            out.extend(q.fetch_all(self.pool()).await?);
        }
        Ok(out)
    }

    pub async fn node(&self, key: &str) -> Result<Node> {
        self.by_id_or_name::<NodeRow>(
            &format!("SELECT {NODE_COLS} {NODE_FROM}"),
            "n.id",
            "n.hostname",
            key,
        )
        .await?
        .map(Into::into)
        .ok_or_else(|| StoreError::NotFound(format!("node {key:?}")))
    }

    pub async fn node_by_key_hash(&self, hash: &str) -> Result<Option<Node>> {
        Ok(sqlx::query_as::<_, NodeRow>(&format!(
            "SELECT {NODE_COLS} {NODE_FROM} WHERE n.key_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(self.pool())
        .await?
        .map(Into::into))
    }

    pub async fn list_nodes(&self, f: &NodeFilter, page: Paging) -> Result<(Vec<Node>, i64)> {
        let mut w = Filter::default();
        if let Some(s) = f.site_id {
            w.add("n.site_id = {}", Arg::I(s));
        }
        if let Some(b) = f.boot_state {
            w.add("n.boot_state = {}", Arg::S(b.as_str().into()));
        }
        if let Some(r) = &f.region {
            w.add("n.region = {}", Arg::S(r.clone()));
        }
        let where_sql = w.where_sql();
        let total = w
            .bind_scalar(sqlx::query_scalar(&format!(
                "SELECT COUNT(*) {NODE_FROM} {where_sql}"
            )))
            .fetch_one(self.pool())
            .await?;
        let sql = format!(
            "SELECT {NODE_COLS} {NODE_FROM} {where_sql} ORDER BY n.hostname LIMIT {} OFFSET {}",
            page.limit, page.offset
        );
        let rows: Vec<NodeRow> = w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        Ok((rows.into_iter().map(Into::into).collect(), total))
    }

    pub async fn update_node(
        &self,
        actor: &str,
        now: i64,
        n: &Node,
        u: &NodeUpdate,
    ) -> Result<Node> {
        let mut w = self.write().await?;
        sqlx::query(
            "UPDATE nodes SET boot_state = $1, cpu_cores = $2, mem_mb = $3, disk_gb = $4, region = $5, reservable = $6, \
             bwlimit = $7 WHERE id = $8",
        )
        .bind(u.boot_state.unwrap_or(n.boot_state).as_str())
        .bind(u.cpu_cores.unwrap_or(n.cpu_cores))
        .bind(u.mem_mb.unwrap_or(n.mem_mb))
        .bind(u.disk_gb.unwrap_or(n.disk_gb))
        .bind(u.region.as_deref().unwrap_or(&n.region))
        .bind(i64::from(u.reservable.unwrap_or(n.reservable)))
        .bind(
            u.bwlimit
                .unwrap_or(n.bwlimit)
                .map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
        )
        .bind(n.id)
        .execute(&mut *w.tx)
        .await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "node.update",
                object_type: "node",
                object_id: n.id,
                object_name: &n.hostname,
                site_id: Some(n.site_id),
                detail: json!(u),
            },
        )
        .await?;
        w.commit().await?;
        self.node(&n.id.to_string()).await
    }

    pub async fn set_node_key(
        &self,
        actor: &str,
        now: i64,
        n: &Node,
        key_hash: &str,
    ) -> Result<()> {
        let mut w = self.write().await?;
        // A new key means a new (or reinstalled) node manager whose batch counters start again at 1.
        sqlx::query(
            "UPDATE nodes SET key_hash = $1, report_seq = 0, usage_seq = 0, flow_seq = 0 WHERE id = $2",
        )
            .bind(key_hash)
            .bind(n.id)
            .execute(&mut *w.tx)
            .await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "node.rekey",
                object_type: "node",
                object_id: n.id,
                object_name: &n.hostname,
                site_id: Some(n.site_id),
                detail: json!({}),
            },
        )
        .await?;
        w.commit().await
    }

    pub async fn delete_node(&self, actor: &str, now: i64, n: &Node) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(n.id)
            .execute(&mut *w.tx)
            .await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "node.delete",
                object_type: "node",
                object_id: n.id,
                object_name: &n.hostname,
                site_id: Some(n.site_id),
                detail: json!({}),
            },
        )
        .await?;
        w.commit().await
    }

    /// Records that the node manager talked to central (not an event: it happens every poll).
    pub async fn touch_node(&self, node: &Node, now: i64) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE nodes SET last_contact = $1 WHERE id = $2")
            .bind(now)
            .bind(node.id)
            .execute(&mut *w.tx)
            .await?;
        w.mark_up(node, now).await?;
        w.commit().await
    }

    /// Marks `down` (with an event) every `up` node silent since before `now - window`; returns
    /// their hostnames. Safe to run on several central replicas at once: each node flips once.
    pub async fn sweep_down_nodes(&self, now: i64, window: i64) -> Result<Vec<String>> {
        let stale: Vec<(i64, String, i64, Option<i64>)> = sqlx::query_as(
            // A peer's nodes are judged by their authority (model::peer), not by their silence here.
            "SELECT id, hostname, site_id, last_contact FROM nodes \
             WHERE status = 'up' AND (last_contact IS NULL OR last_contact < $1) \
             AND site_id NOT IN (SELECT id FROM sites WHERE peer_id IS NOT NULL)",
        )
        .bind(now - window)
        .fetch_all(self.pool())
        .await?;
        let mut down = Vec::new();
        for (id, hostname, site_id, last) in stale {
            let mut w = self.write().await?;
            let r = sqlx::query(
                "UPDATE nodes SET status = 'down' WHERE id = $1 AND status = 'up' \
                 AND (last_contact IS NULL OR last_contact < $2)",
            )
            .bind(id)
            .bind(now - window)
            .execute(&mut *w.tx)
            .await?;
            if r.rows_affected() == 1 {
                w.event(
                    now,
                    NewEvent {
                        actor: "system",
                        action: "node.down",
                        object_type: "node",
                        object_id: id,
                        object_name: &hostname,
                        site_id: Some(site_id),
                        detail: json!({"last_contact": last}),
                    },
                )
                .await?;
                down.push(hostname);
            }
            w.commit().await?;
        }
        Ok(down)
    }
}

impl WriteTx<'_> {
    /// A node that talks to central is `up`; the change from `new` or `down` is an event.
    pub(crate) async fn mark_up(&mut self, node: &Node, now: i64) -> Result<()> {
        let r = sqlx::query("UPDATE nodes SET status = 'up' WHERE id = $1 AND status <> 'up'")
            .bind(node.id)
            .execute(&mut *self.tx)
            .await?;
        if r.rows_affected() == 1 {
            self.event(
                now,
                NewEvent {
                    actor: &format!("node:{}", node.hostname),
                    action: "node.up",
                    object_type: "node",
                    object_id: node.id,
                    object_name: &node.hostname,
                    site_id: Some(node.site_id),
                    detail: json!({}),
                },
            )
            .await?;
        }
        Ok(())
    }
}

//! Slices and what hangs off them: their nodes and persons, their tags, and the slivers nodes
//! last reported for them.

use serde_json::json;
use slicelab_model::sliver::Sliver;
use slicelab_model::tags::TagName;
use slicelab_model::{Slice, SliceCreate, SliceTag, SliceUpdate, SliverState};

use crate::events::NewEvent;
use crate::{conflict_or, Arg, Filter, Paging, Result, Store, StoreError, WriteTx};

#[derive(Debug, Clone, Default)]
pub struct SliceFilter {
    pub site_id: Option<i64>,
    pub person_id: Option<i64>,
    pub node_id: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct SliceRow {
    id: i64,
    name: String,
    site: String,
    site_id: i64,
    description: String,
    url: String,
    expires: i64,
    enabled: i64,
    created: i64,
    authority: Option<String>,
}

const SLICE_COLS: &str =
    "sl.id, sl.name, s.login_base AS site, sl.site_id, sl.description, sl.url, \
     sl.expires, sl.enabled, sl.created, \
     CASE WHEN s.peer_id IS NULL THEN NULL ELSE s.login_base END AS authority";
const SLICE_FROM: &str = "FROM slices sl JOIN sites s ON s.id = sl.site_id";

impl WriteTx<'_> {
    async fn slice_event(
        &mut self,
        now: i64,
        actor: &str,
        action: &str,
        slice: &Slice,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.event(
            now,
            NewEvent {
                actor,
                action,
                object_type: "slice",
                object_id: slice.id,
                object_name: &slice.name,
                site_id: Some(slice.site_id),
                detail,
            },
        )
        .await
    }
}

impl Store {
    async fn slice_from_row(&self, r: SliceRow) -> Result<Slice> {
        let nodes: Vec<String> = sqlx::query_scalar(
            "SELECT n.hostname FROM slice_nodes sn JOIN nodes n ON n.id = sn.node_id \
             WHERE sn.slice_id = $1 ORDER BY n.hostname",
        )
        .bind(r.id)
        .fetch_all(self.pool())
        .await?;
        let persons: Vec<String> = sqlx::query_scalar(
            "SELECT p.email FROM slice_persons sp JOIN persons p ON p.id = sp.person_id \
             WHERE sp.slice_id = $1 ORDER BY p.email",
        )
        .bind(r.id)
        .fetch_all(self.pool())
        .await?;
        Ok(Slice {
            id: r.id,
            name: r.name,
            site: r.site,
            site_id: r.site_id,
            description: r.description,
            url: r.url,
            expires: r.expires,
            enabled: r.enabled != 0,
            created: r.created,
            nodes,
            persons,
            authority: r.authority,
        })
    }

    /// Creates a slice, enforcing the site's `max_slices` inside the same transaction.
    pub async fn create_slice(
        &self,
        actor: &str,
        now: i64,
        c: &SliceCreate,
        site_id: i64,
        max_slices: i64,
        expires: i64,
    ) -> Result<Slice> {
        let mut w = self.write().await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM slices WHERE site_id = $1")
            .bind(site_id)
            .fetch_one(&mut *w.tx)
            .await?;
        if count >= max_slices {
            return Err(StoreError::Conflict(format!(
                "the site already has {count} slices, its max_slices is {max_slices}"
            )));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO slices (name, site_id, description, url, expires, enabled, created) \
             VALUES ($1, $2, $3, $4, $5, 1, $6) RETURNING id",
        )
        .bind(&c.name)
        .bind(site_id)
        .bind(&c.description)
        .bind(&c.url)
        .bind(expires)
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| conflict_or(e, &format!("a slice named {:?} already exists", c.name), ""))?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "slice.create",
                object_type: "slice",
                object_id: id,
                object_name: &c.name,
                site_id: Some(site_id),
                detail: json!({"description": c.description, "url": c.url, "expires": expires}),
            },
        )
        .await?;
        w.commit().await?;
        self.slice(&id.to_string()).await
    }

    /// A slice by id or name.
    pub async fn slice(&self, key: &str) -> Result<Slice> {
        let row = self
            .by_id_or_name::<SliceRow>(
                &format!("SELECT {SLICE_COLS} {SLICE_FROM}"),
                "sl.id",
                "sl.name",
                key,
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("slice {key:?}")))?;
        self.slice_from_row(row).await
    }

    pub async fn list_slices(&self, f: &SliceFilter, page: Paging) -> Result<(Vec<Slice>, i64)> {
        let mut w = Filter::default();
        if let Some(s) = f.site_id {
            w.add("sl.site_id = {}", Arg::I(s));
        }
        if let Some(p) = f.person_id {
            w.add(
                "EXISTS (SELECT 1 FROM slice_persons sp WHERE sp.slice_id = sl.id AND sp.person_id = {})",
                Arg::I(p),
            );
        }
        if let Some(n) = f.node_id {
            w.add(
                "EXISTS (SELECT 1 FROM slice_nodes sn WHERE sn.slice_id = sl.id AND sn.node_id = {})",
                Arg::I(n),
            );
        }
        let where_sql = w.where_sql();
        let total = w
            .bind_scalar(sqlx::query_scalar(&format!(
                "SELECT COUNT(*) {SLICE_FROM} {where_sql}"
            )))
            .fetch_one(self.pool())
            .await?;
        let sql = format!(
            "SELECT {SLICE_COLS} {SLICE_FROM} {where_sql} ORDER BY sl.name LIMIT {} OFFSET {}",
            page.limit, page.offset
        );
        let rows: Vec<SliceRow> = w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.slice_from_row(r).await?);
        }
        Ok((out, total))
    }

    pub async fn update_slice(
        &self,
        actor: &str,
        now: i64,
        sl: &Slice,
        u: &SliceUpdate,
    ) -> Result<Slice> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE slices SET description = $1, url = $2, enabled = $3 WHERE id = $4")
            .bind(u.description.as_deref().unwrap_or(&sl.description))
            .bind(u.url.as_deref().unwrap_or(&sl.url))
            .bind(i64::from(u.enabled.unwrap_or(sl.enabled)))
            .bind(sl.id)
            .execute(&mut *w.tx)
            .await?;
        w.slice_event(now, actor, "slice.update", sl, json!(u))
            .await?;
        w.commit().await?;
        self.slice(&sl.id.to_string()).await
    }

    pub async fn renew_slice(
        &self,
        actor: &str,
        now: i64,
        sl: &Slice,
        expires: i64,
    ) -> Result<Slice> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE slices SET expires = $1 WHERE id = $2")
            .bind(expires)
            .bind(sl.id)
            .execute(&mut *w.tx)
            .await?;
        w.slice_event(
            now,
            actor,
            "slice.renew",
            sl,
            json!({"from": sl.expires, "to": expires}),
        )
        .await?;
        w.commit().await?;
        self.slice(&sl.id.to_string()).await
    }

    pub async fn delete_slice(&self, actor: &str, now: i64, sl: &Slice) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM slices WHERE id = $1")
            .bind(sl.id)
            .execute(&mut *w.tx)
            .await?;
        w.slice_event(now, actor, "slice.delete", sl, json!({"nodes": sl.nodes}))
            .await?;
        w.commit().await
    }

    /// Adds nodes (ids with hostnames, for the log); those already in the slice are left as they are.
    pub async fn add_slice_nodes(
        &self,
        actor: &str,
        now: i64,
        sl: &Slice,
        nodes: &[(i64, String)],
    ) -> Result<Slice> {
        let mut w = self.write().await?;
        // The nodes the slice has already, then the others in multi-row inserts (10,000 nodes in
        // one call are 50 statements, not 10,000).
        let had: std::collections::HashSet<i64> =
            sqlx::query_scalar("SELECT node_id FROM slice_nodes WHERE slice_id = $1")
                .bind(sl.id)
                .fetch_all(&mut *w.tx)
                .await?
                .into_iter()
                .collect();
        let mut seen = std::collections::HashSet::new();
        let new: Vec<&(i64, String)> = nodes
            .iter()
            .filter(|(id, _)| !had.contains(id) && seen.insert(*id))
            .collect();
        let mut added = Vec::new();
        for chunk in new.chunks(200) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("($1, ${})", i + 2))
                .collect();
            let sql = format!(
                "INSERT INTO slice_nodes (slice_id, node_id) VALUES {} \
                 ON CONFLICT (slice_id, node_id) DO NOTHING",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(sl.id);
            for (id, _) in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *w.tx).await?;
            added.extend(chunk.iter().map(|(_, h)| h.clone()));
        }
        if !added.is_empty() {
            w.slice_event(now, actor, "slice.add_nodes", sl, json!({"nodes": added}))
                .await?;
        }
        w.commit().await?;
        self.slice(&sl.id.to_string()).await
    }

    pub async fn remove_slice_node(
        &self,
        actor: &str,
        now: i64,
        sl: &Slice,
        node: (i64, &str),
    ) -> Result<Slice> {
        let mut w = self.write().await?;
        let r = sqlx::query("DELETE FROM slice_nodes WHERE slice_id = $1 AND node_id = $2")
            .bind(sl.id)
            .bind(node.0)
            .execute(&mut *w.tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "node {} in slice {}",
                node.1, sl.name
            )));
        }
        w.slice_event(now, actor, "slice.remove_node", sl, json!({"node": node.1}))
            .await?;
        w.commit().await?;
        self.slice(&sl.id.to_string()).await
    }

    pub async fn add_slice_persons(
        &self,
        actor: &str,
        now: i64,
        sl: &Slice,
        persons: &[(i64, String)],
    ) -> Result<Slice> {
        let mut w = self.write().await?;
        let mut added = Vec::new();
        for (id, email) in persons {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM slice_persons WHERE slice_id = $1 AND person_id = $2",
            )
            .bind(sl.id)
            .bind(*id)
            .fetch_one(&mut *w.tx)
            .await?;
            if n == 0 {
                sqlx::query("INSERT INTO slice_persons (slice_id, person_id) VALUES ($1, $2)")
                    .bind(sl.id)
                    .bind(*id)
                    .execute(&mut *w.tx)
                    .await?;
                added.push(email.clone());
            }
        }
        if !added.is_empty() {
            w.slice_event(
                now,
                actor,
                "slice.add_persons",
                sl,
                json!({"persons": added}),
            )
            .await?;
        }
        w.commit().await?;
        self.slice(&sl.id.to_string()).await
    }

    pub async fn remove_slice_person(
        &self,
        actor: &str,
        now: i64,
        sl: &Slice,
        person: (i64, &str),
    ) -> Result<Slice> {
        let mut w = self.write().await?;
        let r = sqlx::query("DELETE FROM slice_persons WHERE slice_id = $1 AND person_id = $2")
            .bind(sl.id)
            .bind(person.0)
            .execute(&mut *w.tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "person {} in slice {}",
                person.1, sl.name
            )));
        }
        w.slice_event(
            now,
            actor,
            "slice.remove_person",
            sl,
            json!({"person": person.1}),
        )
        .await?;
        w.commit().await?;
        self.slice(&sl.id.to_string()).await
    }

    pub async fn is_slice_member(&self, slice_id: i64, person_id: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM slice_persons WHERE slice_id = $1 AND person_id = $2",
        )
        .bind(slice_id)
        .bind(person_id)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    pub async fn slice_tags(&self, sl: &Slice) -> Result<Vec<SliceTag>> {
        let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT t.id, t.name, t.value, n.hostname FROM slice_tags t LEFT JOIN nodes n ON n.id = t.node_id \
             WHERE t.slice_id = $1 ORDER BY t.name, n.hostname",
        )
        .bind(sl.id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, name, value, node)| {
                Some(SliceTag {
                    id,
                    slice: sl.name.clone(),
                    name: TagName::parse(&name).ok()?,
                    value,
                    node,
                })
            })
            .collect())
    }

    /// Sets (inserts or replaces) a tag; `node` limits it to one node.
    pub async fn set_slice_tag(
        &self,
        actor: &str,
        now: i64,
        sl: &Slice,
        tag: TagName,
        value: &str,
        node: Option<(i64, &str)>,
    ) -> Result<SliceTag> {
        let mut w = self.write().await?;
        delete_tag(&mut w, sl.id, tag, node.map(|n| n.0)).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO slice_tags (slice_id, node_id, name, value) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(sl.id)
        .bind(node.map(|n| n.0))
        .bind(tag.as_str())
        .bind(value)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| conflict_or(e, "the tag was set concurrently; retry", ""))?;
        w.slice_event(
            now,
            actor,
            "slice.tag_set",
            sl,
            json!({"tag": tag, "value": value, "node": node.map(|n| n.1)}),
        )
        .await?;
        w.commit().await?;
        Ok(SliceTag {
            id,
            slice: sl.name.clone(),
            name: tag,
            value: value.to_string(),
            node: node.map(|n| n.1.to_string()),
        })
    }

    pub async fn delete_slice_tag(
        &self,
        actor: &str,
        now: i64,
        sl: &Slice,
        tag: TagName,
        node: Option<(i64, &str)>,
    ) -> Result<()> {
        let mut w = self.write().await?;
        if delete_tag(&mut w, sl.id, tag, node.map(|n| n.0)).await? == 0 {
            return Err(StoreError::NotFound(format!(
                "tag {tag} of slice {}",
                sl.name
            )));
        }
        w.slice_event(
            now,
            actor,
            "slice.tag_delete",
            sl,
            json!({"tag": tag, "node": node.map(|n| n.1)}),
        )
        .await?;
        w.commit().await
    }

    pub async fn slivers_of_slice(&self, slice_id: i64) -> Result<Vec<Sliver>> {
        self.slivers("ss.slice_id = $1", slice_id).await
    }

    pub async fn slivers_of_node(&self, node_id: i64) -> Result<Vec<Sliver>> {
        self.slivers("ss.node_id = $1", node_id).await
    }

    async fn slivers(&self, cond: &str, id: i64) -> Result<Vec<Sliver>> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(String, String, String, String, Option<String>, i64, Option<String>)> = sqlx::query_as(&format!(
            "SELECT sl.name, n.hostname, ss.state, ss.message, ss.address, ss.updated, ss.throttled FROM slivers ss \
             JOIN slices sl ON sl.id = ss.slice_id JOIN nodes n ON n.id = ss.node_id WHERE {cond} \
             ORDER BY sl.name, n.hostname"
        ))
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(slice, node, state, message, address, updated, throttled)| Sliver {
                    slice,
                    node,
                    state: crate::reports::parse_state(&state).unwrap_or(SliverState::Failed),
                    message,
                    address,
                    updated,
                    throttled,
                },
            )
            .collect())
    }
}

async fn delete_tag(
    w: &mut WriteTx<'_>,
    slice_id: i64,
    tag: TagName,
    node_id: Option<i64>,
) -> Result<u64> {
    let r = match node_id {
        Some(n) => {
            sqlx::query("DELETE FROM slice_tags WHERE slice_id = $1 AND name = $2 AND node_id = $3")
                .bind(slice_id)
                .bind(tag.as_str())
                .bind(n)
                .execute(&mut *w.tx)
                .await?
        }
        None => {
            sqlx::query(
                "DELETE FROM slice_tags WHERE slice_id = $1 AND name = $2 AND node_id IS NULL",
            )
            .bind(slice_id)
            .bind(tag.as_str())
            .execute(&mut *w.tx)
            .await?
        }
    };
    Ok(r.rows_affected())
}

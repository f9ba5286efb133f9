//! Many nodes' reports in a few statements: central's group commit hands the store up to 512
//! reports at once (`central::batch`), and a slice added to 10,000 nodes brings 10,000 reports
//! within a second. Read each node's stored `seq` and slivers for the whole batch, replace the
//! slivers, append the events and update the node rows with multi-row statements (a handful per
//! batch, not seven per report). The same rows and events as one report at a time
//! (`WriteTx::report`), in the same order per node.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use slicelab_model::sliver::LimitCounts;
use slicelab_model::{Node, NodeReport};

use crate::{Result, StoreError, WriteTx};

/// Most rows (or ids) per statement: well under SQLite's and PostgreSQL's parameter limits, and
/// small because SQLite looks each numbered parameter up in a list when preparing and binding
/// (quadratic in the parameters of a statement: at 200 rows of 8 it was ~6% of central's CPU in
/// a 1,000-node `slicelab sim`), and a full chunk's statement text repeats, so its prepared
/// statement is reused from the connection's cache.
const ROWS: usize = 64;

/// `$first, $first+1, …` (`n` of them).
fn params(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, …, $k), ($k+1, …)`: `rows` rows of `k` parameters.
fn rows(rows: usize, k: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", params(1 + r * k, k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An event to append (owned: made while reading the batch, written at the end).
struct Event {
    actor: String,
    action: &'static str,
    object_type: &'static str,
    object_id: i64,
    object_name: String,
    site_id: Option<i64>,
    detail: String,
}

/// One sliver row to insert.
struct SliverRow {
    slice_id: i64,
    node_id: i64,
    state: &'static str,
    message: String,
    address: Option<String>,
    throttled: Option<String>,
    limits: Option<String>,
}

/// Whether `store_reports` may take the batched path: no node twice (a later report of a node
/// must see the earlier one stored) and no actions (they read the registry one by one).
pub(crate) fn batchable(reports: &[(&Node, &NodeReport)]) -> bool {
    let mut seen = HashSet::new();
    reports
        .iter()
        .all(|(n, r)| r.actions.is_empty() && seen.insert(n.id))
}

impl WriteTx<'_> {
    /// Stores `reports` (see [`batchable`]); each one's acknowledged `seq`, in order.
    pub(crate) async fn reports_together(
        &mut self,
        now: i64,
        reports: &[(&Node, &NodeReport)],
    ) -> Result<Vec<i64>> {
        let ids: Vec<i64> = reports.iter().map(|(n, _)| n.id).collect();
        let mut stored: HashMap<i64, (i64, String)> = HashMap::new();
        for chunk in ids.chunks(ROWS) {
            let sql = format!(
                "SELECT id, report_seq, status FROM nodes WHERE id IN ({})",
                params(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (i64, i64, String)>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for (id, seq, status) in q.fetch_all(&mut *self.tx).await? {
                stored.insert(id, (seq, status));
            }
        }
        let mut acked = Vec::with_capacity(reports.len());
        let mut fresh: Vec<(&Node, &NodeReport, bool)> = Vec::new();
        for (node, r) in reports {
            let Some((last, status)) = stored.get(&node.id) else {
                return Err(StoreError::NotFound(format!("node {}", node.hostname)));
            };
            if r.seq <= *last {
                acked.push(*last);
            } else {
                acked.push(r.seq);
                fresh.push((node, r, status != "up"));
            }
        }
        if fresh.is_empty() {
            return Ok(acked);
        }
        let fresh_ids: Vec<i64> = fresh.iter().map(|(n, _, _)| n.id).collect();

        // What each node had: (state, throttled, limits) by slice name.
        type Old = HashMap<String, (String, Option<String>, LimitCounts)>;
        let mut old: HashMap<i64, Old> = HashMap::new();
        for chunk in fresh_ids.chunks(ROWS) {
            let sql = format!(
                "SELECT ss.node_id, sl.name, ss.state, ss.throttled, ss.limits FROM slivers ss \
                 JOIN slices sl ON sl.id = ss.slice_id WHERE ss.node_id IN ({})",
                params(1, chunk.len())
            );
            let mut q =
                sqlx::query_as::<_, (i64, String, String, Option<String>, Option<String>)>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for (node, name, st, thr, lim) in q.fetch_all(&mut *self.tx).await? {
                let lim = lim
                    .and_then(|l| serde_json::from_str(&l).ok())
                    .unwrap_or_default();
                old.entry(node).or_default().insert(name, (st, thr, lim));
            }
            let sql = format!(
                "DELETE FROM slivers WHERE node_id IN ({})",
                params(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *self.tx).await?;
        }

        // The slices the reports name, each looked up once.
        let names: Vec<&str> = fresh
            .iter()
            .flat_map(|(_, r, _)| r.slivers.iter().map(|s| s.slice_name.as_str()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut slices: HashMap<String, (i64, i64)> = HashMap::new();
        for chunk in names.chunks(ROWS) {
            let sql = format!(
                "SELECT name, id, site_id FROM slices WHERE name IN ({})",
                params(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, i64, i64)>(&sql);
            for n in chunk {
                q = q.bind(*n);
            }
            for (name, id, site) in q.fetch_all(&mut *self.tx).await? {
                slices.insert(name, (id, site));
            }
        }

        let mut rows_out: Vec<SliverRow> = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        for (node, r, was_not_up) in &fresh {
            let actor = format!("node:{}", node.hostname);
            let before = old.remove(&node.id).unwrap_or_default();
            for s in &r.slivers {
                // A sliver of a slice central no longer has is being destroyed; nothing to keep.
                let Some(&(slice_id, site_id)) = slices.get(&s.slice_name) else {
                    continue;
                };
                let message: String = s.message.chars().take(2000).collect();
                let throttled: Option<String> =
                    s.throttled.as_ref().map(|t| t.chars().take(500).collect());
                let prior = before.get(&s.slice_name);
                let ev = |action: &'static str, detail: serde_json::Value| Event {
                    actor: actor.clone(),
                    action,
                    object_type: "slice",
                    object_id: slice_id,
                    object_name: s.slice_name.clone(),
                    site_id: Some(site_id),
                    detail: detail.to_string(),
                };
                let limits_before = prior.map(|o| o.2).unwrap_or_default();
                for (limit, count) in s.limits.hit_since(&limits_before) {
                    // The slice's persons see which limit stopped their experiment, and where.
                    events.push(ev(
                        "sliver.limit_hit",
                        json!({"node": node.hostname, "limit": limit, "count": count}),
                    ));
                }
                let was_throttled = prior.is_some_and(|o| o.1.is_some());
                if was_throttled != throttled.is_some() {
                    let action = if throttled.is_some() {
                        "sliver.throttled"
                    } else {
                        "sliver.unthrottled"
                    };
                    events.push(ev(
                        action,
                        json!({"node": node.hostname, "message": throttled}),
                    ));
                }
                let was = prior.map(|o| o.0.as_str());
                if was != Some(s.state.as_str()) {
                    events.push(ev(
                        "sliver.state",
                        json!({"node": node.hostname, "from": was, "to": s.state, "message": message}),
                    ));
                }
                rows_out.push(SliverRow {
                    slice_id,
                    node_id: node.id,
                    state: s.state.as_str(),
                    message,
                    address: s.address.clone(),
                    throttled,
                    limits: (!s.limits.is_zero()).then(|| json!(s.limits).to_string()),
                });
            }
            if *was_not_up {
                events.push(Event {
                    actor: actor.clone(),
                    action: "node.up",
                    object_type: "node",
                    object_id: node.id,
                    object_name: node.hostname.clone(),
                    site_id: Some(node.site_id),
                    detail: json!({}).to_string(),
                });
            }
        }

        for chunk in rows_out.chunks(ROWS) {
            let sql = format!(
                "INSERT INTO slivers (slice_id, node_id, state, message, address, updated, throttled, limits) \
                 VALUES {}",
                rows(chunk.len(), 8)
            );
            let mut q = sqlx::query(&sql);
            for s in chunk {
                q = q
                    .bind(s.slice_id)
                    .bind(s.node_id)
                    .bind(s.state)
                    .bind(&s.message)
                    .bind(s.address.as_deref())
                    .bind(now)
                    .bind(s.throttled.as_deref())
                    .bind(s.limits.as_deref());
            }
            q.execute(&mut *self.tx).await?;
        }
        for chunk in events.chunks(ROWS) {
            let sql = format!(
                "INSERT INTO events (time, actor, action, object_type, object_id, object_name, site_id, detail) \
                 VALUES {}",
                rows(chunk.len(), 8)
            );
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(now)
                    .bind(&e.actor)
                    .bind(e.action)
                    .bind(e.object_type)
                    .bind(e.object_id)
                    .bind(&e.object_name)
                    .bind(e.site_id)
                    .bind(&e.detail);
            }
            q.execute(&mut *self.tx).await?;
        }
        // The node rows: one statement per chunk, each node's values picked by `CASE id`.
        for chunk in fresh.chunks(ROWS) {
            let (mut seq, mut health, mut ids) = (String::new(), String::new(), Vec::new());
            for i in 0..chunk.len() {
                let (id, s, h) = (2 + 3 * i, 3 + 3 * i, 4 + 3 * i);
                seq.push_str(&format!(" WHEN ${id} THEN ${s}"));
                health.push_str(&format!(" WHEN ${id} THEN ${h}"));
                ids.push(format!("${id}"));
            }
            let sql = format!(
                "UPDATE nodes SET report_seq = CASE id{seq} END, last_contact = $1, \
                 health = COALESCE(CASE id{health} END, health), status = 'up' \
                 WHERE id IN ({})",
                ids.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(now);
            for (node, r, _) in chunk {
                let h = r.health.as_ref().map(|h| json!(h).to_string());
                q = q.bind(node.id).bind(r.seq).bind(h);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(acked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(params(3, 2), "$3, $4");
        assert_eq!(rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}

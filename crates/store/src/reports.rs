//! Node reports: sliver states, node health and what persons did through the node's services,
//! stored idempotently by batch `seq`.

use std::collections::HashMap;

use serde_json::json;
use slicelab_model::sliver::{LimitCounts, NodeAction};
use slicelab_model::{Node, NodeReport, SliverState};

use crate::events::NewEvent;
use crate::{Result, Store, WriteTx};

pub(crate) fn parse_state(s: &str) -> Option<SliverState> {
    Some(match s {
        "creating" => SliverState::Creating,
        "running" => SliverState::Running,
        "stopped" => SliverState::Stopped,
        "failed" => SliverState::Failed,
        _ => return None,
    })
}

impl Store {
    /// Stores a report batch unless one with this `seq` (or later) is already stored; returns the
    /// highest stored `seq`. Sliver state changes become events.
    pub async fn store_report(&self, node: &Node, now: i64, r: &NodeReport) -> Result<i64> {
        let mut acked = self.store_reports(now, &[(node, r)]).await?;
        Ok(acked.pop().unwrap_or(0))
    }

    /// Stores many nodes' reports in one transaction (one commit, one fsync): central's group
    /// commit, so thousands of nodes reporting at once do not queue behind one fsync each.
    /// Returns each report's acknowledged `seq`, in order.
    pub async fn store_reports(
        &self,
        now: i64,
        reports: &[(&Node, &NodeReport)],
    ) -> Result<Vec<i64>> {
        let mut w = self.write().await?;
        let acked = if crate::reports_batch::batchable(reports) {
            // A few statements for the whole batch (`reports_batch`).
            w.reports_together(now, reports).await?
        } else {
            let mut acked = Vec::with_capacity(reports.len());
            // Many nodes of one batch report the same slices: look each up once.
            let mut slices: HashMap<String, Option<(i64, i64)>> = HashMap::new();
            for (node, r) in reports {
                acked.push(w.report(node, now, r, &mut slices).await?);
            }
            acked
        };
        w.commit().await?;
        Ok(acked)
    }
}

impl WriteTx<'_> {
    async fn report(
        &mut self,
        node: &Node,
        now: i64,
        r: &NodeReport,
        slices: &mut HashMap<String, Option<(i64, i64)>>,
    ) -> Result<i64> {
        let w = self;
        let last: i64 = sqlx::query_scalar("SELECT report_seq FROM nodes WHERE id = $1")
            .bind(node.id)
            .fetch_one(&mut *w.tx)
            .await?;
        if r.seq <= last {
            return Ok(last);
        }
        let old: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT sl.name, ss.state, ss.throttled, ss.limits FROM slivers ss \
             JOIN slices sl ON sl.id = ss.slice_id WHERE ss.node_id = $1",
        )
        .bind(node.id)
        .fetch_all(&mut *w.tx)
        .await?;
        let old: HashMap<String, (String, Option<String>, LimitCounts)> = old
            .into_iter()
            .map(|(name, st, thr, lim)| {
                let lim = lim
                    .and_then(|l| serde_json::from_str(&l).ok())
                    .unwrap_or_default();
                (name, (st, thr, lim))
            })
            .collect();
        sqlx::query("DELETE FROM slivers WHERE node_id = $1")
            .bind(node.id)
            .execute(&mut *w.tx)
            .await?;
        let actor = format!("node:{}", node.hostname);
        for s in &r.slivers {
            let slice = match slices.get(&s.slice_name) {
                Some(known) => *known,
                None => {
                    let found: Option<(i64, i64)> =
                        sqlx::query_as("SELECT id, site_id FROM slices WHERE name = $1")
                            .bind(&s.slice_name)
                            .fetch_optional(&mut *w.tx)
                            .await?;
                    slices.insert(s.slice_name.clone(), found);
                    found
                }
            };
            // A sliver of a slice central no longer has is being destroyed; nothing to keep.
            let Some((slice_id, site_id)) = slice else {
                continue;
            };
            let message: String = s.message.chars().take(2000).collect();
            let throttled: Option<String> =
                s.throttled.as_ref().map(|t| t.chars().take(500).collect());
            sqlx::query(
                "INSERT INTO slivers (slice_id, node_id, state, message, address, updated, throttled, limits) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(slice_id)
            .bind(node.id)
            .bind(s.state.as_str())
            .bind(&message)
            .bind(s.address.as_deref())
            .bind(now)
            .bind(throttled.clone())
            .bind((!s.limits.is_zero()).then(|| json!(s.limits).to_string()))
            .execute(&mut *w.tx)
            .await?;
            let limits_before = old.get(&s.slice_name).map(|o| o.2).unwrap_or_default();
            for (limit, count) in s.limits.hit_since(&limits_before) {
                // The slice's persons see which limit stopped their experiment, and where.
                w.event(
                    now,
                    NewEvent {
                        actor: &actor,
                        action: "sliver.limit_hit",
                        object_type: "slice",
                        object_id: slice_id,
                        object_name: &s.slice_name,
                        site_id: Some(site_id),
                        detail: json!({"node": node.hostname, "limit": limit, "count": count}),
                    },
                )
                .await?;
            }
            let was_throttled = old.get(&s.slice_name).is_some_and(|o| o.1.is_some());
            if was_throttled != throttled.is_some() {
                // bwmon: the slice's persons learn of a throttle (and its end) from the event log.
                w.event(
                    now,
                    NewEvent {
                        actor: &actor,
                        action: if throttled.is_some() {
                            "sliver.throttled"
                        } else {
                            "sliver.unthrottled"
                        },
                        object_type: "slice",
                        object_id: slice_id,
                        object_name: &s.slice_name,
                        site_id: Some(site_id),
                        detail: json!({"node": node.hostname, "message": throttled}),
                    },
                )
                .await?;
            }
            let before = old.get(&s.slice_name).map(|o| o.0.as_str());
            if before != Some(s.state.as_str()) {
                w.event(
                    now,
                    NewEvent {
                        actor: &actor,
                        action: "sliver.state",
                        object_type: "slice",
                        object_id: slice_id,
                        object_name: &s.slice_name,
                        site_id: Some(site_id),
                        detail: json!({"node": node.hostname, "from": before, "to": s.state, "message": message}),
                    },
                )
                .await?;
            }
        }
        for a in &r.actions {
            w.node_action(node, now, a, slices).await?;
        }
        let health = r.health.as_ref().map(|h| json!(h).to_string());
        sqlx::query(
            "UPDATE nodes SET report_seq = $1, last_contact = $2, health = COALESCE($3, health) WHERE id = $4",
        )
        .bind(r.seq)
        .bind(now)
        .bind(health)
        .bind(node.id)
        .execute(&mut *w.tx)
        .await?;
        w.mark_up(node, now).await?;
        Ok(r.seq)
    }
}

/// The most of an action's `detail` an event keeps (its JSON text).
const ACTION_DETAIL_MAX: usize = 4096;

impl WriteTx<'_> {
    /// One thing a person did through the node's services (`site_admin`, a capture), as an
    /// event whose actor is that person; on the slice when it names one central has, else on
    /// the node. The node is the witness (`detail.node`).
    async fn node_action(
        &mut self,
        node: &Node,
        now: i64,
        a: &NodeAction,
        slices: &mut HashMap<String, Option<(i64, i64)>>,
    ) -> Result<()> {
        let slice = match a.slice.as_deref() {
            None => None,
            Some(name) => match slices.get(name) {
                Some(known) => known.map(|(id, site)| (id, site, name)),
                None => {
                    let found: Option<(i64, i64)> =
                        sqlx::query_as("SELECT id, site_id FROM slices WHERE name = $1")
                            .bind(name)
                            .fetch_optional(&mut *self.tx)
                            .await?;
                    slices.insert(name.to_string(), found);
                    found.map(|(id, site)| (id, site, name))
                }
            },
        };
        let mut detail = if serde_json::Value::Object(a.detail.clone())
            .to_string()
            .len()
            <= ACTION_DETAIL_MAX
        {
            a.detail.clone()
        } else {
            serde_json::Map::from_iter([("detail".to_string(), json!("(left out: over 4 KiB)"))])
        };
        detail.insert("node".into(), json!(node.hostname));
        detail.insert("at".into(), json!(a.at));
        if let (Some(name), None) = (a.slice.as_deref(), slice) {
            detail.insert("slice".into(), json!(name));
        }
        // The person's label, as every event of theirs has it (`Actor::label`).
        let person = format!("person:{}", a.person.chars().take(254).collect::<String>());
        let (object_type, object_id, object_name, site_id) = match slice {
            Some((id, site, name)) => ("slice", id, name, site),
            None => ("node", node.id, node.hostname.as_str(), node.site_id),
        };
        self.event(
            now,
            NewEvent {
                actor: &person,
                action: a.kind.event_action(),
                object_type,
                object_id,
                object_name,
                site_id: Some(site_id),
                detail: serde_json::Value::Object(detail),
            },
        )
        .await
    }
}

impl Store {
    /// The node's last reported health, as JSON.
    pub async fn node_health(&self, node_id: i64) -> Result<Option<serde_json::Value>> {
        let h: Option<Option<String>> =
            sqlx::query_scalar("SELECT health FROM nodes WHERE id = $1")
                .bind(node_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(h.flatten().and_then(|s| serde_json::from_str(&s).ok()))
    }
}

//! Facts the broker needs: every node's capacity, health, sliver count and guarantees in use.

use std::collections::HashMap;

use slicelab_model::tags::{self, TagValue};
use slicelab_model::time::NODE_LIVE_WINDOW;
use slicelab_model::{BootState, NodeHealth, TagName};
use slicelab_placement::{Candidate, Reservation};

use crate::{Result, Store};

/// (slice, tag name, value, node) of one guarantee tag.
type TagRow = (i64, String, String, Option<i64>);
type NodeFacts = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

impl Store {
    /// Guarantees of every (slice, node) pair, resolved like the node's own tags would be.
    pub(crate) async fn reservations(&self) -> Result<HashMap<(i64, i64), Reservation>> {
        let pairs: Vec<(i64, i64)> = sqlx::query_as("SELECT slice_id, node_id FROM slice_nodes")
            .fetch_all(self.pool())
            .await?;
        let tag_rows: Vec<TagRow> = sqlx::query_as(
            "SELECT slice_id, name, value, node_id FROM slice_tags WHERE name IN ('cpu_reserve', 'mem_reserve')",
        )
        .fetch_all(self.pool())
        .await?;
        let mut by_slice: HashMap<i64, Vec<&TagRow>> = HashMap::new();
        for t in &tag_rows {
            by_slice.entry(t.0).or_default().push(t);
        }
        let mut out = HashMap::new();
        for (slice_id, node_id) in pairs {
            let Some(tags) = by_slice.get(&slice_id) else {
                continue;
            };
            let r = tags::resolve(
                tags.iter().filter_map(|(_, n, v, nid)| {
                    Some(TagValue {
                        name: TagName::parse(n).ok()?,
                        value: v,
                        node_id: *nid,
                    })
                }),
                node_id,
            );
            out.insert((slice_id, node_id), Reservation::from_resources(&r));
        }
        Ok(out)
    }

    /// The guarantees `slice_id` asks on `node_id` given its tags (whether or not it is there yet).
    pub async fn slice_reservation(&self, slice_id: i64, node_id: i64) -> Result<Reservation> {
        Ok(self
            .slice_reservations(slice_id, &[node_id])
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// The guarantees `slice_id` asks on each of `node_ids`, in order, from one query.
    pub async fn slice_reservations(
        &self,
        slice_id: i64,
        node_ids: &[i64],
    ) -> Result<Vec<Reservation>> {
        let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT name, value, node_id FROM slice_tags WHERE slice_id = $1 AND name IN ('cpu_reserve', 'mem_reserve')",
        )
        .bind(slice_id)
        .fetch_all(self.pool())
        .await?;
        Ok(node_ids
            .iter()
            .map(|node_id| {
                let r = tags::resolve(
                    rows.iter().filter_map(|(n, v, nid)| {
                        Some(TagValue {
                            name: TagName::parse(n).ok()?,
                            value: v,
                            node_id: *nid,
                        })
                    }),
                    *node_id,
                );
                Reservation::from_resources(&r)
            })
            .collect())
    }

    /// Every node as the broker sees it while placing `slice_id`. Guarantees of `slice_id` itself
    /// are left out of `reserved`, so a changed guarantee is checked against the others only.
    pub async fn placement_candidates(&self, slice_id: i64, now: i64) -> Result<Vec<Candidate>> {
        let nodes: Vec<NodeFacts> = sqlx::query_as(
            // A peer's node is live when its authority says so (it never contacts us).
            "SELECT n.id, n.hostname, s.login_base, n.region, n.boot_state, n.cpu_cores, n.mem_mb, n.disk_gb, \
             CASE WHEN s.peer_id IS NOT NULL AND n.status = 'up' THEN $1 ELSE n.last_contact END, \
             n.health FROM nodes n JOIN sites s ON s.id = n.site_id ORDER BY n.id",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let reservations = self.reservations().await?;
        let mut reserved: HashMap<i64, Reservation> = HashMap::new();
        let mut slivers: HashMap<i64, u32> = HashMap::new();
        let mut in_slice: HashMap<i64, bool> = HashMap::new();
        let pairs: Vec<(i64, i64)> = sqlx::query_as("SELECT slice_id, node_id FROM slice_nodes")
            .fetch_all(self.pool())
            .await?;
        for (s, n) in pairs {
            *slivers.entry(n).or_default() += 1;
            if s == slice_id {
                in_slice.insert(n, true);
                continue;
            }
            if let Some(r) = reservations.get(&(s, n)) {
                let e = reserved.entry(n).or_default();
                e.cpu_pct += r.cpu_pct;
                e.mem_mb += r.mem_mb;
            }
        }
        Ok(nodes
            .into_iter()
            .map(
                |(id, hostname, site, region, boot, cores, mem, disk, last, health)| {
                    let health: Option<NodeHealth> =
                        health.and_then(|h| serde_json::from_str(&h).ok());
                    Candidate {
                        node_id: id,
                        hostname,
                        site,
                        region,
                        live: boot == BootState::Boot.as_str()
                            && last.is_some_and(|t| now - t <= NODE_LIVE_WINDOW),
                        cpu_cores: cores.clamp(0, u32::MAX as i64) as u32,
                        mem_mb: mem.max(0) as u64,
                        disk_gb: disk.max(0) as u64,
                        load1: health.as_ref().map(|h| h.load1),
                        mem_free_mb: health
                            .as_ref()
                            .map(|h| h.mem_total_mb.saturating_sub(h.mem_used_mb)),
                        disk_free_mb: health
                            .as_ref()
                            .map(|h| h.disk_total_mb.saturating_sub(h.disk_used_mb)),
                        slivers: slivers.get(&id).copied().unwrap_or(0),
                        reserved: reserved.get(&id).copied().unwrap_or_default(),
                        in_slice: in_slice.contains_key(&id),
                    }
                },
            )
            .collect())
    }
}

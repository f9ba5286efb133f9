//! Leases: exclusive time windows on reservable nodes.

use serde_json::json;
use slicelab_model::{Lease, Node, Slice};

use crate::events::NewEvent;
use crate::{Arg, Filter, Result, Store, StoreError};

const LEASE_SELECT: &str = "SELECT l.id, sl.name, n.hostname, l.t_start, l.t_end FROM leases l \
     JOIN slices sl ON sl.id = l.slice_id JOIN nodes n ON n.id = l.node_id";

fn lease((id, slice, node, start, end): (i64, String, String, i64, i64)) -> Lease {
    Lease {
        id,
        slice,
        node,
        start,
        end,
    }
}

impl Store {
    /// Creates a lease unless it overlaps another on the same node (checked in the transaction).
    pub async fn create_lease(
        &self,
        actor: &str,
        now: i64,
        slice: &Slice,
        node: &Node,
        start: i64,
        end: i64,
    ) -> Result<Lease> {
        let mut w = self.write().await?;
        let clash: Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT sl.name, l.t_start, l.t_end FROM leases l JOIN slices sl ON sl.id = l.slice_id \
             WHERE l.node_id = $1 AND l.t_start < $2 AND l.t_end > $3 ORDER BY l.t_start LIMIT 1",
        )
        .bind(node.id)
        .bind(end)
        .bind(start)
        .fetch_optional(&mut *w.tx)
        .await?;
        if let Some((other, s, e)) = clash {
            return Err(StoreError::Conflict(format!(
                "{} is already leased to {other} from {s} to {e} (Unix seconds)",
                node.hostname
            )));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO leases (slice_id, node_id, t_start, t_end) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(slice.id)
        .bind(node.id)
        .bind(start)
        .bind(end)
        .fetch_one(&mut *w.tx)
        .await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "lease.create",
                object_type: "slice",
                object_id: slice.id,
                object_name: &slice.name,
                site_id: Some(slice.site_id),
                detail: json!({"lease_id": id, "node": node.hostname, "start": start, "end": end}),
            },
        )
        .await?;
        w.commit().await?;
        self.lease(id).await
    }

    pub async fn lease(&self, id: i64) -> Result<Lease> {
        sqlx::query_as(&format!("{LEASE_SELECT} WHERE l.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .map(lease)
            .ok_or_else(|| StoreError::NotFound(format!("lease {id}")))
    }

    /// Leases ending after `after`, optionally of one node or slice, in time order.
    pub async fn list_leases(
        &self,
        node_id: Option<i64>,
        slice_id: Option<i64>,
        after: i64,
    ) -> Result<Vec<Lease>> {
        let mut f = Filter::default();
        f.add("l.t_end > {}", Arg::I(after));
        if let Some(n) = node_id {
            f.add("l.node_id = {}", Arg::I(n));
        }
        if let Some(s) = slice_id {
            f.add("l.slice_id = {}", Arg::I(s));
        }
        let sql = format!(
            "{LEASE_SELECT} {} ORDER BY l.t_start, n.hostname LIMIT 10000",
            f.where_sql()
        );
        let rows: Vec<(i64, String, String, i64, i64)> =
            f.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(lease).collect())
    }

    pub async fn delete_lease(
        &self,
        actor: &str,
        now: i64,
        l: &Lease,
        slice: &Slice,
    ) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM leases WHERE id = $1")
            .bind(l.id)
            .execute(&mut *w.tx)
            .await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "lease.delete",
                object_type: "slice",
                object_id: slice.id,
                object_name: &slice.name,
                site_id: Some(slice.site_id),
                detail: json!({"lease_id": l.id, "node": l.node, "start": l.start, "end": l.end}),
            },
        )
        .await?;
        w.commit().await
    }

    /// The slice holding `node_id`'s lease at `now`, if any.
    pub async fn active_lease(&self, node_id: i64, now: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT slice_id FROM leases WHERE node_id = $1 AND t_start <= $2 AND t_end > $2 LIMIT 1",
        )
        .bind(node_id)
        .bind(now)
        .fetch_optional(self.pool())
        .await?)
    }
}

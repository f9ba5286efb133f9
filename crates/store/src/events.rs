//! The event log (audit trail): [`NewEvent`] appended inside every write transaction, and the
//! filtered, paged listing behind `GET /api/v1/events`.

use serde_json::Value;
use slicelab_model::Event;

use crate::rows::EventRow;
use crate::{Arg, Filter, Paging, Result, Store, WriteTx};

/// One entry for the audit log, written in the same transaction as the change it describes.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub object_type: &'a str,
    pub object_id: i64,
    pub object_name: &'a str,
    /// The site the object belongs to, so site PIs can read their site's events.
    pub site_id: Option<i64>,
    pub detail: Value,
}

impl WriteTx<'_> {
    pub(crate) async fn event(&mut self, now: i64, e: NewEvent<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO events (time, actor, action, object_type, object_id, object_name, site_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(now)
        .bind(e.actor)
        .bind(e.action)
        .bind(e.object_type)
        .bind(e.object_id)
        .bind(e.object_name)
        .bind(e.site_id)
        .bind(e.detail.to_string())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub object_type: Option<String>,
    /// Object id or name.
    pub object: Option<String>,
    pub actor: Option<String>,
    pub since: Option<i64>,
    /// Restricts to events of these sites or by this actor label (non-admin visibility).
    pub visible_to: Option<(Vec<i64>, String)>,
}

impl Store {
    pub async fn list_events(&self, f: &EventFilter, page: Paging) -> Result<(Vec<Event>, i64)> {
        let mut w = Filter::default();
        if let Some(t) = &f.object_type {
            w.add("object_type = {}", Arg::S(t.clone()));
        }
        if let Some(o) = &f.object {
            match crate::rows::as_id(o) {
                Some(id) => w.add("object_id = {}", Arg::I(id)),
                None => w.add("object_name = {}", Arg::S(o.clone())),
            }
        }
        if let Some(a) = &f.actor {
            w.add("actor = {}", Arg::S(a.clone()));
        }
        if let Some(s) = f.since {
            w.add("time >= {}", Arg::I(s));
        }
        if let Some((sites, me)) = &f.visible_to {
            let mut alts = vec![("actor = {}", Arg::S(me.clone()))];
            alts.extend(sites.iter().map(|s| ("site_id = {}", Arg::I(*s))));
            w.any_of(alts);
        }
        let where_sql = w.where_sql();
        let total: i64 = w
            .bind_scalar(sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM events {where_sql}"
            )))
            .fetch_one(self.pool())
            .await?;
        let sql = format!(
            "SELECT id, time, actor, action, object_type, object_id, object_name, detail FROM events {where_sql} \
             ORDER BY id DESC LIMIT {} OFFSET {}",
            page.limit, page.offset
        );
        let rows: Vec<EventRow> = w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        Ok((rows.into_iter().map(Into::into).collect(), total))
    }
}

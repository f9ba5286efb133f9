//! Sites: create, look up (by id or `login_base`), list, update, delete.

use serde_json::json;
use slicelab_model::{Site, SiteCreate, SiteUpdate};

use crate::events::NewEvent;
use crate::rows::{SiteRow, SITE_COLS};
use crate::{conflict_or, Arg, Filter, Paging, Result, Store, StoreError};

impl Store {
    pub async fn create_site(&self, actor: &str, now: i64, c: &SiteCreate) -> Result<Site> {
        let mut w = self.write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sites (login_base, name, url, max_slices, latitude, longitude, enabled, created) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7) RETURNING id",
        )
        .bind(&c.login_base)
        .bind(&c.name)
        .bind(&c.url)
        .bind(c.max_slices)
        .bind(c.latitude)
        .bind(c.longitude)
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| {
            conflict_or(e, &format!("a site with login_base {:?} already exists", c.login_base), "")
        })?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "site.create",
                object_type: "site",
                object_id: id,
                object_name: &c.login_base,
                site_id: Some(id),
                detail: json!(c),
            },
        )
        .await?;
        w.commit().await?;
        self.site(&id.to_string()).await
    }

    /// A site by id or `login_base`.
    pub async fn site(&self, key: &str) -> Result<Site> {
        self.by_id_or_name::<SiteRow>(
            &format!("SELECT {SITE_COLS} FROM sites"),
            "id",
            "login_base",
            key,
        )
        .await?
        .map(Into::into)
        .ok_or_else(|| StoreError::NotFound(format!("site {key:?}")))
    }

    pub async fn list_sites(
        &self,
        login_base: Option<&str>,
        page: Paging,
    ) -> Result<(Vec<Site>, i64)> {
        let mut w = Filter::default();
        if let Some(l) = login_base {
            w.add("login_base = {}", Arg::S(l.to_string()));
        }
        let where_sql = w.where_sql();
        let total = w
            .bind_scalar(sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM sites {where_sql}"
            )))
            .fetch_one(self.pool())
            .await?;
        let sql = format!(
            "SELECT {SITE_COLS} FROM sites {where_sql} ORDER BY login_base LIMIT {} OFFSET {}",
            page.limit, page.offset
        );
        let rows: Vec<SiteRow> = w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        Ok((rows.into_iter().map(Into::into).collect(), total))
    }

    pub async fn update_site(
        &self,
        actor: &str,
        now: i64,
        site: &Site,
        u: &SiteUpdate,
    ) -> Result<Site> {
        let mut w = self.write().await?;
        sqlx::query(
            "UPDATE sites SET name = $1, url = $2, max_slices = $3, latitude = $4, longitude = $5, \
             enabled = $6, image_quota_mb = $7 WHERE id = $8",
        )
        .bind(u.name.as_deref().unwrap_or(&site.name))
        .bind(u.url.as_deref().unwrap_or(&site.url))
        .bind(u.max_slices.unwrap_or(site.max_slices))
        .bind(u.latitude.or(site.latitude))
        .bind(u.longitude.or(site.longitude))
        .bind(i64::from(u.enabled.unwrap_or(site.enabled)))
        .bind(u.image_quota_mb.unwrap_or(site.image_quota_mb))
        .bind(site.id)
        .execute(&mut *w.tx)
        .await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "site.update",
                object_type: "site",
                object_id: site.id,
                object_name: &site.login_base,
                site_id: Some(site.id),
                detail: json!(u),
            },
        )
        .await?;
        w.commit().await?;
        self.site(&site.id.to_string()).await
    }

    pub async fn delete_site(&self, actor: &str, now: i64, site: &Site) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM sites WHERE id = $1")
            .bind(site.id)
            .execute(&mut *w.tx)
            .await
            .map_err(|e| {
                conflict_or(
                    e,
                    "",
                    &format!(
                        "site {} still has nodes, slices or images; delete those first",
                        site.login_base
                    ),
                )
            })?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "site.delete",
                object_type: "site",
                object_id: site.id,
                object_name: &site.login_base,
                site_id: Some(site.id),
                detail: json!({}),
            },
        )
        .await?;
        w.commit().await
    }
}

//! Images published at central (`slicelab_model::image`) and the blobs their layers are made of.
//!
//! `images` holds each image's canonical manifest (exactly the bytes its digest is computed
//! over) and `image_layers` the blobs it uses, bottom first; `image_blobs` records the blobs
//! whose bytes are complete in central's blob directory (the bytes themselves are files, see
//! `slicelab_central::blobs`). A blob an image uses cannot be removed (foreign key), so a
//! removal of unused blobs never takes one from under an image being published.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use slicelab_model::image::{Image, ImageManifest, Visibility};
use slicelab_model::Site;

use crate::events::NewEvent;
use crate::rows::{SiteRow, SITE_COLS};
use crate::{conflict_or, Arg, Filter, Result, Store, StoreError, WriteTx};

/// An image as stored, with the id of the person who published it (`None` once deleted).
#[derive(Debug, Clone)]
pub struct ImageRecord {
    pub image: Image,
    pub owner_id: Option<i64>,
}

/// What an operation has checked and hands the store to publish.
#[derive(Debug, Clone)]
pub struct NewImageRecord<'a> {
    pub name: &'a str,
    /// sha256 of `manifest_json`.
    pub digest: &'a str,
    pub visibility: Visibility,
    pub site_id: i64,
    pub owner_id: i64,
    pub manifest: &'a ImageManifest,
    /// The canonical JSON of `manifest`, stored as is.
    pub manifest_json: &'a str,
    /// Bytes of its blobs.
    pub size: u64,
}

#[derive(sqlx::FromRow)]
struct ImageRow {
    image_id: i64,
    name: String,
    digest: String,
    visibility: String,
    site_id: i64,
    owner_id: Option<i64>,
    owner: String,
    size: i64,
    created: i64,
    manifest: String,
}

const IMAGE_SELECT: &str =
    "SELECT i.image_id, i.name, i.digest, i.visibility, i.site_id, i.owner_id, \
     COALESCE(p.email, '') AS owner, i.size, i.created, i.manifest \
     FROM images i LEFT JOIN persons p ON p.id = i.owner_id";

impl From<ImageRow> for ImageRecord {
    fn from(r: ImageRow) -> ImageRecord {
        ImageRecord {
            owner_id: r.owner_id,
            image: Image {
                image_id: r.image_id,
                name: r.name,
                digest: r.digest,
                // Only values we wrote are stored; fall back to the narrower visibility if not.
                visibility: Visibility::parse(&r.visibility).unwrap_or(Visibility::Site),
                site_id: r.site_id,
                owner: r.owner,
                size: u64::try_from(r.size).unwrap_or(0),
                created: r.created,
                manifest: serde_json::from_str(&r.manifest).unwrap_or_default(),
            },
        }
    }
}

/// Sizes are stored as SQL integers.
fn as_sql_size(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

impl WriteTx<'_> {
    /// A blob's event: blobs belong to no site, so only admins and the actor see it.
    async fn blob_event(
        &mut self,
        now: i64,
        actor: &str,
        action: &str,
        digest: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.event(
            now,
            NewEvent {
                actor,
                action,
                object_type: "blob",
                object_id: 0,
                object_name: digest,
                site_id: None,
                detail,
            },
        )
        .await
    }
}

impl Store {
    /// The size of a complete blob, `None` if it is not stored.
    pub async fn blob_size(&self, digest: &str) -> Result<Option<u64>> {
        let size: Option<i64> =
            sqlx::query_scalar("SELECT size FROM image_blobs WHERE digest = $1")
                .bind(digest)
                .fetch_optional(self.pool())
                .await?;
        Ok(size.map(|s| u64::try_from(s).unwrap_or(0)))
    }

    /// The sizes of those of `digests` that are stored (one query).
    pub async fn blob_sizes(&self, digests: &[&str]) -> Result<HashMap<String, u64>> {
        if digests.is_empty() {
            return Ok(HashMap::new());
        }
        let mut w = Filter::default();
        w.any_of(
            digests
                .iter()
                .map(|d| ("digest = {}", Arg::S(d.to_string())))
                .collect(),
        );
        let sql = format!("SELECT digest, size FROM image_blobs {}", w.where_sql());
        let rows: Vec<(String, i64)> = w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(d, s)| (d, u64::try_from(s).unwrap_or(0)))
            .collect())
    }

    /// Records a blob whose bytes are complete on disk, uploaded by `actor`. Recording it again
    /// (a re-upload) only renews its time, so the removal of abandoned uploads leaves it another
    /// day.
    pub async fn record_blob(&self, actor: &str, now: i64, digest: &str, size: u64) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO image_blobs (digest, size, created) VALUES ($1, $2, $3) \
             ON CONFLICT (digest) DO UPDATE SET created = excluded.created",
        )
        .bind(digest)
        .bind(as_sql_size(size))
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
        w.blob_event(now, actor, "blob.uploaded", digest, json!({"size": size}))
            .await?;
        w.commit().await
    }

    /// Forgets the blobs no image uses that were recorded before `before` (uploads abandoned on
    /// the way to an image) and returns their digests, whose files may then be removed.
    pub async fn remove_unused_blobs(
        &self,
        actor: &str,
        now: i64,
        before: i64,
    ) -> Result<Vec<String>> {
        let mut w = self.write().await?;
        let gone: Vec<String> = sqlx::query_scalar(
            "DELETE FROM image_blobs WHERE created < $1 \
             AND NOT EXISTS (SELECT 1 FROM image_layers l WHERE l.digest = image_blobs.digest) \
             RETURNING digest",
        )
        .bind(before)
        .fetch_all(&mut *w.tx)
        .await?;
        for d in &gone {
            w.blob_event(now, actor, "blob.removed", d, json!({"reason": "unused"}))
                .await?;
        }
        w.commit().await?;
        Ok(gone)
    }

    /// Publishes an image whose blobs are recorded. Inside the transaction: the name is free
    /// (else `Conflict`), every layer's blob is still recorded (else `Conflict`), and a `site`
    /// image keeps its site within its quota (else `OverQuota`).
    pub async fn create_image(
        &self,
        actor: &str,
        now: i64,
        r: &NewImageRecord<'_>,
    ) -> Result<ImageRecord> {
        let mut w = self.write().await?;
        if r.visibility == Visibility::Site {
            // The site's row counts its `site` images (`rows::SITE_COLS`), as pages show it.
            let site: Option<SiteRow> =
                sqlx::query_as(&format!("SELECT {SITE_COLS} FROM sites WHERE id = $1"))
                    .bind(r.site_id)
                    .fetch_optional(&mut *w.tx)
                    .await?;
            let site: Site = site
                .ok_or_else(|| StoreError::NotFound(format!("site {}", r.site_id)))?
                .into();
            let quota_mb = site.image_quota_mb;
            let quota = u64::try_from(quota_mb).unwrap_or(0).saturating_mul(1 << 20);
            let used = site.image_used_bytes;
            if used.saturating_add(r.size) > quota {
                return Err(StoreError::OverQuota(format!(
                    "the site's image quota (image_quota_mb) is {quota_mb} MiB: its site images \
                     use {} MiB and this one needs {} MiB more",
                    used.div_ceil(1 << 20),
                    r.size.div_ceil(1 << 20)
                )));
            }
        }
        let image_id: i64 = sqlx::query_scalar(
            "INSERT INTO images (name, digest, visibility, site_id, owner_id, size, manifest, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING image_id",
        )
        .bind(r.name)
        .bind(r.digest)
        .bind(r.visibility.as_str())
        .bind(r.site_id)
        .bind(r.owner_id)
        .bind(as_sql_size(r.size))
        .bind(r.manifest_json)
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| {
            conflict_or(
                e,
                &format!("an image named {:?} already exists", r.name),
                "the image's site or owner no longer exists",
            )
        })?;
        for (position, layer) in r.manifest.layers.iter().enumerate() {
            sqlx::query(
                "INSERT INTO image_layers (image_id, position, digest) VALUES ($1, $2, $3)",
            )
            .bind(image_id)
            .bind(position as i64)
            .bind(&layer.digest)
            .execute(&mut *w.tx)
            .await
            .map_err(|e| {
                conflict_or(
                    e,
                    "",
                    &format!(
                        "blob {} was removed meanwhile; upload it again",
                        layer.digest
                    ),
                )
            })?;
        }
        w.event(
            now,
            NewEvent {
                actor,
                action: "image.created",
                object_type: "image",
                object_id: image_id,
                object_name: r.name,
                site_id: Some(r.site_id),
                detail: json!({"name": r.name, "digest": r.digest, "size": r.size,
                               "visibility": r.visibility, "layers": r.manifest.layers.len()}),
            },
        )
        .await?;
        w.commit().await?;
        self.image(r.name).await
    }

    /// The image named `name`.
    pub async fn image(&self, name: &str) -> Result<ImageRecord> {
        let row: Option<ImageRow> = sqlx::query_as(&format!("{IMAGE_SELECT} WHERE i.name = $1"))
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(Into::into)
            .ok_or_else(|| StoreError::NotFound(format!("image {name:?}")))
    }

    /// Images by name; with `sites`, only `platform` images and those of these sites.
    pub async fn list_images(&self, sites: Option<&[i64]>) -> Result<Vec<Image>> {
        let mut w = Filter::default();
        if let Some(sites) = sites {
            let mut alts = vec![("i.visibility = {}", Arg::S("platform".into()))];
            alts.extend(sites.iter().map(|s| ("i.site_id = {}", Arg::I(*s))));
            w.any_of(alts);
        }
        let sql = format!("{IMAGE_SELECT} {} ORDER BY i.name", w.where_sql());
        let rows: Vec<ImageRow> = w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|r| ImageRecord::from(r).image)
            .collect())
    }

    /// The stored canonical manifest of an image with this digest (several images may share it).
    pub async fn image_manifest(&self, digest: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT manifest FROM images WHERE digest = $1 LIMIT 1")
                .bind(digest)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The slices whose `image` tag (slice-wide or for a node) names `name`, by name.
    pub async fn slices_naming_image(&self, name: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT sl.name FROM slice_tags t JOIN slices sl ON sl.id = t.slice_id \
             WHERE t.name = 'image' AND t.value = $1 ORDER BY sl.name",
        )
        .bind(name)
        .fetch_all(self.pool())
        .await?)
    }

    /// Hostnames of the nodes of the slices whose `image` tag names `name`: whose desired state
    /// changes when an image of that name is published.
    pub async fn nodes_naming_image(&self, name: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT n.hostname FROM slice_tags t \
             JOIN slice_nodes sn ON sn.slice_id = t.slice_id JOIN nodes n ON n.id = sn.node_id \
             WHERE t.name = 'image' AND t.value = $1 ORDER BY n.hostname",
        )
        .bind(name)
        .fetch_all(self.pool())
        .await?)
    }

    /// Deletes an image unless a slice's `image` tag names it (`Conflict` naming every such
    /// slice), and forgets the blobs no other image uses; returns their digests, whose files
    /// may be removed once this has committed.
    pub async fn delete_image(&self, actor: &str, now: i64, img: &Image) -> Result<Vec<String>> {
        let mut w = self.write().await?;
        let users: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT sl.name FROM slice_tags t JOIN slices sl ON sl.id = t.slice_id \
             WHERE t.name = 'image' AND t.value = $1 ORDER BY sl.name",
        )
        .bind(&img.name)
        .fetch_all(&mut *w.tx)
        .await?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "image {} is in use: the image tag of slice{} {} names it; change or remove \
                 those tags first",
                img.name,
                if users.len() == 1 { "" } else { "s" },
                users.join(", ")
            )));
        }
        let r = sqlx::query("DELETE FROM images WHERE image_id = $1")
            .bind(img.image_id)
            .execute(&mut *w.tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("image {:?}", img.name)));
        }
        let mut freed = Vec::new();
        let mut seen = HashSet::new();
        for l in &img.manifest.layers {
            if !seen.insert(l.digest.as_str()) {
                continue;
            }
            let r = sqlx::query(
                "DELETE FROM image_blobs WHERE digest = $1 \
                 AND NOT EXISTS (SELECT 1 FROM image_layers l WHERE l.digest = $1)",
            )
            .bind(&l.digest)
            .execute(&mut *w.tx)
            .await?;
            if r.rows_affected() > 0 {
                freed.push(l.digest.clone());
            }
        }
        w.event(
            now,
            NewEvent {
                actor,
                action: "image.deleted",
                object_type: "image",
                object_id: img.image_id,
                object_name: &img.name,
                site_id: Some(img.site_id),
                detail: json!({"name": img.name, "digest": img.digest, "size": img.size,
                               "blobs_removed": freed}),
            },
        )
        .await?;
        w.commit().await?;
        Ok(freed)
    }
}

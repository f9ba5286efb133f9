//! The node's desired slivers (PlanetLab's GetSlivers): six queries per node, whatever the
//! registry's size: the node's live slices, their persons' keys (and a peer's slices' keys), their tags (with the published
//! image each `image` tag names, by a join), the default allocation in force on the node
//! (platform defaults and the node's overrides), and the keys of its staff (the site's PIs and
//! techs, the admins) for `ssh site_admin@NODE`.

use std::collections::{BTreeMap, HashMap};

use slicelab_model::defaults;
use slicelab_model::image::Visibility;
use slicelab_model::sliver::SliverKey;
use slicelab_model::tags::TagValue;
use slicelab_model::{DesiredSlivers, Node, SliverSpec, TagName};

use crate::{Result, Store};

impl Store {
    pub async fn desired_slivers(&self, node: &Node, now: i64) -> Result<DesiredSlivers> {
        Ok(self.desired_slivers_until(node, now).await?.0)
    }

    /// The desired slivers, and the next moment they change by the clock alone (a slice
    /// expiring, a lease starting or ending), so a long-poll knows when to look again without
    /// asking the database.
    pub async fn desired_slivers_until(
        &self,
        node: &Node,
        now: i64,
    ) -> Result<(DesiredSlivers, Option<i64>)> {
        let mut slivers = Vec::new();
        let mut next: Option<i64> = None;
        if node.boot_state != slicelab_model::BootState::Disabled {
            // A suspended peer's slices are kept, stopped (`model::peer`).
            let slices: Vec<(i64, String, i64, i64, i64)> = sqlx::query_as(
                "SELECT sl.id, sl.name, sl.expires, \
                 CASE WHEN p.state IS NULL OR p.state = 'active' THEN sl.enabled ELSE 0 END, \
                 sl.site_id FROM slices sl \
                 JOIN slice_nodes sn ON sn.slice_id = sl.id \
                 JOIN sites s ON s.id = sl.site_id LEFT JOIN peers p ON p.id = s.peer_id \
                 WHERE sn.node_id = $1 AND sl.expires > $2 ORDER BY sl.name",
            )
            .bind(node.id)
            .bind(now)
            .fetch_all(self.pool())
            .await?;
            let keys: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT sp.slice_id, p.email, k.key FROM slice_nodes sn \
                 JOIN slice_persons sp ON sp.slice_id = sn.slice_id \
                 JOIN persons p ON p.id = sp.person_id \
                 JOIN keys k ON k.person_id = p.id \
                 WHERE sn.node_id = $1 AND p.enabled = 1 ORDER BY p.email, k.id",
            )
            .bind(node.id)
            .fetch_all(self.pool())
            .await?;
            // An `image` tag brings the published image it names, if any.
            #[allow(clippy::type_complexity)]
            let tag_rows: Vec<(
                i64,
                String,
                String,
                Option<i64>,
                Option<String>,
                Option<String>,
                Option<i64>,
            )> = sqlx::query_as(
                "SELECT t.slice_id, t.name, t.value, t.node_id, i.digest, i.visibility, i.site_id \
                 FROM slice_tags t JOIN slice_nodes sn ON sn.slice_id = t.slice_id \
                 LEFT JOIN images i ON t.name = 'image' AND i.name = t.value \
                 WHERE sn.node_id = $1 AND (t.node_id IS NULL OR t.node_id = $1)",
            )
            .bind(node.id)
            .fetch_all(self.pool())
            .await?;
            // Published images by name: (digest, visible to every site, its site).
            let images: HashMap<&str, (&str, bool, Option<i64>)> = tag_rows
                .iter()
                .filter_map(|(_, _, value, _, digest, visibility, site)| {
                    let public = visibility.as_deref() == Some(Visibility::Platform.as_str());
                    Some((value.as_str(), (digest.as_deref()?, public, *site)))
                })
                .collect();
            let (platform, node_defaults) = self.defaults_for(node.id).await?;
            let mut keys_by_slice: BTreeMap<i64, Vec<SliverKey>> = BTreeMap::new();
            for (slice_id, person, key) in keys {
                keys_by_slice
                    .entry(slice_id)
                    .or_default()
                    .push(SliverKey { person, key });
            }
            // A peer's slices bring their persons' keys (the persons stay at home).
            let foreign: Vec<(i64, String)> = sqlx::query_as(
                "SELECT ps.slice_id, ps.keys FROM peer_slices ps \
                 JOIN slice_nodes sn ON sn.slice_id = ps.slice_id WHERE sn.node_id = $1",
            )
            .bind(node.id)
            .fetch_all(self.pool())
            .await?;
            for (slice_id, keys) in foreign {
                let keys: Vec<SliverKey> = serde_json::from_str(&keys).unwrap_or_default();
                keys_by_slice.entry(slice_id).or_default().extend(keys);
            }
            let runs = node.boot_state.runs_slivers();
            // On a reservable node only the slice holding the current lease runs; the others
            // are kept, paused.
            let leased_to = if node.reservable {
                Some(self.active_lease(node.id, now).await?)
            } else {
                None
            };
            next = slices.iter().map(|s| s.2).min();
            if node.reservable {
                if let Some(b) = self.next_lease_boundary(node.id, now).await? {
                    next = Some(next.map_or(b, |n| n.min(b)));
                }
            }
            for (id, name, expires, enabled, site_id) in slices {
                let tags = tag_rows.iter().filter(|t| t.0 == id).filter_map(
                    |(_, n, v, node_id, _, _, _)| {
                        Some(TagValue {
                            name: TagName::parse(n).ok()?,
                            value: v,
                            node_id: *node_id,
                        })
                    },
                );
                let resources = defaults::resolve(
                    platform.iter().map(|(t, v)| (*t, v.as_str())),
                    node_defaults.iter().map(|(t, v)| (*t, v.as_str())),
                    tags,
                    node.id,
                );
                // The image the resolved tag names, if published and visible to the slice's
                // site; `None` for the built-in image (and for names only a node knows).
                let image_digest = resources
                    .image
                    .as_deref()
                    .and_then(|n| images.get(n))
                    .filter(|(_, public, site)| *public || *site == Some(site_id))
                    .map(|(digest, _, _)| digest.to_string());
                slivers.push(SliverSpec {
                    slice_id: id,
                    slice_name: name,
                    expires,
                    run: runs && enabled != 0 && leased_to.is_none_or(|holder| holder == Some(id)),
                    keys: keys_by_slice.remove(&id).unwrap_or_default(),
                    resources,
                    image_digest,
                });
            }
        }
        let staff = self.node_staff(node).await?;
        let revision = DesiredSlivers::compute_revision(
            node.id,
            node.boot_state,
            &slivers,
            &staff,
            node.bwlimit,
        );
        Ok((
            DesiredSlivers {
                node_id: node.id,
                hostname: node.hostname.clone(),
                boot_state: node.boot_state,
                revision,
                slivers,
                staff,
                bwlimit: node.bwlimit,
            },
            next,
        ))
    }

    /// The keys of who may use the node's admin context (`ssh site_admin@NODE`): enabled PIs
    /// and techs of the node's site, and enabled admins (everywhere). Even a disabled node
    /// lists them: its staff may still need to look at it.
    async fn node_staff(&self, node: &Node) -> Result<Vec<SliverKey>> {
        // roles is a sorted comma list; match whole elements.
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT p.email, k.key FROM persons p JOIN keys k ON k.person_id = p.id \
             WHERE p.enabled = 1 AND ((',' || p.roles || ',') LIKE '%,admin,%' \
               OR (((',' || p.roles || ',') LIKE '%,pi,%' OR (',' || p.roles || ',') LIKE '%,tech,%') \
                   AND EXISTS (SELECT 1 FROM person_sites ps \
                               WHERE ps.person_id = p.id AND ps.site_id = $1))) \
             ORDER BY p.email, k.id",
        )
        .bind(node.site_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(person, key)| SliverKey { person, key })
            .collect())
    }
}

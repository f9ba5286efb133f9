//! The node's desired slivers (PlanetLab's GetSlivers), in two parts that change apart:
//!
//! - each slice's part ([`SliceInputs`]): the slice, its nodes, its persons' keys (and a peer's
//!   slice's keys), its tags with the published image each `image` tag names (by a join) —
//!   the same for every node of the slice, but for node-specific tags;
//! - each node's own part ([`NodeInputs`]): the node, the default allocation in force on it
//!   (platform defaults and the node's overrides), the keys of its staff (the site's PIs and
//!   techs, the admins: `ssh site_admin@NODE`) and, on a reservable node, its leases.
//!
//! [`assemble`] (pure) makes a node's [`DesiredSlivers`] from its part and its slices' parts.
//! Central keeps both parts in memory and reloads only what a write changed
//! (`central::desired`); [`Store::desired_slivers_until`] is the same thing read straight from
//! the database for one node (five queries, six on a reservable node).

use std::collections::{BTreeMap, HashMap};

use slicelab_model::defaults;
use slicelab_model::image::Visibility;
use slicelab_model::sliver::SliverKey;
use slicelab_model::tags::TagValue;
use slicelab_model::{BootState, DesiredSlivers, Node, SliverSpec, TagName};

use crate::{Result, Store};

/// Which slices' parts to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesiredScope {
    /// Every slice (expired ones too: [`assemble`] leaves them out).
    All,
    /// One slice (none if it is gone).
    Slice(i64),
    /// The slices on one node, with only that node in their node lists and tags.
    Node(i64),
}

/// A published image an `image` tag names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedImage {
    pub digest: String,
    /// Visible to every site (else only to `site_id`'s slices).
    pub public: bool,
    pub site_id: Option<i64>,
}

/// One tag of a slice: slice-wide (`node_id` None) or one node's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceTagInput {
    pub name: String,
    pub value: String,
    pub node_id: Option<i64>,
    /// For an `image` tag naming a published image: that image.
    pub image: Option<PublishedImage>,
}

/// A slice's part of the desired state of each of its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInputs {
    pub id: i64,
    pub name: String,
    pub expires: i64,
    /// Enabled, and not a suspended peer's slice (`model::peer`: kept, stopped).
    pub enabled: bool,
    pub site_id: i64,
    /// Its nodes: (id, hostname), by id.
    pub nodes: Vec<(i64, String)>,
    /// Its enabled persons' keys (by email, then key), then a peer's slice's keys.
    pub keys: Vec<SliverKey>,
    pub tags: Vec<SliceTagInput>,
}

/// A node's own part of its desired state.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInputs {
    pub node: Node,
    pub platform_defaults: Vec<(TagName, String)>,
    pub node_defaults: Vec<(TagName, String)>,
    pub staff: Vec<SliverKey>,
    /// (slice, start, end) of the node's leases not over when read (reservable nodes only).
    pub leases: Vec<(i64, i64, i64)>,
}

impl DesiredScope {
    /// The condition on `col` (a slice id column) selecting this scope; binds `$1` unless `All`.
    fn on(self, col: &str) -> String {
        match self {
            DesiredScope::All => "1 = 1".into(),
            DesiredScope::Slice(_) => format!("{col} = $1"),
            DesiredScope::Node(_) => {
                format!("{col} IN (SELECT slice_id FROM slice_nodes WHERE node_id = $1)")
            }
        }
    }

    fn id(self) -> Option<i64> {
        match self {
            DesiredScope::All => None,
            DesiredScope::Slice(id) | DesiredScope::Node(id) => Some(id),
        }
    }
}

type TagRow = (
    i64,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

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
        let inputs = self.node_inputs(node.clone(), now).await?;
        let slices = if node.boot_state == BootState::Disabled {
            Vec::new()
        } else {
            self.slice_inputs(DesiredScope::Node(node.id)).await?
        };
        Ok(assemble(&inputs, slices.iter(), now))
    }

    /// The slices' parts in `scope`, by id.
    pub async fn slice_inputs(&self, scope: DesiredScope) -> Result<Vec<SliceInputs>> {
        let bind = scope.id().unwrap_or_default();
        // A suspended peer's slices are kept, stopped (`model::peer`).
        let sql = format!(
            "SELECT sl.id, sl.name, sl.expires, \
             CASE WHEN p.state IS NULL OR p.state = 'active' THEN sl.enabled ELSE 0 END, \
             sl.site_id FROM slices sl \
             JOIN sites s ON s.id = sl.site_id LEFT JOIN peers p ON p.id = s.peer_id \
             WHERE {} ORDER BY sl.id",
            scope.on("sl.id")
        );
        let q = sqlx::query_as(&sql);
        let q = if scope.id().is_some() {
            q.bind(bind)
        } else {
            q
        };
        let rows: Vec<(i64, String, i64, i64, i64)> = q.fetch_all(self.pool()).await?;
        let mut out: BTreeMap<i64, SliceInputs> = rows
            .into_iter()
            .map(|(id, name, expires, enabled, site_id)| {
                let s = SliceInputs {
                    id,
                    name,
                    expires,
                    enabled: enabled != 0,
                    site_id,
                    nodes: Vec::new(),
                    keys: Vec::new(),
                    tags: Vec::new(),
                };
                (id, s)
            })
            .collect();
        if out.is_empty() {
            return Ok(Vec::new());
        }

        let nodes_on = match scope {
            DesiredScope::Node(_) => "sn.node_id = $1".to_string(),
            _ => scope.on("sn.slice_id"),
        };
        let sql = format!(
            "SELECT sn.slice_id, n.id, n.hostname FROM slice_nodes sn \
             JOIN nodes n ON n.id = sn.node_id WHERE {nodes_on} ORDER BY sn.slice_id, n.id"
        );
        let q = sqlx::query_as(&sql);
        let q = if scope.id().is_some() {
            q.bind(bind)
        } else {
            q
        };
        let rows: Vec<(i64, i64, String)> = q.fetch_all(self.pool()).await?;
        for (slice_id, node_id, hostname) in rows {
            if let Some(s) = out.get_mut(&slice_id) {
                s.nodes.push((node_id, hostname));
            }
        }

        let sql = format!(
            "SELECT sp.slice_id, p.email, k.key FROM slice_persons sp \
             JOIN persons p ON p.id = sp.person_id JOIN keys k ON k.person_id = p.id \
             WHERE p.enabled = 1 AND {} ORDER BY p.email, k.id",
            scope.on("sp.slice_id")
        );
        let q = sqlx::query_as(&sql);
        let q = if scope.id().is_some() {
            q.bind(bind)
        } else {
            q
        };
        let rows: Vec<(i64, String, String)> = q.fetch_all(self.pool()).await?;
        for (slice_id, person, key) in rows {
            if let Some(s) = out.get_mut(&slice_id) {
                s.keys.push(SliverKey { person, key });
            }
        }
        // A peer's slices bring their persons' keys (the persons stay at home).
        let sql = format!(
            "SELECT ps.slice_id, ps.keys FROM peer_slices ps WHERE {}",
            scope.on("ps.slice_id")
        );
        let q = sqlx::query_as(&sql);
        let q = if scope.id().is_some() {
            q.bind(bind)
        } else {
            q
        };
        let rows: Vec<(i64, String)> = q.fetch_all(self.pool()).await?;
        for (slice_id, keys) in rows {
            let keys: Vec<SliverKey> = serde_json::from_str(&keys).unwrap_or_default();
            if let Some(s) = out.get_mut(&slice_id) {
                s.keys.extend(keys);
            }
        }

        // An `image` tag brings the published image it names, if any.
        let node_only = match scope {
            DesiredScope::Node(_) => " AND (t.node_id IS NULL OR t.node_id = $1)",
            _ => "",
        };
        let sql = format!(
            "SELECT t.slice_id, t.name, t.value, t.node_id, i.digest, i.visibility, i.site_id \
             FROM slice_tags t LEFT JOIN images i ON t.name = 'image' AND i.name = t.value \
             WHERE {}{node_only} ORDER BY t.slice_id, t.name, t.node_id, t.value",
            scope.on("t.slice_id")
        );
        let q = sqlx::query_as(&sql);
        let q = if scope.id().is_some() {
            q.bind(bind)
        } else {
            q
        };
        let rows: Vec<TagRow> = q.fetch_all(self.pool()).await?;
        for (slice_id, name, value, node_id, digest, visibility, site_id) in rows {
            let image = digest.map(|digest| PublishedImage {
                digest,
                public: visibility.as_deref() == Some(Visibility::Platform.as_str()),
                site_id,
            });
            if let Some(s) = out.get_mut(&slice_id) {
                s.tags.push(SliceTagInput {
                    name,
                    value,
                    node_id,
                    image,
                });
            }
        }
        Ok(out.into_values().collect())
    }

    /// The node's own part of its desired state (`node` as read; its leases as of `now`).
    pub async fn node_inputs(&self, node: Node, now: i64) -> Result<NodeInputs> {
        let (platform_defaults, node_defaults) = self.defaults_for(node.id).await?;
        let staff = self.node_staff(&node).await?;
        let leases = if node.reservable {
            sqlx::query_as(
                "SELECT slice_id, t_start, t_end FROM leases WHERE node_id = $1 AND t_end > $2 \
                 ORDER BY t_start",
            )
            .bind(node.id)
            .bind(now)
            .fetch_all(self.pool())
            .await?
        } else {
            Vec::new()
        };
        Ok(NodeInputs {
            node,
            platform_defaults,
            node_defaults,
            staff,
            leases,
        })
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

/// A node's desired slivers from its own part and the parts of the slices on it (others are
/// skipped), at `now`; and the next moment they change by the clock alone (a slice expiring, a
/// lease starting or ending). Pure: central calls it on what it keeps in memory.
pub fn assemble<'a>(
    inputs: &NodeInputs,
    slices: impl IntoIterator<Item = &'a SliceInputs>,
    now: i64,
) -> (DesiredSlivers, Option<i64>) {
    let node = &inputs.node;
    let mut slivers = Vec::new();
    let mut next: Option<i64> = None;
    if node.boot_state != BootState::Disabled {
        let mut mine: Vec<&SliceInputs> = slices
            .into_iter()
            .filter(|s| s.expires > now && s.nodes.iter().any(|(id, _)| *id == node.id))
            .collect();
        mine.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        let applies = |t: &&SliceTagInput| t.node_id.is_none_or(|n| n == node.id);
        // Published images by name, as any tag of the node's slices names them.
        let images: HashMap<&str, &PublishedImage> = mine
            .iter()
            .flat_map(|s| s.tags.iter().filter(applies))
            .filter_map(|t| Some((t.value.as_str(), t.image.as_ref()?)))
            .collect();
        let runs = node.boot_state.runs_slivers();
        // On a reservable node only the slice holding the current lease runs; the others are
        // kept, paused.
        let leased_to = node.reservable.then(|| {
            inputs
                .leases
                .iter()
                .find(|(_, start, end)| *start <= now && *end > now)
                .map(|(slice, _, _)| *slice)
        });
        next = mine.iter().map(|s| s.expires).min();
        if node.reservable {
            let boundary = inputs
                .leases
                .iter()
                .filter(|(_, _, end)| *end > now)
                .map(|(_, start, end)| if *start > now { *start } else { *end })
                .min();
            if let Some(b) = boundary {
                next = Some(next.map_or(b, |n| n.min(b)));
            }
        }
        for s in mine {
            let tags = s.tags.iter().filter(applies).filter_map(|t| {
                Some(TagValue {
                    name: TagName::parse(&t.name).ok()?,
                    value: &t.value,
                    node_id: t.node_id,
                })
            });
            let resources = defaults::resolve(
                inputs
                    .platform_defaults
                    .iter()
                    .map(|(t, v)| (*t, v.as_str())),
                inputs.node_defaults.iter().map(|(t, v)| (*t, v.as_str())),
                tags,
                node.id,
            );
            // The image the resolved tag names, if published and visible to the slice's site;
            // `None` for the built-in image (and for names only a node knows).
            let image_digest = resources
                .image
                .as_deref()
                .and_then(|n| images.get(n))
                .filter(|i| i.public || i.site_id == Some(s.site_id))
                .map(|i| i.digest.clone());
            slivers.push(SliverSpec {
                slice_id: s.id,
                slice_name: s.name.clone(),
                expires: s.expires,
                run: runs && s.enabled && leased_to.is_none_or(|holder| holder == Some(s.id)),
                keys: s.keys.clone(),
                resources,
                image_digest,
            });
        }
    }
    let staff = inputs.staff.clone();
    let revision =
        DesiredSlivers::compute_revision(node.id, node.boot_state, &slivers, &staff, node.bwlimit);
    (
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
    )
}

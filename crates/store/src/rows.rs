//! Row shapes as the SQL returns them, and their conversion to model types.

use slicelab_model::{BootState, Event, Key, Node, NodeStatus, Role, Site};

#[derive(sqlx::FromRow)]
pub(crate) struct SiteRow {
    pub id: i64,
    pub login_base: String,
    pub name: String,
    pub url: String,
    pub max_slices: i64,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub enabled: i64,
    pub created: i64,
    pub image_quota_mb: i64,
    pub image_used_bytes: i64,
}

/// A site's columns, and the bytes of its `site` images: what counts against its image quota,
/// defined here only (`create_image` checks the quota on this row). Select them `FROM sites`.
pub(crate) const SITE_COLS: &str =
    "id, login_base, name, url, max_slices, latitude, longitude, enabled, created, image_quota_mb, \
     (SELECT CAST(COALESCE(SUM(i.size), 0) AS BIGINT) FROM images i \
      WHERE i.site_id = sites.id AND i.visibility = 'site') AS image_used_bytes";

impl From<SiteRow> for Site {
    fn from(r: SiteRow) -> Site {
        Site {
            id: r.id,
            login_base: r.login_base,
            name: r.name,
            url: r.url,
            max_slices: r.max_slices,
            latitude: r.latitude,
            longitude: r.longitude,
            enabled: r.enabled != 0,
            created: r.created,
            image_quota_mb: r.image_quota_mb,
            image_used_bytes: u64::try_from(r.image_used_bytes).unwrap_or(0),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PersonRow {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub password_hash: Option<String>,
    pub roles: String,
    pub enabled: i64,
    pub created: i64,
}

pub(crate) const PERSON_COLS: &str =
    "p.id, p.email, p.first_name, p.last_name, p.password_hash, p.roles, p.enabled, p.created";

pub(crate) fn roles_to_text(roles: &[Role]) -> String {
    let mut r: Vec<Role> = roles.to_vec();
    r.sort();
    r.dedup();
    r.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

pub(crate) fn roles_from_text(s: &str) -> Vec<Role> {
    s.split(',').filter_map(|r| Role::parse(r).ok()).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct NodeRow {
    pub id: i64,
    pub hostname: String,
    pub site: String,
    pub site_id: i64,
    pub boot_state: String,
    pub cpu_cores: i64,
    pub mem_mb: i64,
    pub disk_gb: i64,
    pub region: String,
    pub last_contact: Option<i64>,
    pub status: String,
    pub reservable: i64,
    pub created: i64,
    pub bwlimit: Option<i64>,
    pub authority: Option<String>,
}

pub(crate) const NODE_COLS: &str =
    "n.id, n.hostname, s.login_base AS site, n.site_id, n.boot_state, \
     n.cpu_cores, n.mem_mb, n.disk_gb, n.region, n.last_contact, n.status, n.reservable, n.created, \
     n.bwlimit, CASE WHEN s.peer_id IS NULL THEN NULL ELSE s.login_base END AS authority";

impl From<NodeRow> for Node {
    fn from(r: NodeRow) -> Node {
        Node {
            id: r.id,
            hostname: r.hostname,
            site: r.site,
            site_id: r.site_id,
            // Only values we wrote are stored; fall back to the safest state if not.
            boot_state: BootState::parse(&r.boot_state).unwrap_or(BootState::Disabled),
            cpu_cores: r.cpu_cores,
            mem_mb: r.mem_mb,
            disk_gb: r.disk_gb,
            region: r.region,
            last_contact: r.last_contact,
            status: NodeStatus::parse(&r.status).unwrap_or(NodeStatus::Down),
            reservable: r.reservable != 0,
            created: r.created,
            bwlimit: r.bwlimit.and_then(|b| u64::try_from(b).ok()),
            authority: r.authority,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    pub id: i64,
    pub person_id: i64,
    pub person: String,
    pub key: String,
    pub created: i64,
}

impl From<KeyRow> for Key {
    fn from(r: KeyRow) -> Key {
        Key {
            id: r.id,
            person_id: r.person_id,
            person: r.person,
            key: r.key,
            created: r.created,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    pub id: i64,
    pub time: i64,
    pub actor: String,
    pub action: String,
    pub object_type: String,
    pub object_id: i64,
    pub object_name: String,
    pub detail: String,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Event {
        Event {
            id: r.id,
            time: r.time,
            actor: r.actor,
            action: r.action,
            object_type: r.object_type,
            object_id: r.object_id,
            object_name: r.object_name,
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// `id` if `key` is all digits, for lookups by id or name.
pub(crate) fn as_id(key: &str) -> Option<i64> {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
        key.parse().ok()
    } else {
        None
    }
}

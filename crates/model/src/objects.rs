//! Registry objects as the API shows them, and the request bodies that create or change them.
//!
//! Request bodies reject unknown fields: a misspelt field must be an error, not silently ignored.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Invalid, ValidationError};
use crate::{names, schema};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Pi,
    Tech,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Pi => "pi",
            Role::Tech => "tech",
            Role::User => "user",
        }
    }
    pub fn parse(s: &str) -> Invalid<Role> {
        match s {
            "admin" => Ok(Role::Admin),
            "pi" => Ok(Role::Pi),
            "tech" => Ok(Role::Tech),
            "user" => Ok(Role::User),
            _ => Err(ValidationError::new(
                "role",
                format!("unknown role {s:?}; expected admin, pi, tech or user"),
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BootState {
    /// Normal operation: slivers run.
    Boot,
    /// Node manager reachable, all slivers stopped (maintenance, incident response).
    Safeboot,
    /// Being reinstalled; slivers stopped.
    Reinstall,
    /// Out of service; nothing is handed to it.
    Disabled,
}

impl BootState {
    pub fn as_str(self) -> &'static str {
        match self {
            BootState::Boot => "boot",
            BootState::Safeboot => "safeboot",
            BootState::Reinstall => "reinstall",
            BootState::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> Invalid<BootState> {
        match s {
            "boot" => Ok(BootState::Boot),
            "safeboot" => Ok(BootState::Safeboot),
            "reinstall" => Ok(BootState::Reinstall),
            "disabled" => Ok(BootState::Disabled),
            _ => Err(ValidationError::new(
                "boot_state",
                format!("unknown boot state {s:?}; expected boot, safeboot, reinstall or disabled"),
            )),
        }
    }
    /// Whether slivers run on a node in this state.
    pub fn runs_slivers(self) -> bool {
        self == BootState::Boot
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Site {
    pub id: i64,
    pub login_base: String,
    pub name: String,
    pub url: String,
    pub max_slices: i64,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub enabled: bool,
    pub created: i64,
    /// MiB its `site` images may take together (publishing beyond it is refused).
    pub image_quota_mb: i64,
    /// Bytes its `site` images take now (what counts against `image_quota_mb`).
    pub image_used_bytes: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteCreate {
    #[schema(schema_with = schema::login_base)]
    pub login_base: String,
    #[schema(schema_with = schema::name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = schema::url)]
    pub url: String,
    #[serde(default = "default_max_slices")]
    #[schema(minimum = 0, maximum = 10000, default = 10)]
    pub max_slices: i64,
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: Option<f64>,
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: Option<f64>,
}

fn default_max_slices() -> i64 {
    10
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteUpdate {
    #[schema(schema_with = schema::name_or_null)]
    pub name: Option<String>,
    #[schema(schema_with = schema::url_or_null)]
    pub url: Option<String>,
    /// Admins only.
    #[schema(minimum = 0, maximum = 10000)]
    pub max_slices: Option<i64>,
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: Option<f64>,
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: Option<f64>,
    /// Admins only.
    pub enabled: Option<bool>,
    /// Admins only. MiB the site's `site` images may take together; lowering it below what they
    /// use refuses new ones but removes none.
    #[schema(minimum = 0, maximum = 10000000)]
    pub image_quota_mb: Option<i64>,
}

fn check_location(lat: Option<f64>, lon: Option<f64>) -> Invalid<()> {
    if let Some(l) = lat {
        if !(-90.0..=90.0).contains(&l) {
            return Err(ValidationError::new(
                "latitude",
                format!("{l} is outside -90..90"),
            ));
        }
    }
    if let Some(l) = lon {
        if !(-180.0..=180.0).contains(&l) {
            return Err(ValidationError::new(
                "longitude",
                format!("{l} is outside -180..180"),
            ));
        }
    }
    Ok(())
}

/// The largest image quota, in MiB (about 9.5 TiB).
pub const IMAGE_QUOTA_MB_MAX: i64 = 10_000_000;

fn check_image_quota_mb(n: i64) -> Invalid<()> {
    if !(0..=IMAGE_QUOTA_MB_MAX).contains(&n) {
        return Err(ValidationError::new(
            "image_quota_mb",
            format!("{n} is outside 0..={IMAGE_QUOTA_MB_MAX}"),
        ));
    }
    Ok(())
}

fn check_max_slices(n: i64) -> Invalid<()> {
    if !(0..=10_000).contains(&n) {
        return Err(ValidationError::new(
            "max_slices",
            format!("{n} is outside 0..=10000"),
        ));
    }
    Ok(())
}

impl SiteCreate {
    pub fn validate(&self) -> Invalid<()> {
        names::login_base(&self.login_base)?;
        names::required_text("name", &self.name, names::TEXT_MAX)?;
        names::text("url", &self.url, names::TEXT_MAX)?;
        check_max_slices(self.max_slices)?;
        check_location(self.latitude, self.longitude)
    }
}

impl SiteUpdate {
    /// Whether it changes what only admins may change.
    pub fn has_admin_fields(&self) -> bool {
        self.max_slices.is_some() || self.enabled.is_some() || self.image_quota_mb.is_some()
    }

    pub fn validate(&self) -> Invalid<()> {
        if let Some(n) = &self.name {
            names::required_text("name", n, names::TEXT_MAX)?;
        }
        if let Some(u) = &self.url {
            names::text("url", u, names::TEXT_MAX)?;
        }
        if let Some(m) = self.max_slices {
            check_max_slices(m)?;
        }
        if let Some(q) = self.image_quota_mb {
            check_image_quota_mb(q)?;
        }
        check_location(self.latitude, self.longitude)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub roles: Vec<Role>,
    /// `login_base` of each site the person belongs to.
    pub sites: Vec<String>,
    pub enabled: bool,
    pub created: i64,
}

impl Person {
    pub fn has_role(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonCreate {
    #[schema(schema_with = schema::email)]
    pub email: String,
    #[schema(schema_with = schema::name)]
    pub first_name: String,
    #[schema(schema_with = schema::name)]
    pub last_name: String,
    #[schema(schema_with = schema::password_or_null)]
    pub password: Option<String>,
    /// At least one (an empty or missing list is refused).
    #[serde(default)]
    #[schema(min_items = 1, required = true)]
    pub roles: Vec<Role>,
    /// Sites by `login_base`.
    #[serde(default)]
    pub sites: Vec<String>,
}

impl PersonCreate {
    pub fn validate(&self) -> Invalid<()> {
        names::email(&self.email)?;
        names::required_text("first_name", &self.first_name, names::TEXT_MAX)?;
        names::required_text("last_name", &self.last_name, names::TEXT_MAX)?;
        if let Some(p) = &self.password {
            names::password(p)?;
        }
        if self.roles.is_empty() {
            return Err(ValidationError::new(
                "roles",
                "a person needs at least one role",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonUpdate {
    #[schema(schema_with = schema::name_or_null)]
    pub first_name: Option<String>,
    #[schema(schema_with = schema::name_or_null)]
    pub last_name: Option<String>,
    /// The person itself and admins only.
    #[schema(schema_with = schema::password_or_null)]
    pub password: Option<String>,
    #[schema(min_items = 1)]
    pub roles: Option<Vec<Role>>,
    pub sites: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

impl PersonUpdate {
    pub fn validate(&self) -> Invalid<()> {
        if let Some(v) = &self.first_name {
            names::required_text("first_name", v, names::TEXT_MAX)?;
        }
        if let Some(v) = &self.last_name {
            names::required_text("last_name", v, names::TEXT_MAX)?;
        }
        if let Some(p) = &self.password {
            names::password(p)?;
        }
        if let Some(r) = &self.roles {
            if r.is_empty() {
                return Err(ValidationError::new(
                    "roles",
                    "a person needs at least one role",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Key {
    pub id: i64,
    pub person_id: i64,
    pub person: String,
    /// OpenSSH `authorized_keys` format.
    pub key: String,
    pub created: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyCreate {
    /// An OpenSSH public key (`ssh-ed25519 AAAA... comment`).
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Node {
    pub id: i64,
    pub hostname: String,
    pub site: String,
    pub site_id: i64,
    pub boot_state: BootState,
    pub cpu_cores: i64,
    pub mem_mb: i64,
    pub disk_gb: i64,
    /// Free-form region for placement (`europe`, `north-america`, ...).
    pub region: String,
    /// Last time the node manager talked to central (Unix seconds).
    pub last_contact: Option<i64>,
    /// Whether its manager is reporting (`up`), has stopped (`down`), or never did (`new`).
    pub status: NodeStatus,
    /// Reservable nodes run a sliver only during its slice's lease.
    pub reservable: bool,
    pub created: i64,
    /// The site's cap on the total egress of the node's slivers, bits/s (shared by their
    /// `net_share`; the node's own traffic keeps a reserved part); absent: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bwlimit: Option<u64>,
    /// The peer authority the node belongs to (federation); absent for our own nodes. A peer's
    /// nodes are read-only here: their authority decides what runs on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    New,
    Up,
    Down,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::New => "new",
            NodeStatus::Up => "up",
            NodeStatus::Down => "down",
        }
    }
    pub fn parse(s: &str) -> Option<NodeStatus> {
        match s {
            "new" => Some(NodeStatus::New),
            "up" => Some(NodeStatus::Up),
            "down" => Some(NodeStatus::Down),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeCreate {
    #[schema(schema_with = schema::hostname)]
    pub hostname: String,
    /// Site `login_base` or id.
    pub site: String,
    #[serde(default = "default_boot_state")]
    pub boot_state: BootState,
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 4096, default = 1)]
    pub cpu_cores: i64,
    #[serde(default = "default_mem")]
    #[schema(minimum = 1, maximum = 1073741824, default = 1024)]
    pub mem_mb: i64,
    #[serde(default = "default_disk")]
    #[schema(minimum = 1, maximum = 1073741824, default = 10)]
    pub disk_gb: i64,
    #[serde(default)]
    #[schema(schema_with = schema::region)]
    pub region: String,
    #[serde(default)]
    pub reservable: bool,
}

fn default_boot_state() -> BootState {
    BootState::Boot
}
fn one() -> i64 {
    1
}
fn default_mem() -> i64 {
    1024
}
fn default_disk() -> i64 {
    10
}

fn check_capacity(cpu: Option<i64>, mem: Option<i64>, disk: Option<i64>) -> Invalid<()> {
    for (f, v, max) in [
        ("cpu_cores", cpu, 4096),
        ("mem_mb", mem, 1 << 30),
        ("disk_gb", disk, 1 << 30),
    ] {
        if let Some(v) = v {
            if v < 1 || v > max {
                return Err(ValidationError::new(f, format!("{v} is outside 1..={max}")));
            }
        }
    }
    Ok(())
}

impl NodeCreate {
    pub fn validate(&self) -> Invalid<()> {
        names::hostname(&self.hostname)?;
        check_capacity(Some(self.cpu_cores), Some(self.mem_mb), Some(self.disk_gb))?;
        names::region(&self.region)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeUpdate {
    pub boot_state: Option<BootState>,
    #[schema(minimum = 1, maximum = 4096)]
    pub cpu_cores: Option<i64>,
    #[schema(minimum = 1, maximum = 1073741824)]
    pub mem_mb: Option<i64>,
    #[schema(minimum = 1, maximum = 1073741824)]
    pub disk_gb: Option<i64>,
    #[schema(schema_with = schema::region_or_null)]
    pub region: Option<String>,
    pub reservable: Option<bool>,
    /// The site's cap on the slivers' total egress, bits/s; `null` removes it, absent keeps it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>, minimum = 1000000, maximum = 100000000000_f64)]
    pub bwlimit: Option<Option<u64>>,
}

/// Bounds of a node's `bwlimit`, bits/s: at least 1 Mbit/s (the node's own traffic keeps part of
/// it), at most 100 Gbit/s.
pub const BWLIMIT_MIN: u64 = 1_000_000;
pub const BWLIMIT_MAX: u64 = 100_000_000_000;

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value (`Some(Some(v))`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Checks a node's `bwlimit` (bits/s).
pub fn check_bwlimit(v: u64) -> Invalid<()> {
    if !(BWLIMIT_MIN..=BWLIMIT_MAX).contains(&v) {
        return Err(ValidationError::new(
            "bwlimit",
            format!("{v} bit/s is outside {BWLIMIT_MIN}..={BWLIMIT_MAX}"),
        ));
    }
    Ok(())
}

/// A `bwlimit` as people type it: a rate (`30mbit`, see [`crate::tags::parse_rate`]), or `none`
/// for no cap.
pub fn parse_bwlimit(s: &str) -> Invalid<Option<u64>> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let v = crate::tags::parse_rate(crate::TagName::NetMaxRate, t)
        .map_err(|e| ValidationError::new("bwlimit", e.message))?;
    check_bwlimit(v)?;
    Ok(Some(v))
}

impl NodeUpdate {
    pub fn validate(&self) -> Invalid<()> {
        check_capacity(self.cpu_cores, self.mem_mb, self.disk_gb)?;
        if let Some(r) = &self.region {
            names::region(r)?;
        }
        if let Some(Some(b)) = self.bwlimit {
            check_bwlimit(b)?;
        }
        Ok(())
    }
}

/// A node just added (or re-keyed): the one time its key is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeWithKey {
    pub node: Node,
    /// Give this to `slicelab node --key`; central keeps only its hash.
    pub node_key: String,
}

/// Asks for a join token for a node (`slicelab node add` does, and `node join-token`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenCreate {
    /// Seconds the token stays valid, at most 7 days [default: 24 hours].
    #[serde(default)]
    #[schema(minimum = 1, maximum = 604800)]
    pub ttl_secs: Option<i64>,
}

/// A single-use, expiring token a new machine exchanges for its node key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JoinToken {
    /// Give this to `slicelab node join`; central keeps only its hash.
    pub token: String,
    /// The node it joins (hostname).
    pub node: String,
    /// When it stops working (seconds since the epoch).
    pub expires: i64,
}

/// What a joining node manager sends: the token it was given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    #[schema(max_length = 200)]
    pub token: String,
}

/// Default and bounds of a join token's life, in seconds.
pub const JOIN_TOKEN_TTL: i64 = 24 * 3600;
pub const JOIN_TOKEN_TTL_MIN: i64 = 1;
pub const JOIN_TOKEN_TTL_MAX: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Slice {
    pub id: i64,
    pub name: String,
    pub site: String,
    pub site_id: i64,
    pub description: String,
    pub url: String,
    /// Unix seconds; an expired slice is no longer handed to nodes.
    pub expires: i64,
    /// An admin can disable a misbehaving slice everywhere at once.
    pub enabled: bool,
    pub created: i64,
    /// Hostnames of the slice's nodes.
    pub nodes: Vec<String>,
    /// Emails of the slice's persons.
    pub persons: Vec<String>,
    /// The peer authority whose slice this is (it runs here on our nodes, named
    /// `<authority>_<its name there>`); absent for our own slices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SliceCreate {
    /// `<login_base>_<suffix>`: the slice belongs to the site whose `login_base` it starts with.
    #[schema(schema_with = schema::slice_name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = schema::description)]
    pub description: String,
    #[serde(default)]
    #[schema(schema_with = schema::url)]
    pub url: String,
}

impl SliceCreate {
    pub fn validate(&self, site_login_base: &str) -> Invalid<()> {
        names::slice_name(&self.name, site_login_base)?;
        names::text("description", &self.description, names::DESCRIPTION_MAX)?;
        names::text("url", &self.url, names::TEXT_MAX)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SliceUpdate {
    #[schema(schema_with = schema::description_or_null)]
    pub description: Option<String>,
    #[schema(schema_with = schema::url_or_null)]
    pub url: Option<String>,
    /// Admins only.
    pub enabled: Option<bool>,
}

impl SliceUpdate {
    pub fn validate(&self) -> Invalid<()> {
        if let Some(d) = &self.description {
            names::text("description", d, names::DESCRIPTION_MAX)?;
        }
        if let Some(u) = &self.url {
            names::text("url", u, names::TEXT_MAX)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SliceRenew {
    /// New expiry, Unix seconds. Give this or `days`.
    pub expires: Option<i64>,
    /// Renew to this many days from now.
    #[schema(minimum = 1, maximum = 365)]
    pub days: Option<i64>,
}

/// Node or person names (hostname / email) or ids as strings.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameList {
    #[schema(max_items = 10000)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SliceTag {
    pub id: i64,
    pub slice: String,
    pub name: crate::tags::TagName,
    pub value: String,
    /// Hostname, if the tag applies to one node only.
    pub node: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SliceTagSet {
    pub value: String,
    /// Hostname or id: set the tag for this node only.
    pub node: Option<String>,
}

/// A time-bounded exclusive reservation of a reservable node for a slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    pub id: i64,
    pub slice: String,
    pub node: String,
    /// Unix seconds, inclusive.
    pub start: i64,
    /// Unix seconds, exclusive.
    pub end: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseCreate {
    /// Slice name or id.
    pub slice: String,
    /// Node hostname or id.
    pub node: String,
    #[serde(deserialize_with = "crate::wire::unix_time")]
    #[schema(minimum = 0, maximum = 253402300799_i64)]
    pub start: i64,
    #[serde(deserialize_with = "crate::wire::unix_time")]
    #[schema(minimum = 0, maximum = 253402300799_i64)]
    pub end: i64,
}

/// Longest single lease.
pub const LEASE_MAX: i64 = crate::time::WEEK;

impl LeaseCreate {
    /// Checks the window against `now`: it ends in the future, after it starts, within bounds.
    pub fn validate(&self, now: i64) -> Invalid<()> {
        if self.end <= self.start {
            return Err(ValidationError::new("end", "must be after start"));
        }
        if self.end <= now {
            return Err(ValidationError::new("end", "must be in the future"));
        }
        if self.end - self.start > LEASE_MAX {
            return Err(ValidationError::new(
                "end",
                format!(
                    "a lease lasts at most {} days",
                    LEASE_MAX / crate::time::DAY
                ),
            ));
        }
        if self.start > now + crate::time::SLICE_MAX_AHEAD {
            return Err(ValidationError::new("start", "at most 8 weeks ahead"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: i64,
    pub time: i64,
    /// `person:<email>`, `node:<hostname>` or `system`.
    pub actor: String,
    /// e.g. `slice.create`, `slice.add_nodes`, `node.update`.
    pub action: String,
    pub object_type: String,
    pub object_id: i64,
    pub object_name: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub expires: i64,
    pub person: Person,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// What the token is for, e.g. `ci-script`.
    #[schema(schema_with = schema::token_name)]
    pub name: String,
    /// Lifetime in days (default 365).
    #[schema(minimum = 1, maximum = 3650)]
    pub days: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub created: i64,
    pub expires: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewApiToken {
    pub token: String,
    pub info: ApiToken,
}

/// A page of a listing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Number of matching objects in all pages.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// The error body of every 4xx/5xx answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable kind: `bad_request`, `invalid`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `too_large`, `bad_range`, `rate_limited`, `internal`,
    /// `unavailable`.
    pub error: String,
    pub message: String,
    /// The offending field, for `invalid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use utoipa::PartialSchema;

    /// The `minimum` and `maximum` the OpenAPI document states for `field` of `T`.
    fn bounds<T: PartialSchema>(field: &str) -> (i64, i64) {
        let doc = serde_json::to_value(T::schema()).expect("schema serializes");
        let p = &doc["properties"][field];
        let get = |k: &str| match &p[k] {
            Value::Number(n) => n.as_i64().unwrap_or_else(|| panic!("{field}.{k} = {n}")),
            v => panic!("{field} has no integer {k}: {v}"),
        };
        (get("minimum"), get("maximum"))
    }

    /// Integers near the stated bounds and the validator's: both must agree on each.
    fn agree(what: &str, (min, max): (i64, i64), validator: impl Fn(i64) -> bool) {
        for n in [
            i64::MIN,
            -1,
            0,
            1,
            min - 1,
            min,
            min + 1,
            max - 1,
            max,
            max + 1,
            i64::MAX,
        ] {
            assert_eq!(
                (min..=max).contains(&n),
                validator(n),
                "{what}: schema ({min}..={max}) and validator disagree on {n}"
            );
        }
    }

    #[test]
    fn site_bounds_in_the_schema_are_the_validators() {
        agree(
            "SiteUpdate.image_quota_mb",
            bounds::<SiteUpdate>("image_quota_mb"),
            |n| {
                SiteUpdate {
                    image_quota_mb: Some(n),
                    ..Default::default()
                }
                .validate()
                .is_ok()
            },
        );
        assert_eq!(
            bounds::<SiteUpdate>("image_quota_mb"),
            (0, IMAGE_QUOTA_MB_MAX)
        );
        agree(
            "SiteUpdate.max_slices",
            bounds::<SiteUpdate>("max_slices"),
            |n| {
                SiteUpdate {
                    max_slices: Some(n),
                    ..Default::default()
                }
                .validate()
                .is_ok()
            },
        );
        agree(
            "SiteCreate.max_slices",
            bounds::<SiteCreate>("max_slices"),
            |n| {
                SiteCreate {
                    login_base: "pl".into(),
                    name: "PlanetLab".into(),
                    url: String::new(),
                    max_slices: n,
                    latitude: None,
                    longitude: None,
                }
                .validate()
                .is_ok()
            },
        );
    }

    #[test]
    fn node_bwlimit_bounds_in_the_schema_are_the_validators() {
        let accepted = |v: Value| {
            serde_json::from_value::<NodeUpdate>(serde_json::json!({ "bwlimit": v }))
                .is_ok_and(|u| u.validate().is_ok())
        };
        let b = bounds::<NodeUpdate>("bwlimit");
        assert_eq!(b, (BWLIMIT_MIN as i64, BWLIMIT_MAX as i64));
        agree("NodeUpdate.bwlimit", b, |n| accepted(n.into()));
        // `null` clears the cap; absent keeps it.
        let cleared: NodeUpdate =
            serde_json::from_value(serde_json::json!({ "bwlimit": null })).expect("null");
        assert_eq!(cleared.bwlimit, Some(None));
        assert!(cleared.validate().is_ok());
        let kept: NodeUpdate = serde_json::from_value(serde_json::json!({})).expect("absent");
        assert_eq!(kept.bwlimit, None);
        assert_eq!(
            serde_json::to_value(&kept).expect("ser")["bwlimit"],
            Value::Null
        );
        assert!(serde_json::to_value(&kept)
            .expect("ser")
            .get("bwlimit")
            .is_none());
        assert_eq!(
            serde_json::to_value(&cleared).expect("ser"),
            serde_json::json!({ "bwlimit": null, "boot_state": null, "cpu_cores": null,
                "mem_mb": null, "disk_gb": null, "region": null, "reservable": null })
        );
        assert_eq!(parse_bwlimit("30mbit").unwrap(), Some(30_000_000));
        assert_eq!(parse_bwlimit(" none ").unwrap(), None);
        assert!(parse_bwlimit("500kbit").is_err());
        assert!(parse_bwlimit("fast").is_err());
    }

    #[test]
    fn quota_and_max_slices_are_admin_fields() {
        let only = |u: SiteUpdate| u.has_admin_fields();
        assert!(!only(SiteUpdate {
            name: Some("x".into()),
            url: Some(String::new()),
            latitude: Some(1.0),
            longitude: Some(1.0),
            ..Default::default()
        }));
        assert!(only(SiteUpdate {
            image_quota_mb: Some(1),
            ..Default::default()
        }));
        assert!(only(SiteUpdate {
            max_slices: Some(1),
            ..Default::default()
        }));
        assert!(only(SiteUpdate {
            enabled: Some(true),
            ..Default::default()
        }));
    }
}

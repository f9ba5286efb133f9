//! Federation: peer authorities that share their nodes, each keeping the last word over its own
//! (PlanetLab Central and PlanetLab Europe, with `peer_id` on every object).
//!
//! Two centrals register each other under their *authority names* (`slicelab central
//! --authority NAME`). Each pulls the other's registry (sites and nodes, read-only here); a
//! slice of ours that uses a peer's nodes is pushed to that peer as a [`ForeignSlice`] (name,
//! expiry, its persons' SSH keys, tags, the nodes it wants there: never persons or passwords);
//! the peer decides with its own policy and runs the slivers under its own limits, with the
//! slice named `<our authority>_<slice>` on its nodes; we pull back their state, usage and flows
//! ([`PeerStatus`]). Calls between peers are signed with the secret both admins set ([`signing`]).
//!
//! Pure data and rules; the HTTP and the signing live in `slicelab-client::peer`, the storage in
//! `slicelab-store::peers`, the decisions in `slicelab-central::ops::peers`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Invalid, ValidationError};
use crate::flows::FlowRecord;
use crate::names;
use crate::sliver::SliverKey;
use crate::usage::UsageSample;

/// Whether a peer's calls are served and its slivers run here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    Active,
    /// Its slivers here are stopped (kept) and it may add none; the reason goes back to it.
    Suspended,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Active => "active",
            PeerState::Suspended => "suspended",
        }
    }
    pub fn parse(s: &str) -> Option<PeerState> {
        match s {
            "active" => Some(PeerState::Active),
            "suspended" => Some(PeerState::Suspended),
            _ => None,
        }
    }
}

/// A peer authority as this central knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Peer {
    pub id: i64,
    /// The peer's authority name: the prefix of its slices here, and the `login_base` of the
    /// site its nodes belong to here.
    pub name: String,
    pub url: String,
    /// SHA-256 of the CA certificate the peer's central presents (pinned), if given.
    pub ca_fingerprint: Option<String>,
    pub state: PeerState,
    /// Why an admin suspended it.
    pub reason: String,
    /// How many slivers its slices may hold on our nodes together.
    pub max_slivers: i64,
    /// The guarantees (`cpu_reserve`, percent of one core; `mem_reserve`, MiB) its slices may
    /// hold on our nodes together; 0: none.
    pub max_cpu_reserve: i64,
    pub max_mem_reserve_mb: i64,
    /// How many they hold now.
    pub slivers: i64,
    /// How many of its nodes we know.
    pub nodes: i64,
    /// Last successful exchange with it.
    pub last_contact: Option<i64>,
    /// The last exchange's failure, if it failed.
    pub last_error: String,
    /// What the peer says of us (e.g. that it suspended us, and why); empty if nothing.
    pub remote_state: String,
    pub created: i64,
}

/// `slicelab peer add NAME URL`: an admin registers a peer with the secret exchanged out of band.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerCreate {
    #[schema(schema_with = crate::schema::login_base)]
    pub name: String,
    /// The peer central's URL (`https://…`).
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub url: String,
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^(sha256:|SHA256:)?([0-9a-fA-F]{2}:?){32}$"
    )]
    pub ca_fingerprint: Option<String>,
    /// The shared secret both admins set (at least 32 characters).
    #[schema(
        min_length = 32,
        max_length = 256,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub secret: String,
    /// Default 10.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000)]
    pub max_slivers: Option<i64>,
    /// Percent of one core its slices may reserve here together (default 0: no guarantees).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000)]
    pub max_cpu_reserve: Option<i64>,
    /// MiB of memory its slices may reserve here together (default 0).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000)]
    pub max_mem_reserve_mb: Option<i64>,
}

/// Changes to a peer (admins).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerUpdate {
    #[serde(default)]
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub url: Option<String>,
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^(sha256:|SHA256:)?([0-9a-fA-F]{2}:?){32}$"
    )]
    pub ca_fingerprint: Option<String>,
    #[serde(default)]
    #[schema(
        min_length = 32,
        max_length = 256,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub secret: Option<String>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000)]
    pub max_slivers: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000)]
    pub max_cpu_reserve: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000)]
    pub max_mem_reserve_mb: Option<i64>,
}

/// `slicelab peer suspend NAME --reason …`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerSuspend {
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

pub const PEER_SECRET_MIN: usize = 32;
pub const PEER_SECRET_MAX: usize = 256;
pub const PEER_URL_MAX: usize = 2048;
pub const MAX_SLIVERS_LIMIT: i64 = 1_000_000;
pub const DEFAULT_MAX_SLIVERS: i64 = 10;

fn check_url(url: &str) -> Invalid<()> {
    if url.chars().count() > PEER_URL_MAX
        || !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(ValidationError::new(
            "url",
            format!("{url:?} must be an http(s) URL of at most {PEER_URL_MAX} characters"),
        ));
    }
    Ok(())
}

fn check_secret(s: &str) -> Invalid<()> {
    let n = s.chars().count();
    if !(PEER_SECRET_MIN..=PEER_SECRET_MAX).contains(&n) || s.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "secret",
            format!(
                "must be {PEER_SECRET_MIN} to {PEER_SECRET_MAX} printable characters (it is {n})"
            ),
        ));
    }
    Ok(())
}

fn check_max(field: &str, m: Option<i64>) -> Invalid<()> {
    match m {
        Some(m) if !(0..=MAX_SLIVERS_LIMIT).contains(&m) => Err(ValidationError::new(
            field,
            format!("{m} is out of range 0..={MAX_SLIVERS_LIMIT}"),
        )),
        _ => Ok(()),
    }
}

fn check_fingerprint(f: Option<&str>) -> Invalid<()> {
    match f {
        Some(f) if f.len() > 128 || f.is_empty() => Err(ValidationError::new(
            "ca_fingerprint",
            "must be 1 to 128 characters (the SHA-256 of the peer's CA certificate)",
        )),
        _ => Ok(()),
    }
}

impl PeerCreate {
    /// `own` is this central's authority name: a central cannot peer with itself.
    pub fn validate(&self, own: &str) -> Invalid<()> {
        names::login_base(&self.name).map_err(|e| ValidationError::new("name", e.message))?;
        if self.name == own {
            return Err(ValidationError::new(
                "name",
                format!("{:?} is this central's own authority name", self.name),
            ));
        }
        check_url(&self.url)?;
        check_secret(&self.secret)?;
        check_max("max_slivers", self.max_slivers)?;
        check_max("max_cpu_reserve", self.max_cpu_reserve)?;
        check_max("max_mem_reserve_mb", self.max_mem_reserve_mb)?;
        check_fingerprint(self.ca_fingerprint.as_deref())
    }
}

impl PeerUpdate {
    pub fn validate(&self) -> Invalid<()> {
        if let Some(u) = &self.url {
            check_url(u)?;
        }
        if let Some(s) = &self.secret {
            check_secret(s)?;
        }
        check_max("max_slivers", self.max_slivers)?;
        check_max("max_cpu_reserve", self.max_cpu_reserve)?;
        check_max("max_mem_reserve_mb", self.max_mem_reserve_mb)?;
        check_fingerprint(self.ca_fingerprint.as_deref())
    }
}

impl PeerSuspend {
    pub fn validate(&self) -> Invalid<()> {
        let n = self.reason.chars().count();
        if n == 0 || n > names::TEXT_MAX {
            return Err(ValidationError::new(
                "reason",
                format!("must be 1 to {} characters", names::TEXT_MAX),
            ));
        }
        Ok(())
    }
}

/// The name a slice of authority `peer` has on our nodes: `<peer>_<home name>`. It must itself
/// be a valid slice name (so at most [`names::SLICE_NAME_MAX`] characters).
pub fn foreign_slice_name(peer: &str, home_name: &str) -> Invalid<String> {
    let name = format!("{peer}_{home_name}");
    names::SliceName::parse(&name).map_err(|e| {
        ValidationError::new(
            "name",
            format!(
                "the slice is {name:?} on this authority's nodes, which is not valid: {}",
                e.message
            ),
        )
    })?;
    Ok(name)
}

// ---- What peers exchange (`/peer/v1/…`, signed) ----

/// `GET /peer/v1/registry`: the answering authority's own sites' nodes (never a third party's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRegistry {
    /// The answering central's authority name (must be the name we registered it under).
    pub authority: String,
    /// A hash of the content: unchanged registry, unchanged revision.
    pub revision: String,
    pub nodes: Vec<PeerNode>,
}

/// One node of a peer as it shares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerNode {
    pub hostname: String,
    /// Its site's `login_base` at home.
    pub site: String,
    pub boot_state: String,
    /// Liveness as its authority judges it (`up`, `down`, `new`).
    pub status: String,
    pub cpu_cores: i64,
    pub mem_mb: i64,
    pub disk_gb: i64,
    pub region: String,
    pub reservable: bool,
    /// Slivers it holds now (all authorities').
    pub slivers: i64,
}

/// A slice tag as sent to a peer: node-specific ones name the node by hostname.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ForeignTag {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub node: Option<String>,
}

/// `PUT /peer/v1/slices/{name}`: one of our slices as a peer needs it to run it on its nodes.
/// The whole record each time (idempotent); an empty `nodes` ends the slice there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ForeignSlice {
    /// The slice's name at home (the peer prefixes it with our authority name).
    pub name: String,
    pub expires: i64,
    pub enabled: bool,
    pub description: String,
    /// Whom the peer's operators contact about it (the slice's site PIs at home, or persons).
    pub contact: String,
    pub keys: Vec<SliverKey>,
    pub tags: Vec<ForeignTag>,
    /// Hostnames of the peer's nodes the slice wants.
    pub nodes: Vec<String>,
}

/// The peer's answer to a [`ForeignSlice`]: its name there and the nodes it runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignSliceAck {
    pub name: String,
    pub nodes: Vec<String>,
    /// Tags the peer's policy did not take (e.g. admin-only there), with why.
    #[serde(default)]
    pub ignored_tags: Vec<String>,
}

/// `GET /peer/v1/status`: what became of our slices on the peer's nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Set when the peer suspended us: its admins' reason.
    pub suspended: Option<String>,
    pub slivers: Vec<ForeignSliver>,
    /// Usage samples of our slices (slice = its name at home), `time` after the asked cursor.
    pub usage: Vec<ForeignUsage>,
    /// Flow records of our slices (slice = its name at home) seen since the asked cursor.
    pub flows: Vec<ForeignFlow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignSliver {
    /// The slice's name at home.
    pub slice: String,
    pub node: String,
    pub state: String,
    pub message: String,
    pub address: Option<String>,
    pub updated: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignUsage {
    pub node: String,
    pub sample: UsageSample,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignFlow {
    pub node: String,
    pub flow: FlowRecord,
}

/// How peer calls are signed: HMAC-SHA-256, with the shared secret, of this canonical text.
/// The signing itself is in `slicelab-client::peer`; the text and the window are the rule.
pub mod signing {
    /// Header: the caller's authority name.
    pub const PEER: &str = "x-slicelab-peer";
    /// Header: Unix seconds when the call was signed.
    pub const TIME: &str = "x-slicelab-time";
    /// Header: a random nonce, never reused within the window.
    pub const NONCE: &str = "x-slicelab-nonce";
    /// Header: hex HMAC-SHA-256 of [`canonical`].
    pub const SIGNATURE: &str = "x-slicelab-signature";
    /// A call signed more than this many seconds before or after our clock is refused.
    pub const WINDOW_S: i64 = 120;

    /// `METHOD\nPATH?QUERY\nTIME\nNONCE\nCALLER\nhex(sha256(body))`.
    pub fn canonical(
        method: &str,
        path_and_query: &str,
        time: i64,
        nonce: &str,
        caller: &str,
        body_sha256_hex: &str,
    ) -> String {
        format!("{method}\n{path_and_query}\n{time}\n{nonce}\n{caller}\n{body_sha256_hex}")
    }

    /// Whether a call signed at `time` is acceptable at `now`.
    pub fn fresh(time: i64, now: i64) -> bool {
        (now - time).abs() <= WINDOW_S
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str) -> PeerCreate {
        PeerCreate {
            name: name.into(),
            url: "https://plc.example.org".into(),
            ca_fingerprint: None,
            secret: "s".repeat(32),
            max_slivers: Some(2),
            max_cpu_reserve: None,
            max_mem_reserve_mb: None,
        }
    }

    #[test]
    fn a_peer_needs_a_name_url_and_long_secret() {
        assert!(create("ple").validate("plc").is_ok());
        assert_eq!(create("plc").validate("plc").unwrap_err().field, "name");
        assert_eq!(
            create("Bad_Name").validate("plc").unwrap_err().field,
            "name"
        );
        let mut c = create("ple");
        c.secret = "short".into();
        assert_eq!(c.validate("plc").unwrap_err().field, "secret");
        let mut c = create("ple");
        c.url = "ftp://x".into();
        assert_eq!(c.validate("plc").unwrap_err().field, "url");
        let mut c = create("ple");
        c.max_slivers = Some(-1);
        assert_eq!(c.validate("plc").unwrap_err().field, "max_slivers");
    }

    #[test]
    fn foreign_slices_carry_their_authority_prefix() {
        assert_eq!(
            foreign_slice_name("ple", "princeton_codeen").unwrap(),
            "ple_princeton_codeen"
        );
        let long = format!("princeton_{}", "x".repeat(22));
        let e = foreign_slice_name("ple", &long).unwrap_err();
        assert!(e.message.contains("ple_princeton_"), "{}", e.message);
    }

    #[test]
    fn signatures_expire_both_ways() {
        assert!(signing::fresh(1000, 1000 + signing::WINDOW_S));
        assert!(!signing::fresh(1000, 1001 + signing::WINDOW_S));
        assert!(!signing::fresh(1001 + signing::WINDOW_S, 1000));
        assert_eq!(
            signing::canonical("PUT", "/peer/v1/slices/a_b", 5, "n", "ple", "00"),
            "PUT\n/peer/v1/slices/a_b\n5\nn\nple\n00"
        );
    }
}

//! The protocol between central and node managers (PlanetLab's GetSlivers, modernised).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::objects::BootState;
use crate::tags::Resources;

/// One SSH key of a person in the slice: what the node's SSH gateway accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct SliverKey {
    pub person: String,
    pub key: String,
}

/// What a node must run for one slice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct SliverSpec {
    pub slice_id: i64,
    pub slice_name: String,
    /// Unix seconds. Central stops listing the sliver once expired; nodes also stop it then,
    /// so an unreachable central cannot keep an expired slice alive.
    pub expires: i64,
    /// `false`: keep the sliver (and its files) but stopped — slice disabled by an admin, node in
    /// safeboot, or another slice's lease on a reservable node.
    pub run: bool,
    pub keys: Vec<SliverKey>,
    pub resources: Resources,
    /// The digest of the manifest of the image named by the `image` tag, when that image is
    /// published at central (`model::image`); `None`: the built-in image. Nodes fetch the
    /// manifest and its blobs by digest, so a re-published name is a new image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

/// The node's whole desired state at one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DesiredSlivers {
    pub node_id: i64,
    pub hostname: String,
    pub boot_state: BootState,
    /// Opaque; changes whenever anything in this answer changes. Pass it back as `after`.
    pub revision: String,
    /// Sorted by slice name.
    pub slivers: Vec<SliverSpec>,
    /// Who may use the node's admin context (`ssh site_admin@NODE`): every key of the enabled
    /// PIs and techs of the node's site and of the enabled admins, sorted by person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staff: Vec<SliverKey>,
    /// The node's site bandwidth cap (bits/s) its slivers share by `net_share`; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bwlimit: Option<u64>,
}

impl DesiredSlivers {
    /// The revision is a content hash, so a change elsewhere in the registry that does not alter
    /// this node's slivers does not wake it (no thundering herd of identical answers).
    pub fn compute_revision(
        node_id: i64,
        boot_state: BootState,
        slivers: &[SliverSpec],
        staff: &[SliverKey],
        bwlimit: Option<u64>,
    ) -> String {
        // Fields an older revision did not hash are left out while empty, so that upgrading
        // central does not wake every node with an unchanged state.
        let body = match (staff.is_empty(), bwlimit) {
            (true, None) => serde_json::to_vec(&(node_id, boot_state, slivers)),
            _ => serde_json::to_vec(&(node_id, boot_state, slivers, staff, bwlimit)),
        }
        .unwrap_or_default();
        format!("{:016x}", fnv1a64(&body))
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SliverState {
    Creating,
    Running,
    Stopped,
    Failed,
}

impl SliverState {
    pub fn as_str(self) -> &'static str {
        match self {
            SliverState::Creating => "creating",
            SliverState::Running => "running",
            SliverState::Stopped => "stopped",
            SliverState::Failed => "failed",
        }
    }
}

/// How often a sliver ran into each of its limits since it started: OOM kills in its memory
/// limit, forks refused at its pids limit, and whether its disk quota is full now (0 or 1).
/// Central turns every increase into a `sliver.limit_hit` event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitCounts {
    #[serde(default, deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub memory: u64,
    #[serde(default, deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub pids: u64,
    #[serde(default, deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub disk: u64,
}

impl LimitCounts {
    pub fn is_zero(&self) -> bool {
        *self == LimitCounts::default()
    }

    /// The limits hit since `before` (a counter that went down was reset by a restart: any
    /// count since is new).
    pub fn hit_since(&self, before: &LimitCounts) -> Vec<(&'static str, u64)> {
        [
            ("memory", before.memory, self.memory),
            ("pids", before.pids, self.pids),
            ("disk", before.disk, self.disk),
        ]
        .into_iter()
        .filter(|(_, b, n)| *n > 0 && n != b)
        .map(|(l, _, n)| (l, n))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SliverStatus {
    pub slice_name: String,
    pub state: SliverState,
    /// Why it failed, or other detail for people.
    #[serde(default)]
    pub message: String,
    /// Address of the sliver on the node's internal network, if it has one.
    #[serde(default)]
    pub address: Option<String>,
    /// Why the sliver's egress is throttled (its daily byte cap is spent), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled: Option<String>,
    /// Its limits hit so far (see [`LimitCounts`]).
    #[serde(default, skip_serializing_if = "LimitCounts::is_zero")]
    pub limits: LimitCounts,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeHealth {
    pub load1: f64,
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub mem_total_mb: u64,
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub mem_used_mb: u64,
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub disk_total_mb: u64,
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub disk_used_mb: u64,
    #[serde(deserialize_with = "crate::wire::counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub uptime_s: u64,
    #[serde(default)]
    pub version: String,
}

/// A batch of reports from a node. `seq` increases per batch; central acknowledges by `seq` and
/// ignores a batch it has already stored, so a node may resend after a timeout without duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeReport {
    #[schema(minimum = 1)]
    pub seq: i64,
    /// The complete list of slivers the node has; slivers not listed are gone.
    #[schema(max_items = 10000)]
    pub slivers: Vec<SliverStatus>,
    pub health: Option<NodeHealth>,
    /// What persons did on the node through its services since the last report (the
    /// `site_admin` context, captures); central stores each as an event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 1000)]
    pub actions: Vec<NodeAction>,
}

/// What a person did through a node's services. Central turns each into an event whose actor is
/// the person (see [`NodeActionKind::event_action`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeAction {
    /// When, Unix seconds (the node's clock).
    #[serde(deserialize_with = "crate::wire::unix_time")]
    #[schema(minimum = 0, maximum = 253402300799_i64)]
    pub at: i64,
    /// The person whose key opened the session (their email at central).
    #[serde(deserialize_with = "crate::wire::string_max::<_, 254>")]
    #[schema(max_length = 254)]
    pub person: String,
    pub kind: NodeActionKind,
    /// The slice acted on, if any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wire::opt_string_max::<_, 64>"
    )]
    #[schema(max_length = 64)]
    pub slice: Option<String>,
    /// What exactly (the command, the filter and size of a capture, a reason); stored with the
    /// event (central keeps at most 4 KiB of it).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeActionKind {
    /// A command of the admin context that only reads (slivers, processes, flows, the log).
    AdminCommand,
    /// A site's staff stopped a sliver on the node (it stays stopped until restarted there).
    SliverStop,
    /// A site's staff restarted a sliver (and lifted a stop).
    SliverRestart,
    /// A capture of a sliver's packets ran.
    SliverCapture,
}

impl NodeActionKind {
    /// The event's `action`.
    pub fn event_action(self) -> &'static str {
        match self {
            NodeActionKind::AdminCommand => "node.site_admin",
            NodeActionKind::SliverStop => "sliver.admin_stop",
            NodeActionKind::SliverRestart => "sliver.admin_restart",
            NodeActionKind::SliverCapture => "sliver.capture",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportAck {
    /// Highest `seq` central has stored for this node.
    pub acked_seq: i64,
}

/// A sliver as central knows it from the node's last report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Sliver {
    pub slice: String,
    pub node: String,
    pub state: SliverState,
    pub message: String,
    pub address: Option<String>,
    pub updated: i64,
    /// Why its egress is throttled (daily byte cap spent), if it is.
    #[serde(default)]
    pub throttled: Option<String>,
}

#[cfg(test)]
mod limit_tests {
    use super::LimitCounts;

    #[test]
    fn increases_and_counts_after_a_reset_are_hits() {
        let z = LimitCounts::default();
        let a = LimitCounts {
            memory: 2,
            pids: 0,
            disk: 1,
        };
        assert_eq!(a.hit_since(&z), vec![("memory", 2), ("disk", 1)]);
        assert!(a.hit_since(&a).is_empty());
        let after_restart = LimitCounts {
            memory: 1,
            pids: 0,
            disk: 0,
        };
        assert_eq!(after_restart.hit_since(&a), vec![("memory", 1)]);
    }
}

#[cfg(test)]
mod action_tests {
    use super::NodeAction;

    #[test]
    fn an_action_keeps_to_the_bounds_its_schema_states() {
        let ok = r#"{"at":0,"person":"a@x","kind":"sliver_stop","slice":"pl_a","detail":{}}"#;
        assert!(serde_json::from_str::<NodeAction>(ok).is_ok());
        let long_slice = ok.replace("pl_a", &"a".repeat(65));
        assert!(serde_json::from_str::<NodeAction>(&long_slice).is_err());
        let long_person = ok.replace("a@x", &"p".repeat(255));
        assert!(serde_json::from_str::<NodeAction>(&long_person).is_err());
        let not_object = ok.replace(r#""detail":{}"#, r#""detail":"text""#);
        assert!(serde_json::from_str::<NodeAction>(&not_object).is_err());
    }
}

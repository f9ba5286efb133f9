//! The default allocation: what a sliver gets for each resource its slice has no tag for.
//!
//! Three layers, each overriding the one before: the platform defaults (set by an admin at
//! central), a node's overrides (the same tags, for one node), then the slice's own tags
//! (slice-wide, then per node — see [`crate::tags::resolve`]). Defaults are ordinary resource
//! tags, validated by the same rules, so a default can never be a value a tag could not be.
//!
//! Only limits can be defaults: an initscript, image or port forward is the slice's own choice.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::tags::{self, Resources, TagName, TagValue};
use crate::{Invalid, ValidationError};

/// The tags an admin may give a default value.
pub const DEFAULTABLE: &[TagName] = &[
    TagName::CpuShare,
    TagName::CpuPct,
    TagName::MemMax,
    TagName::PidsMax,
    TagName::DiskMax,
    TagName::NetMaxRate,
    TagName::NetMaxKbyte,
    TagName::NetShare,
];

/// The platform defaults a new central starts with (see README, "Default allocation", for why
/// these values): PlanetLab's share and daily byte cap, and bounds on memory, processes and disk
/// that a careless experiment hits long before the node does.
pub const BUILTIN: &[(TagName, &str)] = &[
    (TagName::CpuShare, "1"),
    (TagName::MemMax, "1G"),
    (TagName::PidsMax, "1024"),
    (TagName::DiskMax, "10G"),
    (TagName::NetMaxKbyte, "10546875"),
];

/// One default value, platform-wide (`node` is `None`) or a node's override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DefaultTag {
    /// A resource tag name, e.g. `mem_max`.
    pub name: String,
    pub value: String,
    /// Hostname of the node this override applies to; absent for a platform default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Body of `PUT /defaults/{tag}` and `PUT /nodes/{node}/defaults/{tag}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultSet {
    #[schema(min_length = 1)]
    pub value: String,
}

/// The defaults in force: platform-wide, and every node's overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Defaults {
    pub platform: Vec<DefaultTag>,
    pub nodes: Vec<DefaultTag>,
}

/// Checks that `name` may have a default and `value` is valid for it; returns the tag and the
/// value normalised for storage.
pub fn validate(name: &str, value: &str) -> Invalid<(TagName, String)> {
    let tag = TagName::parse(name)?;
    if !DEFAULTABLE.contains(&tag) {
        return Err(ValidationError::new(
            "name",
            format!(
                "{name} cannot have a default (defaults exist for: {})",
                DEFAULTABLE
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok((tag, tags::validate(tag, value)?))
}

/// A sliver's resources on node `node_id`: platform defaults, then the node's overrides, then the
/// slice's tags. A stored value that no longer parses is skipped, as in [`tags::resolve`].
pub fn resolve<'a>(
    platform: impl IntoIterator<Item = (TagName, &'a str)>,
    node: impl IntoIterator<Item = (TagName, &'a str)>,
    slice_tags: impl IntoIterator<Item = TagValue<'a>>,
    node_id: i64,
) -> Resources {
    let mut r = tags::resolve(slice_tags, node_id);
    let mut base = Resources::default();
    for (t, v) in platform.into_iter().chain(node) {
        let _ = tags::apply(&mut base, t, v);
    }
    // A tag the slice set wins; otherwise the default.
    r.cpu_share = r.cpu_share.or(base.cpu_share);
    r.cpu_pct = r.cpu_pct.or(base.cpu_pct);
    r.mem_max = r.mem_max.or(base.mem_max);
    r.pids_max = r.pids_max.or(base.pids_max);
    r.disk_max = r.disk_max.or(base.disk_max);
    r.net_max_rate = r.net_max_rate.or(base.net_max_rate);
    r.net_max_kbyte = r.net_max_kbyte.or(base.net_max_kbyte);
    r.net_share = r.net_share.or(base.net_share);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_tags_override_node_overrides_override_platform() {
        let platform = [(TagName::MemMax, "1G"), (TagName::PidsMax, "1024")];
        let node = [(TagName::MemMax, "512M")];
        let none: [TagValue; 0] = [];
        let r = resolve(platform, node, none, 7);
        assert_eq!(r.mem_max, Some(512 << 20));
        assert_eq!(r.pids_max, Some(1024));
        let tags = [TagValue {
            name: TagName::PidsMax,
            value: "64",
            node_id: None,
        }];
        let r = resolve(platform, node, tags, 7);
        assert_eq!(r.pids_max, Some(64));
        assert_eq!(r.mem_max, Some(512 << 20));
    }

    #[test]
    fn builtin_defaults_are_valid_and_only_limits_default() {
        for (t, v) in BUILTIN {
            assert!(validate(t.as_str(), v).is_ok(), "{t:?}={v}");
        }
        assert!(validate("initscript", "echo hi").is_err());
        assert!(validate("mem_max", "lots").is_err());
        assert!(validate("no_such_tag", "1").is_err());
        assert_eq!(
            validate("mem_max", " 256M ").unwrap(),
            (TagName::MemMax, "256M".into())
        );
    }
}

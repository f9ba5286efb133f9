//! The naming scheme: every object the node creates is named from the sliver (or from the node
//! instance), so `cleanup` can find leftovers of a crashed node manager without any state file.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use slicelab_model::SliceName;

/// Names of one node manager instance's shared objects. Several node managers may run on one
/// machine (the `slicelab up` testbed, each in its own netns), so all of these are configurable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNames {
    /// Interface holding the gateway address (`.1` of `subnet`); see `net` for the design.
    pub gateway_if: String,
    /// The sliver network, a /24 given by its first address; internal to the machine.
    pub subnet: Ipv4Addr,
    /// nftables table (family `inet`) holding NAT, isolation and port-forward rules.
    pub nft_table: String,
    /// cgroup below which each sliver gets `<parent>/<slice>` (in every v1 hierarchy, or in v2).
    pub cgroup_parent: String,
}

impl Default for NodeNames {
    fn default() -> Self {
        Self {
            gateway_if: "slbr0".into(),
            subnet: Ipv4Addr::new(10, 77, 0, 0),
            nft_table: "slicelab".into(),
            cgroup_parent: "slicelab".into(),
        }
    }
}

impl NodeNames {
    pub fn gateway(&self) -> Ipv4Addr {
        self.host(1)
    }

    pub fn host(&self, n: u8) -> Ipv4Addr {
        let o = self.subnet.octets();
        Ipv4Addr::new(o[0], o[1], o[2], n)
    }

    pub fn subnet_cidr(&self) -> String {
        format!("{}/24", self.host(0))
    }

    pub(crate) fn check(&self) -> Result<(), crate::NodeError> {
        let bad =
            |what: &'static str, message: String| Err(crate::NodeError::Invalid { what, message });
        if self.gateway_if.is_empty()
            || self.gateway_if.len() > 15
            || !self.gateway_if.chars().all(safe_char)
        {
            return bad(
                "gateway interface name",
                format!("{:?}: 1..15 characters of [a-z0-9_-]", self.gateway_if),
            );
        }
        if self.gateway_if.starts_with("sl-") {
            return bad(
                "gateway interface name",
                "must not start with `sl-` (sliver veths do)".into(),
            );
        }
        if self.nft_table.is_empty() || !self.nft_table.chars().all(safe_char) {
            return bad(
                "nft table",
                format!("{:?}: [a-z0-9_-] only", self.nft_table),
            );
        }
        if self.cgroup_parent.is_empty()
            || !self
                .cgroup_parent
                .split('/')
                .all(|p| !p.is_empty() && p != ".." && p != "." && p.chars().all(safe_char))
        {
            return bad("cgroup parent", format!("{:?}", self.cgroup_parent));
        }
        if self.subnet.octets()[3] != 0 {
            return bad("subnet", format!("{} must end in .0 (a /24)", self.subnet));
        }
        Ok(())
    }
}

fn safe_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
}

/// Longest slice name the node uses as it is in kernel object names: the sliver's hostname is the
/// slice name, one DNS label (63 bytes). Interface names (15 bytes) take longer names hashed
/// ([`veth_name`]); cgroup names, paths and nft comments allow more.
pub const KERNEL_NAME_MAX: usize = 63;

/// A slice name as the node accepts it: central's rule ([`SliceName::parse`]), re-checked here
/// because it becomes a path component, a cgroup name, a hostname and part of interface names,
/// plus the length the node's kernel objects take ([`KERNEL_NAME_MAX`]).
pub fn check_slice_name(name: &str) -> Result<(), crate::NodeError> {
    let invalid = |message: String| crate::NodeError::Invalid {
        what: "slice name",
        message,
    };
    let name = SliceName::parse(name).map_err(|e| invalid(format!("{name:?}: {}", e.message)))?;
    if name.as_str().len() > KERNEL_NAME_MAX {
        return Err(invalid(format!(
            "{:?}: longer than a hostname label ({KERNEL_NAME_MAX} bytes)",
            name.as_str()
        )));
    }
    Ok(())
}

/// The generic name of a sliver's objects: `sl-<slice>`.
pub fn sliver_name(slice: &str) -> String {
    format!("sl-{slice}")
}

/// Host end of the sliver's veth. Interface names are at most 15 bytes; longer slice names are
/// replaced by a stable hash. Slice names always contain `_`, so a hashed name (`sl-` + 12 hex
/// digits) cannot equal a literal one.
pub fn veth_name(slice: &str) -> String {
    let plain = sliver_name(slice);
    if plain.len() <= 15 {
        plain
    } else {
        format!("sl-{:012x}", fnv1a64(slice.as_bytes()) & 0xffff_ffff_ffff)
    }
}

/// Whether an interface name belongs to the sliver naming scheme.
pub fn is_veth_name(name: &str) -> bool {
    name.starts_with("sl-") && name.len() <= 15
}

pub fn nft_comment(slice: &str) -> String {
    sliver_name(slice)
}

pub fn slivers_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("slivers")
}

pub fn sliver_dir(state_dir: &Path, slice: &str) -> PathBuf {
    slivers_dir(state_dir).join(slice)
}

/// Where destroyed slivers' directories wait for their removal (in the background, or at the
/// next start or cleanup of the node after a crash).
pub fn trash_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("trash")
}

pub fn images_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("images")
}

pub fn image_dir(state_dir: &Path, image: &str) -> PathBuf {
    images_dir(state_dir).join(image)
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_and_are_stable() {
        assert_eq!(veth_name("pl_web"), "sl-pl_web");
        let long = veth_name("princeton_codeen_long");
        assert_eq!(long.len(), 15);
        assert_eq!(long, veth_name("princeton_codeen_long"));
        assert_ne!(long, veth_name("princeton_codeen_lonh"));
        assert!(is_veth_name(&long));
        assert!(is_veth_name("sl-pl_web"));
        assert!(!is_veth_name("slbr0"));
    }

    #[test]
    fn slice_names_are_rechecked() {
        assert!(check_slice_name("pl_web").is_ok());
        assert!(check_slice_name("../etc").is_err());
        assert!(check_slice_name("").is_err());
        assert!(check_slice_name("Pl_web").is_err());
        assert!(check_slice_name("noprefix").is_err());
        assert!(check_slice_name("slicelab_bench").is_ok());
        assert!(NodeNames::default().check().is_ok());
        let bad = NodeNames {
            cgroup_parent: "a/../b".into(),
            ..Default::default()
        };
        assert!(bad.check().is_err());
    }
}

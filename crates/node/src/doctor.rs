//! `slicelab node doctor` (and the check `node join` runs first): does this machine have what a
//! node needs? Each check reads the kernel's own answer (`/proc`, `/sys`, a tool's exit status)
//! and says what is missing and how to get it. Nothing is changed.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::cgroup::{Cgroups, Layout};

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// A node cannot run without it (else: a feature is off, e.g. packet auditing).
    pub required: bool,
    /// What was found, or what is missing and how to get it.
    pub detail: String,
}

fn check(name: &'static str, required: bool, r: Result<String, String>) -> Check {
    let ok = r.is_ok();
    Check {
        name,
        ok,
        required,
        detail: r.unwrap_or_else(|e| e),
    }
}

/// Every check, in order; `state_dir` is where slivers' files would live.
pub fn run(state_dir: &Path) -> Vec<Check> {
    vec![
        check("root", true, root()),
        check("namespaces", true, namespaces()),
        check("user namespaces", true, user_namespaces()),
        check("kernel", true, kernel()),
        check("cgroups", true, cgroups()),
        check("overlayfs", true, overlayfs()),
        check("nftables", true, nftables()),
        check("iproute2", true, tool("ip", &["-V"], "iproute2")),
        check("conntrack", false, conntrack()),
        check("disk", false, disk(state_dir)),
    ]
}

/// All required checks passed.
pub fn ready(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.ok || !c.required)
}

fn root() -> Result<String, String> {
    if nix::unistd::geteuid().is_root() {
        Ok("running as root".into())
    } else {
        Err("not root: the node manager creates namespaces, cgroups, mounts and nftables rules; run it as root".into())
    }
}

fn namespaces() -> Result<String, String> {
    let kinds = ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup"];
    let missing: Vec<_> = kinds
        .iter()
        .filter(|k| !Path::new(&format!("/proc/self/ns/{k}")).exists())
        .collect();
    if missing.is_empty() {
        Ok(kinds.join(", "))
    } else {
        Err(format!(
            "the kernel lacks namespaces {missing:?} (CONFIG_*_NS)"
        ))
    }
}

fn user_namespaces() -> Result<String, String> {
    let max = fs::read_to_string("/proc/sys/user/max_user_namespaces").map_err(|e| {
        format!("cannot read /proc/sys/user/max_user_namespaces: {e} (CONFIG_USER_NS)")
    })?;
    match max.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(format!("up to {n}")),
        _ => Err("user namespaces are disabled: sysctl -w user.max_user_namespaces=15000".into()),
    }
}

/// Idmapped mounts (each layer mapped into a sliver's id range) need Linux 5.12; overlayfs over
/// idmapped layers 5.19.
fn kernel() -> Result<String, String> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_err(|e| format!("cannot read the kernel release: {e}"))?;
    let release = release.trim();
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) >= (5, 19) {
        Ok(format!("Linux {release}"))
    } else {
        Err(format!(
            "Linux {release}: slivers' idmapped layers need 5.19 or later (Debian 12 has 6.1)"
        ))
    }
}

fn cgroups() -> Result<String, String> {
    let c = Cgroups::detect("slicelab").map_err(|e| e.to_string())?;
    Ok(match c.layout {
        Layout::V2 { .. } => "cgroup v2".to_string(),
        Layout::V1 {
            cpu, memory, pids, ..
        } => {
            let mut missing = Vec::new();
            for (name, p) in [("cpu", cpu), ("memory", memory), ("pids", pids)] {
                if p.is_none() {
                    missing.push(name);
                }
            }
            if !missing.is_empty() {
                return Err(format!("cgroup v1 without controllers {missing:?}"));
            }
            "cgroup v1 (cpu, memory, pids)".to_string()
        }
    })
}

fn overlayfs() -> Result<String, String> {
    let fss = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if fss
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        return Ok("overlay in /proc/filesystems".into());
    }
    // Loaded on first use where it is a module.
    if Path::new("/sys/module/overlay").exists()
        || tool("modprobe", &["-n", "overlay"], "kmod").is_ok()
    {
        return Ok("overlay module available".into());
    }
    Err("no overlayfs: modprobe overlay (CONFIG_OVERLAY_FS)".into())
}

fn nftables() -> Result<String, String> {
    tool("nft", &["--version"], "nftables")?;
    let ok = Command::new("nft")
        .args(["list", "tables"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("nft: {e}"))?;
    if ok.status.success() {
        Ok("nft works".into())
    } else {
        Err(format!(
            "nft cannot talk to the kernel: {} (CONFIG_NF_TABLES)",
            String::from_utf8_lossy(&ok.stderr).trim()
        ))
    }
}

fn conntrack() -> Result<String, String> {
    if Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists()
        || Path::new("/sys/module/nf_conntrack").exists()
    {
        Ok("nf_conntrack loaded (packet auditing works)".into())
    } else {
        Err(
            "nf_conntrack is not loaded: packet auditing (flows) will be off until \
             `modprobe nf_conntrack`"
                .into(),
        )
    }
}

fn disk(state_dir: &Path) -> Result<String, String> {
    // The nearest existing ancestor: the state dir may not exist before the first start.
    let dir = state_dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"));
    let st = nix::sys::statfs::statfs(dir).map_err(|e| format!("statfs {}: {e}", dir.display()))?;
    let free = st.blocks_available() * st.block_size() as u64;
    let gib = free as f64 / (1u64 << 30) as f64;
    if free >= 5 << 30 {
        Ok(format!("{gib:.1} GiB free under {}", dir.display()))
    } else {
        Err(format!(
            "only {gib:.1} GiB free under {}: images and slivers need several GiB",
            dir.display()
        ))
    }
}

/// `name args` runs (the tool is installed); else which package has it.
fn tool(name: &str, args: &[&str], package: &str) -> Result<String, String> {
    match Command::new(name)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(format!("{name} found")),
        _ => Err(format!("`{name}` is missing: apt-get install {package}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_answers_and_missing_ones_say_how_to_fix() {
        let checks = run(Path::new("/nonexistent/state"));
        assert_eq!(checks.len(), 10);
        for c in &checks {
            assert!(!c.detail.is_empty(), "{c:?}");
        }
        // Not ready exactly when a required check failed.
        let required_failed = checks.iter().any(|c| c.required && !c.ok);
        assert_eq!(ready(&checks), !required_failed);
    }
}

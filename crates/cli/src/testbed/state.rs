//! `<dir>/testbed.json`: what runs (pids, nodes), written by `up` as it goes and read by `down`
//! and `slicelab exec`.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub(super) const STATE_FILE: &str = "testbed.json";

/// What runs, written by `up` as it goes and read by `down` and `exec`. It holds no secret
/// (mode 0644), so `slicelab exec` finds the key without root.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Testbed {
    pub central_url: String,
    /// The fingerprint of central's own CA (clients pin it).
    #[serde(default)]
    pub central_ca_fingerprint: Option<String>,
    pub central_pid: Option<i32>,
    /// The foreground `slicelab up` that tears the testbed down on Ctrl-C (`None` when detached).
    pub up_pid: Option<i32>,
    pub nodes: Vec<TestbedNode>,
    /// The demo user's private key, when `up` knows it.
    pub user_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestbedNode {
    pub index: u8,
    pub hostname: String,
    pub address: Ipv4Addr,
    pub netns: String,
    pub pid: Option<i32>,
}

impl Testbed {
    pub fn load(dir: &Path) -> Option<Testbed> {
        let b = fs::read(dir.join(STATE_FILE)).ok()?;
        serde_json::from_slice(&b).ok()
    }

    pub(super) fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }
}

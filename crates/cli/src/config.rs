//! The user's login: which central, which token. Kept in `<config dir>/slicelab/config.toml`
//! (mode 0600: the token is a credential); `SLICELAB_CONFIG` names another file, and
//! `SLICELAB_CENTRAL` / `SLICELAB_TOKEN` override what the file says.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const ENV_CONFIG: &str = "SLICELAB_CONFIG";
pub const ENV_CENTRAL: &str = "SLICELAB_CENTRAL";
pub const ENV_TOKEN: &str = "SLICELAB_TOKEN";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Central's base URL(s), e.g. `https://127.0.0.1:8080`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub central: Option<String>,
    /// Session or API token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Who logged in (for display and as the default at the next login).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Trust central only through the CA with this fingerprint (`sha256:HEX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_fingerprint: Option<String>,
    /// Trust central only through the CA in this PEM file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Plain HTTP to a non-loopback central was explicitly allowed at login.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_plain_http: bool,
}

/// Where the config lives: `$SLICELAB_CONFIG`, else `<config dir>/slicelab/config.toml`.
pub fn path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(ENV_CONFIG).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let dir = dirs::config_dir()
        .context("cannot find the user's config directory (set HOME or SLICELAB_CONFIG)")?;
    Ok(dir.join("slicelab").join("config.toml"))
}

impl Config {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Config> {
        match fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file atomically with mode 0600 (its directory is created with 0700).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("setting the mode of {}", dir.display()))?;
            }
        }
        let text = toml::to_string(self).context("encoding the config")?;
        write_private(path, &text)
    }

    /// The file's values overridden by non-empty `central` / `token` (from the environment).
    pub fn with_overrides(mut self, central: Option<String>, token: Option<String>) -> Config {
        if let Some(c) = central.filter(|c| !c.is_empty()) {
            self.central = Some(c);
        }
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            self.token = Some(t);
        }
        self
    }

    /// The file's values overridden by `SLICELAB_CENTRAL` / `SLICELAB_TOKEN`.
    pub fn with_env(self) -> Config {
        self.with_overrides(
            std::env::var(ENV_CENTRAL).ok(),
            std::env::var(ENV_TOKEN).ok(),
        )
    }
}

/// Writes `text` to `path` atomically (a temporary file, synced, renamed) with mode 0600: for
/// files holding credentials (the login, a node's key and env file).
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

//! Which database `slicelab central` opens when `--db` names none, and the directory a SQLite
//! file needs. Pure functions first (unit-tested), then the one that touches the file system.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// `sqlite:///var/lib/slicelab/central.db` for root, else under the user's data directory.
pub fn default_db_url(is_root: bool, data_dir: Option<PathBuf>) -> String {
    let path = if is_root {
        PathBuf::from("/var/lib/slicelab/central.db")
    } else {
        data_dir
            .unwrap_or_else(|| PathBuf::from("."))
            .join("slicelab")
            .join("central.db")
    };
    format!("sqlite://{}", path.display())
}

/// The file of a `sqlite://PATH[?opts]` URL (none for in-memory databases and other schemes).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

/// The URL given, or the default for whoever runs central.
pub fn resolve(given: Option<String>) -> String {
    given.unwrap_or_else(|| default_db_url(nix::unistd::geteuid().is_root(), dirs::data_dir()))
}

/// Creates the directory of a SQLite database file (SQLite creates the file, not its directory).
pub fn create_sqlite_dir(url: &str) -> Result<()> {
    if let Some(dir) = sqlite_path(url).and_then(|p| p.parent().map(Path::to_path_buf)) {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Where central keeps its own CA unless `--tls-dir` says: `tls/` beside a SQLite file, else
/// `/var/lib/slicelab/tls` (PostgreSQL: central has no directory of its own otherwise).
pub fn default_tls_dir(db_url: &str) -> PathBuf {
    sqlite_path(db_url)
        .and_then(|p| p.parent().map(|d| d.join("tls")))
        .filter(|d| d != Path::new("tls"))
        .unwrap_or_else(|| PathBuf::from("/var/lib/slicelab/tls"))
}

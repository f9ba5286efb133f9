//! Per-sliver state on disk: `<state_dir>/slivers/<slice>/sliver.json`.
//!
//! Written atomically (temp file + rename + fsync) so a crash leaves either the old or the new
//! record, never a torn one.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use slicelab_model::SliverSpec;

use crate::error::{IoContext, NodeError};
use crate::names;

/// A process identified by pid *and* start time, so a recycled pid is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot).
    pub start_time: u64,
}

impl ProcId {
    pub fn of(pid: i32) -> Option<ProcId> {
        Some(ProcId {
            pid,
            start_time: proc_start_time(pid)?,
        })
    }

    /// Alive and not a zombie.
    pub fn is_alive(&self) -> bool {
        match proc_stat(self.pid) {
            Some((state, start)) => start == self.start_time && state != 'Z' && state != 'X',
            None => false,
        }
    }
}

/// (state, start_time) from `/proc/<pid>/stat`.
pub(crate) fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses; fields after the last ')' are fixed.
    let rest = &s[s.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    // state is field 3; start_time is field 22, i.e. 19 more after state.
    let start = f.nth(18)?.parse().ok()?;
    Some((state, start))
}

pub(crate) fn proc_start_time(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(_, t)| t)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliverRecord {
    pub spec: SliverSpec,
    /// Allocated once at create, kept across restarts so the sliver keeps its address.
    pub address: Option<Ipv4Addr>,
    /// The sliver's init (PID 1 inside), as seen from the host.
    pub init: Option<ProcId>,
    #[serde(default)]
    pub failure: Option<String>,
    #[serde(default)]
    pub failures: u32,
    #[serde(default)]
    pub retry_after: i64,
    /// Set while bwmon throttles the sliver (daily egress cap reached): why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled: Option<String>,
    /// The slice's host uid/gid range (root inside is `base` outside). `None` only in a record
    /// written before user namespaces; such a sliver gets one at its next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<crate::sandbox::userns::IdRange>,
    /// The base of the range the writable layer's files are owned by (`shift`); absent: host
    /// ids, as before user namespaces (or a new, empty layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_owner: Option<u32>,
}

pub fn record_path(state_dir: &Path, slice: &str) -> PathBuf {
    names::sliver_dir(state_dir, slice).join("sliver.json")
}

pub fn load(state_dir: &Path, slice: &str) -> Result<Option<SliverRecord>, NodeError> {
    let path = record_path(state_dir, slice);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| NodeError::State {
                path,
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx(|| format!("reading {}", path.display())),
    }
}

pub fn save(state_dir: &Path, rec: &SliverRecord) -> Result<(), NodeError> {
    let path = record_path(state_dir, &rec.spec.slice_name);
    let bytes = serde_json::to_vec_pretty(rec).map_err(|e| NodeError::State {
        path: path.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&path, &bytes)
}

/// [`save`] without waiting for the disk: atomic (a temp file renamed over), not durable. For the
/// first record of a brand-new sliver, which nothing on disk depends on yet: lost or left empty by
/// a power cut, it reads as no record, and the sliver is created again from the desired state.
/// It becomes durable with the [`save`] after the sliver's first start.
pub fn save_unsynced(state_dir: &Path, rec: &SliverRecord) -> Result<(), NodeError> {
    let path = record_path(state_dir, &rec.spec.slice_name);
    let bytes = serde_json::to_vec_pretty(rec).map_err(|e| NodeError::State {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, &bytes).ctx(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).ctx(|| format!("renaming {}", tmp.display()))
}

/// Writes `bytes` to `path` atomically and durably, creating its directory: temp file, fsync,
/// rename, directory fsync (the rename must be durable too for "killed at any point" to hold
/// after a power cut). One implementation for the node: [`slicelab_spool::write_atomic`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    slicelab_spool::write_atomic(path, bytes).ctx(|| format!("writing {}", path.display()))
}

/// Slice names that have a directory under `slivers/` (with or without a readable record).
pub fn list_slices(state_dir: &Path) -> Result<Vec<String>, NodeError> {
    let dir = names::slivers_dir(state_dir);
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).ctx(|| format!("listing {}", dir.display())),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        if let Some(n) = e.file_name().to_str() {
            if names::check_slice_name(n).is_ok() && e.path().is_dir() {
                out.push(n.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_recycled_pid_is_not() {
        let me = ProcId::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = ProcId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
    }

    #[test]
    fn record_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let rec = SliverRecord {
            spec: SliverSpec {
                slice_id: 3,
                slice_name: "pl_a".into(),
                expires: 9,
                run: true,
                keys: vec![],
                resources: Default::default(),
                image_digest: None,
            },
            address: Some(Ipv4Addr::new(10, 77, 0, 2)),
            init: None,
            failure: None,
            failures: 0,
            retry_after: 0,
            throttled: None,
            idmap: None,
            layer_owner: None,
        };
        save(dir.path(), &rec).unwrap();
        assert_eq!(load(dir.path(), "pl_a").unwrap(), Some(rec));
        assert_eq!(list_slices(dir.path()).unwrap(), vec!["pl_a".to_string()]);
        assert_eq!(load(dir.path(), "pl_b").unwrap(), None);
    }
}

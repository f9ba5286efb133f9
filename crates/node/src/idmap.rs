//! Allocation of each slice's host uid/gid range (see `sandbox::userns`).
//!
//! Ranges must be unique on the *machine*, not just per node manager: the local testbed runs
//! several node managers on one host, and two slices sharing host ids could signal or read each
//! other's processes and files after any escape from their namespaces. So the ranges live in one
//! machine-wide registry file (default `/var/lib/slicelab/idmaps.json`, locked with `flock`),
//! each entry naming the sliver directory that owns it. A range is kept as long as that sliver
//! exists, across node-manager restarts and reboots (the sliver's record holds it too), and is
//! released when the sliver is destroyed; an entry whose sliver directory vanished (a deleted
//! test state dir, a reinstalled node) is reclaimed at the next allocation.
//!
//! The sliver records are the durable copy: the registry is written without fsync and made whole
//! again from the records whenever a runtime opens. The pure part — choosing the lowest free
//! block — is [`choose`].

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, NodeError};
use crate::sandbox::userns::{IdRange, RANGE_SIZE};

/// Where the machine's registry lives unless configured otherwise.
pub const DEFAULT_REGISTRY: &str = "/var/lib/slicelab/idmaps.json";

/// First base handed out: 2^28, far above login accounts and the `/etc/subuid` blocks tools
/// allocate from 100,000 upwards.
pub const FIRST_BASE: u32 = 1 << 28;
/// Number of ranges that fit between [`FIRST_BASE`] and the top of the 32-bit id space (less one
/// block, so `u32::MAX`, the invalid id, is never mapped).
pub const CAPACITY: u32 = (u32::MAX - FIRST_BASE) / RANGE_SIZE - 1;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Registry {
    /// base → owning sliver directory.
    ranges: BTreeMap<u32, PathBuf>,
}

/// The lowest free range, given the bases in use.
pub fn choose(used: &[u32]) -> Option<IdRange> {
    (0..CAPACITY)
        .map(|i| FIRST_BASE + i * RANGE_SIZE)
        .find(|b| !used.contains(b))
        .map(|base| IdRange { base })
}

/// Runs `f` on the registry under an exclusive lock and saves it.
fn with_registry<T>(
    path: &Path,
    f: impl FnOnce(&mut Registry) -> Result<T, NodeError>,
) -> Result<T, NodeError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    let lock_path = path.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .ctx(|| format!("opening {}", lock_path.display()))?;
    // SAFETY: flock on a descriptor we own; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| format!("locking {}", lock_path.display()));
    }
    let mut reg: Registry = match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| NodeError::State {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Registry::default(),
        Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
    };
    let out = f(&mut reg)?;
    let bytes = serde_json::to_vec_pretty(&reg).map_err(|e| NodeError::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    // Replaced atomically but not fsynced: it is a cache of the sliver records, which hold each
    // range durably; a registry that lost a write to a crash is made whole again from them when
    // the runtime opens (`LinuxRuntime::new`). That keeps two fsyncs off every sliver's creation.
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, &bytes).ctx(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).ctx(|| format!("renaming {}", tmp.display()))?;
    Ok(out)
}

/// The range of the sliver at `sliver_dir`: its registered one, or a newly allocated one.
pub fn allocate(registry: &Path, sliver_dir: &Path) -> Result<IdRange, NodeError> {
    with_registry(registry, |reg| {
        if let Some((b, _)) = reg.ranges.iter().find(|(_, o)| o.as_path() == sliver_dir) {
            return Ok(IdRange { base: *b });
        }
        reg.ranges.retain(|_, owner| owner.exists());
        let used: Vec<u32> = reg.ranges.keys().copied().collect();
        let range = choose(&used).ok_or_else(|| NodeError::Invalid {
            what: "uid ranges",
            message: format!("all {CAPACITY} ranges of this machine are in use"),
        })?;
        reg.ranges.insert(range.base, sliver_dir.to_path_buf());
        Ok(range)
    })
}

/// Re-registers a range a sliver already holds (its record survived, the registry did not).
/// Fails if another sliver holds it now.
pub fn claim(registry: &Path, sliver_dir: &Path, range: IdRange) -> Result<(), NodeError> {
    with_registry(registry, |reg| match reg.ranges.get(&range.base) {
        Some(owner) if owner != sliver_dir && owner.exists() => Err(NodeError::Invalid {
            what: "uid range",
            message: format!(
                "range {} of {} is held by {}",
                range.base,
                sliver_dir.display(),
                owner.display()
            ),
        }),
        _ => {
            reg.ranges.insert(range.base, sliver_dir.to_path_buf());
            Ok(())
        }
    })
}

/// Releases the range of the sliver at `sliver_dir` (destroyed: its directory is gone). Kept if
/// the directory exists again (a sliver of the same name created meanwhile owns it now), so
/// this may run after the destroy, off its path.
pub fn release(registry: &Path, sliver_dir: &Path) -> Result<(), NodeError> {
    if !registry.exists() {
        return Ok(());
    }
    with_registry(registry, |reg| {
        let gone = !sliver_dir.exists();
        reg.ranges
            .retain(|_, owner| owner.as_path() != sliver_dir || !gone);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_block_is_chosen_and_ranges_never_overlap() {
        assert_eq!(choose(&[]), Some(IdRange { base: FIRST_BASE }));
        let second = FIRST_BASE + RANGE_SIZE;
        assert_eq!(choose(&[FIRST_BASE]), Some(IdRange { base: second }));
        assert_eq!(
            choose(&[second]),
            Some(IdRange { base: FIRST_BASE }),
            "a freed block is reused"
        );
        let last = FIRST_BASE + (CAPACITY - 1) * RANGE_SIZE;
        assert!(u64::from(last) + u64::from(RANGE_SIZE) < u64::from(u32::MAX));
    }

    #[test]
    fn registry_allocates_keeps_reclaims_and_releases() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = tmp.path().join("idmaps.json");
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        let ra = allocate(&reg, &a).unwrap();
        let rb = allocate(&reg, &b).unwrap();
        assert_ne!(ra, rb);
        assert_eq!(allocate(&reg, &a).unwrap(), ra, "stable for its owner");
        assert!(claim(&reg, &a, rb).is_err(), "b's range is b's");
        release(&reg, &a).unwrap();
        assert_eq!(
            allocate(&reg, &a).unwrap(),
            ra,
            "a late release keeps the range of a sliver made again meanwhile"
        );
        fs::remove_dir_all(&a).unwrap();
        release(&reg, &a).unwrap();
        // b's directory disappears without a release: reclaimed at the next allocation.
        fs::remove_dir_all(&b).unwrap();
        let c = tmp.path().join("c");
        fs::create_dir_all(&c).unwrap();
        assert_eq!(allocate(&reg, &c).unwrap(), ra);
        let d = tmp.path().join("d");
        fs::create_dir_all(&d).unwrap();
        assert_eq!(allocate(&reg, &d).unwrap(), rb);
    }
}

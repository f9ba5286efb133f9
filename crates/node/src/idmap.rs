//! Allocation of each slice's host uid/gid range (see `sandbox::userns`).
//!
//! Ranges must be unique on the *machine*, not just per node manager: the local testbed runs
//! several node managers on one host, and two slices sharing host ids could signal or read each
//! other's processes and files after any escape from their namespaces. So the ranges live in one
//! machine-wide registry, locked with `flock`, each entry naming the sliver directory that owns
//! it. A range is kept as long as that sliver exists, across node-manager restarts and reboots
//! (the sliver's record holds it too), and is released when the sliver is destroyed; an entry
//! whose sliver directory vanished (a deleted test state dir, a reinstalled node) is reclaimed
//! at the next allocation.
//!
//! The registry is a directory (`<registry>` with extension `d`, default
//! `/var/lib/slicelab/idmaps.d`) with one symbolic link per range: named after the range's base,
//! pointing at the owning directory. Changing an entry is one `symlink` (and one `unlink`), not a
//! rewrite of a file: replacing a regular file by rename makes ext4 write the new one's data out
//! on the spot (`auto_da_alloc`), ~0.1–0.3 ms that every sliver's creation paid. A registry of
//! the earlier format (one JSON file at `<registry>`) is imported once, under the lock, and the
//! file replaced by one that a node manager of that format refuses to read (rather than find it
//! empty and hand out ranges taken here).
//!
//! The sliver records are the durable copy: the registry is written without fsync and made whole
//! again from the records whenever a runtime opens. The pure part — choosing the lowest free
//! block — is [`choose`].

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{IoContext, NodeError};
use crate::sandbox::userns::{IdRange, RANGE_SIZE};

/// Where the machine's registry lives unless configured otherwise (its entries are in
/// `idmaps.d`, next to it).
pub const DEFAULT_REGISTRY: &str = "/var/lib/slicelab/idmaps.json";

/// First base handed out: 2^28, far above login accounts and the `/etc/subuid` blocks tools
/// allocate from 100,000 upwards.
pub const FIRST_BASE: u32 = 1 << 28;
/// Number of ranges that fit between [`FIRST_BASE`] and the top of the 32-bit id space (less one
/// block, so `u32::MAX`, the invalid id, is never mapped).
pub const CAPACITY: u32 = (u32::MAX - FIRST_BASE) / RANGE_SIZE - 1;

/// The earlier format: one JSON file. Once imported it is replaced by [`MOVED`], which a node
/// manager of that format refuses to read (it has no `ranges`), rather than allocate from an
/// empty registry.
#[derive(Debug, Default, Deserialize)]
struct Legacy {
    /// base → owning sliver directory.
    #[serde(default)]
    ranges: BTreeMap<u32, PathBuf>,
    /// Set in [`MOVED`]: nothing to import.
    #[serde(default)]
    moved_to: Option<String>,
}

/// What the earlier format's file holds once imported.
const MOVED: &str = "{\"moved_to\": \"idmaps.d\"}\n";

/// The lowest free range, given the bases in use.
pub fn choose(used: &[u32]) -> Option<IdRange> {
    (0..CAPACITY)
        .map(|i| FIRST_BASE + i * RANGE_SIZE)
        .find(|b| !used.contains(b))
        .map(|base| IdRange { base })
}

/// The registry's entries, one symbolic link per range (see the module doc). Only used under the
/// registry's lock ([`with_registry`]).
struct Entries {
    dir: PathBuf,
}

impl Entries {
    fn path(&self, base: u32) -> PathBuf {
        self.dir.join(base.to_string())
    }

    /// The owner of range `base`, if registered.
    fn owner(&self, base: u32) -> Option<PathBuf> {
        fs::read_link(self.path(base)).ok()
    }

    /// Every entry: (base, owner).
    fn all(&self) -> Result<Vec<(u32, PathBuf)>, NodeError> {
        let rd = fs::read_dir(&self.dir).ctx(|| format!("listing {}", self.dir.display()))?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            let Some(base) = e.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Ok(owner) = fs::read_link(e.path()) {
                out.push((base, owner));
            }
        }
        Ok(out)
    }

    /// Registers `owner` for range `base`, replacing any owner it had.
    fn set(&self, base: u32, owner: &Path) -> Result<(), NodeError> {
        let p = self.path(base);
        self.remove(base)?;
        symlink(owner, &p).ctx(|| format!("writing {}", p.display()))
    }

    fn remove(&self, base: u32) -> Result<(), NodeError> {
        let p = self.path(base);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).ctx(|| format!("removing {}", p.display()))
            }
            _ => Ok(()),
        }
    }

    /// Imports the earlier format's file at `legacy`, if there is one not imported yet, and puts
    /// [`MOVED`] in its place (also where there was none: a node manager of that format must
    /// not find an empty registry). An empty file is a marker cut short by a crash.
    fn import(&self, legacy: &Path) -> Result<(), NodeError> {
        let bytes = match fs::read(legacy) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Vec::new(),
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).ctx(|| format!("reading {}", legacy.display())),
        };
        if !bytes.is_empty() {
            let old: Legacy = serde_json::from_slice(&bytes).map_err(|e| NodeError::State {
                path: legacy.to_path_buf(),
                message: e.to_string(),
            })?;
            if old.moved_to.is_some() {
                return Ok(());
            }
            for (base, owner) in old.ranges {
                if self.owner(base).is_none() {
                    self.set(base, &owner)?;
                }
            }
        }
        let tmp = legacy.with_extension("moved");
        fs::write(&tmp, MOVED).ctx(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, legacy).ctx(|| format!("renaming {}", tmp.display()))
    }
}

/// Runs `f` on the registry at `path` under its exclusive lock.
fn with_registry<T>(
    path: &Path,
    f: impl FnOnce(&Entries) -> Result<T, NodeError>,
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
    let entries = Entries {
        dir: path.with_extension("d"),
    };
    if !entries.dir.is_dir() {
        fs::create_dir_all(&entries.dir).ctx(|| format!("creating {}", entries.dir.display()))?;
    }
    entries.import(path)?;
    f(&entries)
}

/// The range of the sliver at `sliver_dir`: its registered one, or a newly allocated one.
pub fn allocate(registry: &Path, sliver_dir: &Path) -> Result<IdRange, NodeError> {
    with_registry(registry, |reg| {
        let all = reg.all()?;
        if let Some((b, _)) = all.iter().find(|(_, o)| o.as_path() == sliver_dir) {
            return Ok(IdRange { base: *b });
        }
        let mut used = Vec::with_capacity(all.len());
        for (base, owner) in all {
            if owner.exists() {
                used.push(base);
            } else {
                reg.remove(base)?;
            }
        }
        let range = choose(&used).ok_or_else(|| NodeError::Invalid {
            what: "uid ranges",
            message: format!("all {CAPACITY} ranges of this machine are in use"),
        })?;
        reg.set(range.base, sliver_dir)?;
        Ok(range)
    })
}

/// Re-registers a range a sliver already holds (its record survived, the registry did not, or
/// its directory was renamed to it: `warm`). Fails if another sliver holds it now.
pub fn claim(registry: &Path, sliver_dir: &Path, range: IdRange) -> Result<(), NodeError> {
    with_registry(registry, |reg| match reg.owner(range.base) {
        Some(owner) if owner == sliver_dir => Ok(()),
        Some(owner) if owner.exists() => Err(NodeError::Invalid {
            what: "uid range",
            message: format!(
                "range {} of {} is held by {}",
                range.base,
                sliver_dir.display(),
                owner.display()
            ),
        }),
        _ => reg.set(range.base, sliver_dir),
    })
}

/// Renames directory `from`, the owner of `range`, to `to`, which then owns it (a sliver built
/// ahead becoming a new sliver: `warm`). Under the registry's lock, so no allocation finds the
/// range without a live owner meanwhile. Entries `to` held (a range a destroyed sliver of the
/// same name had, not released yet) are dropped: it owns `range` now.
pub fn move_owner(
    registry: &Path,
    range: IdRange,
    from: &Path,
    to: &Path,
) -> Result<(), NodeError> {
    with_registry(registry, |reg| {
        if reg.owner(range.base).as_deref() != Some(from) {
            return Err(NodeError::Invalid {
                what: "uid range",
                message: format!("range {} is not held by {}", range.base, from.display()),
            });
        }
        fs::rename(from, to).ctx(|| format!("renaming {} to {}", from.display(), to.display()))?;
        for (base, owner) in reg.all()? {
            if owner == to && base != range.base {
                reg.remove(base)?;
            }
        }
        reg.set(range.base, to)
    })
}

/// Releases the range of the sliver at `sliver_dir` (destroyed: its directory is gone). Kept if
/// the directory exists again (a sliver of the same name created meanwhile owns it now), so
/// this may run after the destroy, off its path.
pub fn release(registry: &Path, sliver_dir: &Path) -> Result<(), NodeError> {
    let d = registry.with_extension("d");
    if !d.exists() && !registry.exists() {
        return Ok(());
    }
    with_registry(registry, |reg| {
        if sliver_dir.exists() {
            return Ok(());
        }
        for (base, owner) in reg.all()? {
            if owner == sliver_dir {
                reg.remove(base)?;
            }
        }
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

    #[test]
    fn a_range_moves_with_its_directory_and_the_new_owner_keeps_only_it() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = tmp.path().join("idmaps.json");
        let (warm, sliver, other) = (
            tmp.path().join("warm"),
            tmp.path().join("sliver"),
            tmp.path().join("other"),
        );
        fs::create_dir_all(&warm).unwrap();
        let w = allocate(&reg, &warm).unwrap();
        // A destroyed sliver of the same name still holds a range (its release comes later).
        fs::create_dir_all(&sliver).unwrap();
        let old = allocate(&reg, &sliver).unwrap();
        fs::remove_dir(&sliver).unwrap();
        fs::create_dir_all(&other).unwrap();
        assert!(
            move_owner(&reg, w, &other, &sliver).is_err(),
            "not other's range"
        );
        move_owner(&reg, w, &warm, &sliver).unwrap();
        assert!(sliver.is_dir() && !warm.exists());
        assert_eq!(allocate(&reg, &sliver).unwrap(), w);
        // The old range is free again: the next new owner gets it.
        assert_eq!(allocate(&reg, &other).unwrap(), old);
    }

    #[test]
    fn a_registry_of_the_earlier_format_is_imported_once() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = tmp.path().join("idmaps.json");
        let a = tmp.path().join("a");
        fs::create_dir_all(&a).unwrap();
        let held = FIRST_BASE + 3 * RANGE_SIZE;
        fs::write(
            &reg,
            format!(r#"{{"ranges": {{"{held}": "{}"}}}}"#, a.display()),
        )
        .unwrap();
        assert_eq!(allocate(&reg, &a).unwrap(), IdRange { base: held });
        // What an older node manager reads there now makes it refuse, not allocate.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Older {
            ranges: BTreeMap<u32, PathBuf>,
        }
        let left = fs::read(&reg).unwrap();
        assert!(serde_json::from_slice::<Older>(&left).is_err());
        let b = tmp.path().join("b");
        fs::create_dir_all(&b).unwrap();
        assert!(
            claim(&reg, &b, IdRange { base: held }).is_err(),
            "a's range is a's"
        );
        assert_eq!(allocate(&reg, &b).unwrap(), IdRange { base: FIRST_BASE });
    }
}

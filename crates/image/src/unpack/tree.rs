//! The unpacked tree: every filesystem call of the unpacker, relative to one directory fd.
//!
//! **Security boundary.** Parents are resolved with `openat2(root, parent, RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`: a symlink in the tree, absolute or climbing, resolves as if `root`
//! were `/`, never outside it. The final component is then made with a `*at()` call on that
//! parent's fd and a single name (no `/`), with `O_NOFOLLOW`/`O_EXCL` or `AT_SYMLINK_NOFOLLOW`,
//! so it never follows a link either. Nothing here takes a path that is not relative to a
//! descriptor inside the tree.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid,
    XattrFlags,
};
use rustix::io::Errno;

use super::path::join;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// Owner, permission bits and modification time of an entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub mtime: i64,
}

impl Meta {
    fn times(&self) -> Timestamps {
        let t = Timespec {
            tv_sec: self.mtime,
            tv_nsec: 0,
        };
        Timestamps {
            last_access: t,
            last_modification: t,
        }
    }

    fn owner(&self) -> (Option<Uid>, Option<Gid>) {
        (Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid)))
    }
}

/// Why a parent directory could not be had.
#[derive(Debug)]
pub(crate) enum ParentError {
    /// The layer's own structure is at fault (a file or dangling symlink where a directory
    /// should be).
    NotADirectory(io::Error),
    Io(io::Error),
}

/// An error of a final-component call.
#[derive(Debug)]
pub(crate) enum PlaceError {
    ReplacesDirectory,
    /// The entry's content could not be read from the tar (truncated, corrupt).
    BadContent(String),
    Io(io::Error),
}

impl From<io::Error> for PlaceError {
    fn from(e: io::Error) -> Self {
        PlaceError::Io(e)
    }
}

impl From<Errno> for PlaceError {
    fn from(e: Errno) -> Self {
        PlaceError::Io(e.into())
    }
}

/// The root of an unpacked layer.
pub(crate) struct Tree {
    root: OwnedFd,
}

impl Tree {
    pub(crate) fn open(dest: &Path) -> io::Result<Tree> {
        let root = rfs::open(dest, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
        Ok(Tree { root })
    }

    fn resolve(&self, comps: &[&[u8]], flags: OFlags) -> io::Result<OwnedFd> {
        Ok(rfs::openat2(
            &self.root,
            join(comps),
            flags,
            Mode::empty(),
            RESOLVE,
        )?)
    }

    /// The directory `comps` (resolved inside the tree), created one component at a time
    /// (mode 0755, owned by root) where missing. A dangling symlink on the way is followed the
    /// way the kernel would (inside the tree) and the missing directories made at its target.
    pub(crate) fn dir(&self, comps: &[&[u8]]) -> Result<OwnedFd, ParentError> {
        match self.resolve(comps, DIR_FLAGS) {
            Ok(fd) => Ok(fd),
            Err(e) if is(&e, Errno::NOENT) => {
                let owned = comps.iter().map(|c| c.to_vec()).collect();
                self.make_dirs(owned, 0)
            }
            Err(e) => Err(classify(e)),
        }
    }

    fn make_dirs(&self, comps: Vec<Vec<u8>>, links: u32) -> Result<OwnedFd, ParentError> {
        let borrowed: Vec<&[u8]> = comps.iter().map(|c| c.as_slice()).collect();
        let mut cur = self.resolve(&[], DIR_FLAGS).map_err(ParentError::Io)?;
        for i in 0..comps.len() {
            let prefix = &borrowed[..=i];
            cur = match self.resolve(prefix, DIR_FLAGS) {
                Ok(fd) => fd,
                Err(e) if is(&e, Errno::NOENT) => {
                    // `cur` is the resolved parent; `comps[i]` is one name: no traversal.
                    match rfs::mkdirat(&cur, prefix[i], Mode::from_raw_mode(0o755)) {
                        Ok(()) => self.resolve(prefix, DIR_FLAGS).map_err(classify)?,
                        Err(Errno::EXIST) => {
                            let target = dangling_target(&cur, prefix[i], links)?;
                            let mut next = lexical(&borrowed[..i], &target);
                            next.extend(comps[i + 1..].iter().cloned());
                            return self.make_dirs(next, links + 1);
                        }
                        Err(e) => return Err(classify(e.into())),
                    }
                }
                Err(e) => return Err(classify(e)),
            };
        }
        Ok(cur)
    }

    /// The regular file at `comps` (resolved inside the tree, final component not followed), as
    /// an `O_PATH` descriptor; `None` if it is missing or not a regular file.
    pub(crate) fn regular_file(&self, comps: &[&[u8]]) -> io::Result<Option<OwnedFd>> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match self.resolve(comps, flags) {
            Ok(fd) => fd,
            Err(e)
                if [Errno::NOENT, Errno::LOOP, Errno::NOTDIR]
                    .iter()
                    .any(|n| is(&e, *n)) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let st = rfs::fstat(&fd)?;
        Ok((FileType::from_raw_mode(st.st_mode) == FileType::RegularFile).then_some(fd))
    }

    /// Sets a directory's mtime at the end of the unpack (entries added to it change it);
    /// skipped if `comps` is no longer a directory.
    pub(crate) fn set_dir_mtime(&self, comps: &[&[u8]], mtime: i64) -> io::Result<()> {
        let meta = Meta {
            uid: 0,
            gid: 0,
            mode: 0,
            mtime,
        };
        match self.resolve(comps, DIR_FLAGS | OFlags::NOFOLLOW) {
            Ok(fd) => Ok(rfs::futimens(&fd, &meta.times())?),
            Err(e) if e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn is(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

/// Most symlinks followed while making one parent (the kernel's limit).
const MAX_LINKS: u32 = 40;

/// The target of `name` in `dir` when it is a symlink (whose target is missing, since
/// resolving through it failed); otherwise a structural error.
fn dangling_target(dir: &OwnedFd, name: &[u8], links: u32) -> Result<Vec<u8>, ParentError> {
    let not_dir = |msg: &str| ParentError::NotADirectory(io::Error::other(msg.to_string()));
    if links >= MAX_LINKS {
        return Err(not_dir("too many levels of symbolic links"));
    }
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| classify(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
        return Err(not_dir("a non-directory is in the way"));
    }
    let target = rfs::readlinkat(dir, name, Vec::new()).map_err(|e| classify(e.into()))?;
    Ok(target.into_bytes())
}

/// Where a symlink in directory `base` pointing at `target` leads, as components from the
/// tree's root: absolute targets start at the root, `..` never climbs above it (as with
/// `RESOLVE_IN_ROOT`).
pub(crate) fn lexical(base: &[&[u8]], target: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = if target.starts_with(b"/") {
        Vec::new()
    } else {
        base.iter().map(|c| c.to_vec()).collect()
    };
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c.to_vec()),
        }
    }
    out
}

fn classify(e: io::Error) -> ParentError {
    let structural = [
        Errno::NOTDIR,
        Errno::NOENT,
        Errno::EXIST,
        Errno::LOOP,
        Errno::XDEV,
    ];
    if structural
        .iter()
        .any(|n| e.raw_os_error() == Some(n.raw_os_error()))
    {
        ParentError::NotADirectory(e)
    } else {
        ParentError::Io(e)
    }
}

/// Makes room for a new entry `name` in `parent`: an existing non-directory is removed (later
/// tar entries win). Returns whether a directory is already there (kept only if `dir_ok`).
fn clear(parent: &OwnedFd, name: &[u8], dir_ok: bool) -> Result<bool, PlaceError> {
    let st = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        return if dir_ok {
            Ok(true)
        } else {
            Err(PlaceError::ReplacesDirectory)
        };
    }
    rfs::unlinkat(parent, name, AtFlags::empty())?;
    Ok(false)
}

/// Owner first, then mode: `fchown` clears setuid/setgid, `fchmod` sets them back.
fn set_meta(fd: impl AsFd, meta: &Meta, times: bool) -> Result<(), PlaceError> {
    let (u, g) = meta.owner();
    rfs::fchown(&fd, u, g)?;
    rfs::fchmod(&fd, Mode::from_raw_mode(meta.mode & 0o7777))?;
    if times {
        rfs::futimens(&fd, &meta.times())?;
    }
    Ok(())
}

/// A new regular file, its content written by `fill`; returns what `fill` returned.
///
/// Setuid/setgid bits are kept: the tree is only ever seen by slivers through an idmapped mount
/// that maps its owners into the slice's unprivileged uid range, so a setuid-root file is
/// setuid to the sliver's root, never the host's.
pub(crate) fn create_file<T>(
    parent: &OwnedFd,
    name: &[u8],
    meta: &Meta,
    fill: impl FnOnce(&mut File) -> Result<T, PlaceError>,
) -> Result<T, PlaceError> {
    clear(parent, name, false)?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(parent, name, flags, Mode::from_raw_mode(0o600))?;
    let mut file = File::from(fd);
    let out = fill(&mut file)?;
    set_meta(&file, meta, true)?;
    Ok(out)
}

/// A directory (an existing one stays, its owner and mode updated); its mtime is the caller's
/// to set at the end.
pub(crate) fn make_dir(parent: &OwnedFd, name: &[u8], meta: &Meta) -> Result<(), PlaceError> {
    if !clear(parent, name, true)? {
        rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700))?;
    }
    let fd = rfs::openat(parent, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
    set_meta(&fd, meta, false)
}

/// The metadata of the tree's root itself (a `./` entry).
pub(crate) fn set_root_meta(tree: &Tree, meta: &Meta) -> Result<(), PlaceError> {
    set_meta(&tree.root, meta, false)
}

/// A symlink, its target stored verbatim (it is only ever resolved inside the tree or a
/// sliver's root).
pub(crate) fn make_symlink(
    parent: &OwnedFd,
    name: &[u8],
    target: &[u8],
    meta: &Meta,
) -> Result<(), PlaceError> {
    clear(parent, name, false)?;
    rfs::symlinkat(target, parent, name)?;
    let (u, g) = meta.owner();
    rfs::chownat(parent, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
    rfs::utimensat(parent, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// A hard link `name` to the regular file `target` (an `O_PATH` fd from
/// [`Tree::regular_file`]).
pub(crate) fn make_hardlink(
    parent: &OwnedFd,
    name: &[u8],
    target: &OwnedFd,
) -> Result<(), PlaceError> {
    clear(parent, name, false)?;
    rfs::linkat(target, "", parent, name, AtFlags::EMPTY_PATH)?;
    Ok(())
}

/// An overlayfs whiteout: a character device 0:0 named `name`.
pub(crate) fn make_whiteout(parent: &OwnedFd, name: &[u8]) -> Result<(), PlaceError> {
    clear(parent, name, false)?;
    let dev = rfs::makedev(0, 0);
    rfs::mknodat(parent, name, FileType::CharacterDevice, Mode::empty(), dev)?;
    Ok(())
}

/// Marks a directory opaque for overlayfs (`trusted.overlay.opaque=y`).
pub(crate) fn make_opaque(dir: &OwnedFd) -> Result<(), PlaceError> {
    rfs::fsetxattr(dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::lexical;

    #[test]
    fn symlink_targets_stay_under_the_root() {
        let v = |x: &[&str]| x.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(lexical(&[b"a", b"b"], b"c/d"), v(&["a", "b", "c", "d"]));
        assert_eq!(lexical(&[b"a", b"b"], b"/tmp/X"), v(&["tmp", "X"]));
        assert_eq!(lexical(&[b"a"], b"../../../../x"), v(&["x"]));
        assert_eq!(lexical(&[], b"./"), v(&[]));
    }
}

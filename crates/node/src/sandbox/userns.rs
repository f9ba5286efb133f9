//! The sliver's user namespace and its idmapped view of the shared image.
//!
//! Security boundary: root in a sliver is uid 0 of a user namespace whose ids map to the slice's
//! own 65,536-wide range of host ids ([`IdRange`]), never to host root. The launcher, still host
//! root, makes the namespace (a short-lived child unshares it, the launcher writes its maps),
//! clones the shared read-only image as an *idmapped* mount (host ids 0..65535 of the image
//! appear as the slice's range, so the image is shared by every sliver without copying or
//! chowning), and only then enters the namespace itself. See ARCHITECTURE.md, "What a sliver
//! can and cannot do", for the choice against overlayfs mounted inside the namespace.
//!
//! Every function here runs in the single-threaded launcher or exec helper, before `exec`.

use std::ffi::CString;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::{setns, CloneFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{pipe2, setgroups, setresgid, setresuid, Gid, Uid};
use serde::{Deserialize, Serialize};

/// Width of every slice's id range: a whole 16-bit uid space, as LXC and Docker's userns-remap
/// give a container, so images with ids up to 65,534 (`nobody`) work unchanged.
pub const RANGE_SIZE: u32 = 65_536;

/// A slice's host uid/gid range: in-sliver id `n` is host id `base + n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub base: u32,
}

impl IdRange {
    /// The host id of in-sliver id `n`.
    pub fn host(&self, n: u32) -> u32 {
        self.base + n
    }

    /// Whether host id `id` belongs to this range.
    pub fn contains(&self, id: u32) -> bool {
        id >= self.base && id - self.base < RANGE_SIZE
    }

    /// The line written to `uid_map` and `gid_map`.
    pub fn map_line(&self) -> String {
        format!("0 {} {}\n", self.base, RANGE_SIZE)
    }
}

type R<T> = Result<T, String>;

fn sys<T>(what: &str, r: nix::Result<T>) -> R<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// The short-lived child that holds a new user namespace until the launcher has a handle on
/// it. It exits by itself once released; dropping this reaps it (after the critical part of a
/// start, so no one waits for the child to be scheduled in between).
pub struct Holder(nix::unistd::Pid);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = waitpid(self.0, None);
    }
}

/// New user and network namespaces whose id maps are not written yet (see [`prepare`]).
pub struct Prepared {
    user: OwnedFd,
    net: OwnedFd,
    /// Closing it lets the holder exit. Declared before `holder`, so dropped before it: the
    /// holder's drop waits for the child.
    release: OwnedFd,
    holder: Holder,
}

/// Makes a new user namespace and a network namespace owned by it, and returns handles on both,
/// the user namespace not yet mapped: [`Prepared::map`] gives it the slice's range. The launcher
/// stays in its own namespaces: a child is *cloned into* the new namespaces (`CLONE_NEWUSER |
/// CLONE_NEWNET`: the user namespace is made first and owns the other, and both exist when
/// `clone` returns, with no wait for the child to run); the launcher keeps
/// `/proc/<child>/ns/{user,net}` open and holds the child until the maps are written.
///
/// Nothing here depends on the slice, so a launcher started ahead of any sliver (`launchers`)
/// does it while it waits: making a network namespace is the costliest step of a start. The
/// namespace objects are then charged to the node manager's cgroup, not the sliver's (a few
/// kilobytes of kernel memory). Nothing looks into the namespaces before they are mapped: files
/// whose owner depends on the map (`/proc/sys/net`) are only made when first looked up.
pub fn prepare() -> R<Prepared> {
    let (done_r, done_w) = sys("pipe", pipe2(OFlag::O_CLOEXEC))?;
    let (r_raw, w_raw) = (done_r.as_raw_fd(), done_w.as_raw_fd());
    // SAFETY: clone(2) without CLONE_VM and with a null stack behaves like fork(2): the child runs
    // on a copy of this process, which is single-threaded (maybe_run_sliver_init runs before any
    // thread). The child only calls async-signal-safe functions (close, read, _exit) on
    // descriptors it inherited, then exits without running the parent's destructors.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::SIGCHLD) as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if pid == 0 {
        // SAFETY: see above; drops its copies of the launcher's pipes to the node manager, waits
        // for the parent to close its end, then exits.
        unsafe {
            libc::close(0);
            libc::close(1);
            libc::close(w_raw);
            let mut byte = 0u8;
            libc::read(r_raw, (&mut byte as *mut u8).cast(), 1);
            libc::_exit(0)
        }
    }
    drop(done_r);
    if pid < 0 {
        return Err(format!(
            "clone(CLONE_NEWUSER | CLONE_NEWNET) failed (user namespaces unavailable?): {}",
            std::io::Error::last_os_error()
        ));
    }
    let holder = Holder(nix::unistd::Pid::from_raw(pid as i32));
    // The handles keep the namespaces alive once the child is gone.
    let open = |ns: &str| {
        File::open(format!("/proc/{pid}/ns/{ns}"))
            .map(OwnedFd::from)
            .map_err(|e| format!("opening the new {ns} namespace: {e}"))
    };
    match open("user").and_then(|user| Ok((user, open("net")?))) {
        Ok((user, net)) => Ok(Prepared {
            user,
            net,
            holder,
            release: done_w,
        }),
        Err(e) => {
            // Released before `holder` is dropped, which waits for it.
            drop(done_w);
            Err(e)
        }
    }
}

impl Prepared {
    /// Moves the caller into the new network namespace (host root has every capability over
    /// namespaces owned by a child user namespace, mapped or not).
    pub fn join_net(&self) -> R<()> {
        sys("setns(net)", setns(&self.net, CloneFlags::CLONE_NEWNET))
    }

    /// Maps the user namespace to `range` (the launcher is host root, with CAP_SETUID in the
    /// parent namespace) and lets the holder go; it is reaped when the returned [`Holder`] is
    /// dropped. `setgroups` stays allowed (written by a privileged process), so `su`, `sshd` and
    /// `apt` inside the sliver can drop supplementary groups.
    pub fn map(self, range: IdRange) -> R<(OwnedFd, Holder)> {
        let mapped = write_maps(self.holder.0.as_raw(), range);
        drop(self.release);
        mapped.map(|()| (self.user, self.holder))
    }
}

fn write_maps(pid: i32, range: IdRange) -> R<()> {
    let line = range.map_line();
    for file in ["uid_map", "gid_map"] {
        fs::write(format!("/proc/{pid}/{file}"), &line)
            .map_err(|e| format!("writing {file} ({}): {e}", line.trim()))?;
    }
    Ok(())
}

/// Enters the user namespace `ns` and becomes its root (host id `range.base`): no
/// supplementary groups, every uid and gid 0 inside. Host root keeps full capabilities *in the
/// namespace* only.
pub fn enter(ns: &OwnedFd) -> R<()> {
    sys("setns(user)", setns(ns, CloneFlags::CLONE_NEWUSER))?;
    become_root()
}

/// Root of the current user namespace, with no supplementary groups.
pub fn become_root() -> R<()> {
    sys("setgroups", setgroups(&[]))?;
    sys(
        "setresgid",
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)),
    )?;
    sys(
        "setresuid",
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)),
    )
}

/// Whether `pid` lives in another user namespace than the caller (a sliver started before user
/// namespaces were introduced shares the host's).
pub fn has_own_userns(pid: i32) -> R<bool> {
    let theirs = fs::metadata(format!("/proc/{pid}/ns/user"))
        .map_err(|e| format!("user namespace of {pid}: {e}"))?;
    let ours =
        fs::metadata("/proc/self/ns/user").map_err(|e| format!("own user namespace: {e}"))?;
    use std::os::unix::fs::MetadataExt;
    Ok((theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()))
}

// Constants of the new mount API (linux/mount.h, linux/fcntl.h); not all are in the libc crate.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn cpath(p: &Path) -> R<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("NUL in path {}", p.display()))
}

/// A detached, **read-only** clone of the tree at `src`, idmapped through user namespace `ns`: a
/// file owned by host uid `n` there appears owned by `range.base + n`. Read-only because image
/// layers are shared by every sliver: only the overlay above them takes writes. Needs host root (CAP_SYS_ADMIN over the
/// source filesystem) and a filesystem that supports idmapped mounts (ext4, xfs, btrfs, tmpfs…).
pub fn idmapped_clone(src: &Path, ns: &OwnedFd) -> R<OwnedFd> {
    let c = cpath(src)?;
    // SAFETY: open_tree(2) with a valid NUL-terminated path; it returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE,
        )
    };
    if fd < 0 {
        return Err(format!(
            "open_tree {}: {}",
            src.display(),
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `fd` was just returned by open_tree and is owned by nobody else.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: ns.as_raw_fd() as u64,
    };
    let empty = c"";
    // SAFETY: mount_setattr(2) on our own tree fd with an empty path (AT_EMPTY_PATH) and a
    // properly sized, initialised struct mount_attr that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(format!(
            "idmapping {} (the image's filesystem must support idmapped mounts): {}",
            src.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(tree)
}

/// Attaches the detached mount `tree` at `target` in the caller's mount namespace.
pub fn attach(tree: &OwnedFd, target: &Path) -> R<()> {
    let c = cpath(target)?;
    let empty = c"";
    // SAFETY: move_mount(2) from our detached tree fd (empty path) to a valid NUL-terminated
    // target path; no pointers are kept by the kernel.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(format!(
            "attaching the image at {}: {}",
            target.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_maps_sliver_ids_into_its_own_host_block() {
        let r = IdRange { base: 0x1001_0000 };
        assert_eq!(r.host(0), 0x1001_0000);
        assert_eq!(r.host(65_534), 0x1001_0000 + 65_534);
        assert!(r.contains(0x1001_0000));
        assert!(r.contains(0x1001_ffff));
        assert!(!r.contains(0x1002_0000));
        assert!(!r.contains(0));
        assert_eq!(r.map_line(), "0 268500992 65536\n");
    }
}

//! The sliver's user namespace and its idmapped view of the shared image.
//!
//! Security boundary: root in a sliver is uid 0 of a user namespace whose ids map to the slice's
//! own 65,536-wide range of host ids ([`IdRange`]), never to host root. The launcher, still host
//! root, makes the namespace (a child is cloned into it, the launcher writes its maps),
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

/// The child that holds a new user namespace, from a pooled launcher's start until the launcher
/// has mapped it and the child has made the sliver's network namespace in it. It exits by
/// itself once released; dropping this reaps it (after the critical part of a start, so no one
/// waits for the child to be scheduled in between).
pub struct Holder(nix::unistd::Pid);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = waitpid(self.0, None);
    }
}

/// A new user namespace whose id maps are not written yet (see [`prepare`]).
pub struct Prepared {
    user: OwnedFd,
    /// Tells the holder to make the network namespace; closing it lets the holder exit.
    /// Declared before `holder`, so dropped before it: the holder's drop waits for the child.
    command: OwnedFd,
    /// The holder's answer.
    answer: OwnedFd,
    holder: Holder,
}

/// The sliver's user namespace, mapped, and the network namespace it owns ([`Prepared::map`]).
pub struct Namespaces {
    pub user: OwnedFd,
    pub net: OwnedFd,
}

/// What the holder is told to do: make a network namespace, owned by its user namespace.
const MAKE_NET: u8 = b'n';

/// Makes a new user namespace, not yet mapped: [`Prepared::map`] gives it the slice's range and
/// then makes the network namespace it owns. The launcher stays in its own namespaces: a child
/// (the holder) is *cloned into* the new user namespace (`CLONE_NEWUSER`: it exists when `clone`
/// returns, with no wait for the child to run); the launcher keeps `/proc/<child>/ns/user` open
/// and holds the child until the maps are written and the network namespace made.
///
/// Nothing here depends on the slice, so a launcher started ahead of any sliver (`launchers`)
/// does it while it waits. The network namespace is not made ahead: the owner of its
/// `/proc/net` and of its devices' sysfs entries is fixed when they are made, from the map of
/// its user namespace at that moment (root inside if mapped, `nobody` before).
pub fn prepare() -> R<Prepared> {
    let (command_r, command_w) = sys("pipe", pipe2(OFlag::O_CLOEXEC))?;
    let (answer_r, answer_w) = sys("pipe", pipe2(OFlag::O_CLOEXEC))?;
    let (c_raw, a_raw) = (command_r.as_raw_fd(), answer_w.as_raw_fd());
    let (cw_raw, ar_raw) = (command_w.as_raw_fd(), answer_r.as_raw_fd());
    // SAFETY: clone(2) without CLONE_VM and with a null stack behaves like fork(2): the child runs
    // on a copy of this process, which is single-threaded (maybe_run_sliver_init runs before any
    // thread). The child only calls async-signal-safe functions (close, read, write, unshare,
    // _exit) on descriptors it inherited, then exits without running the parent's destructors.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if pid == 0 {
        // SAFETY: see above. Drops its copies of the launcher's pipes to the node manager and of
        // the parent's ends; on MAKE_NET makes the network namespace (it has every capability in
        // its user namespace, which owns the new one) and answers 0 or the errno; exits once the
        // parent closes its end.
        unsafe {
            libc::close(0);
            libc::close(1);
            libc::close(cw_raw);
            libc::close(ar_raw);
            let mut byte = 0u8;
            while libc::read(c_raw, (&mut byte as *mut u8).cast(), 1) == 1 {
                if byte == MAKE_NET {
                    let answer = if libc::unshare(libc::CLONE_NEWNET) == 0 {
                        0u8
                    } else {
                        std::io::Error::last_os_error().raw_os_error().unwrap_or(1) as u8
                    };
                    libc::write(a_raw, (&answer as *const u8).cast(), 1);
                }
            }
            libc::_exit(0)
        }
    }
    drop(command_r);
    drop(answer_w);
    if pid < 0 {
        return Err(format!(
            "clone(CLONE_NEWUSER) failed (user namespaces unavailable?): {}",
            std::io::Error::last_os_error()
        ));
    }
    let holder = Holder(nix::unistd::Pid::from_raw(pid as i32));
    // The handle keeps the namespace alive once the child is gone.
    match File::open(format!("/proc/{pid}/ns/user")) {
        Ok(user) => Ok(Prepared {
            user: user.into(),
            command: command_w,
            answer: answer_r,
            holder,
        }),
        Err(e) => {
            // Released before `holder` is dropped, which waits for it.
            drop(command_w);
            Err(format!("opening the new user namespace: {e}"))
        }
    }
}

impl Prepared {
    /// Maps the user namespace to `range` (the launcher is host root, with CAP_SETUID in the
    /// parent namespace), has the holder make the network namespace it owns, and lets the
    /// holder go; it is reaped when the returned [`Holder`] is dropped. `setgroups` stays allowed
    /// (written by a privileged process), so `su`, `sshd` and `apt` inside the sliver can drop
    /// supplementary groups.
    pub fn map(self, range: IdRange) -> R<(Namespaces, Holder)> {
        let Prepared {
            user,
            command,
            answer,
            holder,
        } = self;
        let pid = holder.0.as_raw();
        let net = write_maps(pid, range).and_then(|()| {
            nix::unistd::write(&command, &[MAKE_NET])
                .map_err(|e| format!("asking for the network namespace: {e}"))?;
            let mut code = [0u8; 1];
            match nix::unistd::read(answer.as_raw_fd(), &mut code) {
                Ok(1) if code[0] == 0 => {}
                Ok(1) => {
                    return Err(format!(
                        "making the network namespace: {}",
                        std::io::Error::from_raw_os_error(i32::from(code[0]))
                    ))
                }
                r => return Err(format!("making the network namespace: no answer ({r:?})")),
            }
            File::open(format!("/proc/{pid}/ns/net"))
                .map(OwnedFd::from)
                .map_err(|e| format!("opening the new network namespace: {e}"))
        });
        drop(command);
        net.map(|net| (Namespaces { user, net }, holder))
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

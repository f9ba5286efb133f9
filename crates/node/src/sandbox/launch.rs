//! The sliver launcher: the first process of a sliver, re-executed from the node manager's binary
//! as host root, usually ahead of any start (`crate::launchers`): it waits for its [`LaunchSpec`]
//! on stdin. Then, in order, each step needing what the previous one made:
//!
//! 1. (at start-up, before it makes a user namespace to wait in) reset the OOM killer's score it
//!    inherited from the node manager (exempt, -1000) to the default, which every process of the
//!    sliver inherits: none could raise its own later, and none may be exempt;
//! 2. map the slice's user namespace, made while the launcher waited for its spec
//!    (`userns::prepare`), and make the network namespace it owns, so root in the sliver has
//!    capabilities over its own network (ports below 1024, raw sockets) and nothing else; join
//!    that network namespace and say so ([`Report::Netns`]): the node manager wires it while the
//!    launcher goes on;
//! 3. in a private mount namespace still owned by the host, attach the shared image idmapped into
//!    the slice's range and mount the overlay root on it (`rootfs::mount_overlay`);
//! 4. enter the user namespace as its root, then unshare mount, UTS, IPC and PID namespaces,
//!    which the user namespace now owns;
//! 5. wait until the node manager has moved it into the sliver's cgroups ([`Release::Joined`]),
//!    which it does meanwhile, so the init is born in them and no user code ever runs outside
//!    them; fork the init (PID 1 of the new PID namespace), report its pid, and exit once the
//!    node manager closes its stdin (after the release).
//!
//! A warm launcher (`crate::warm`, [`LaunchSpec::warm`]) does the same for a sliver whose slice is
//! not known yet, except that it forks the init without waiting for step 5: the init builds the
//! root and waits for its [`Assignment`] (see `init`), and the node manager kills the launcher
//! then (its mount namespaces, copies of the host's, must not outlive that).

use std::fs::{self, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{fork, getpid, ForkResult};
use serde::{Deserialize, Serialize};

use super::handshake::{Release, Report};
use super::service::Service;
use super::userns::{self, IdRange};
use super::{exec, init, rootfs, seccomp};

/// Environment variable that turns the current binary into a sliver launcher. The launcher waits
/// for its [`LaunchSpec`] as one JSON line on stdin, so the node manager can start it ahead of
/// any sliver (`runtime`'s pool of ready launchers) and hand it a spec when a sliver starts.
pub const INIT_ENV: &str = "SLICELAB_SLIVER_INIT";

/// What the launcher needs to build a sliver: one JSON line the runtime writes on its stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub slice: String,
    /// The shared image's layers (host ids), top first: one directory for the built-in and
    /// hand-imported images, one per layer for published ones.
    pub lowers: Vec<PathBuf>,
    /// Where the idmapped views of `lowers` are attached, as `<image_mnt>/<i>` (in the
    /// launcher's mount namespace only).
    pub image_mnt: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub rootfs: PathBuf,
    /// The initscript's stdout/stderr and the init's own messages.
    pub console: PathBuf,
    /// What the init keeps running (`service::Service::for_sliver`).
    pub service: Option<Service>,
    /// The slice's host id range: root in the sliver is `idmap.base` on the host.
    pub idmap: IdRange,
    /// A warm sliver (`crate::warm`): built before its slice is known, so `slice` and `service`
    /// are empty; the init waits for its [`Assignment`] once its root is built.
    #[serde(default)]
    pub warm: bool,
}

/// What a warm sliver's init is told when a slice takes it: one JSON line on its stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    pub slice: String,
    pub service: Option<Service>,
}

/// Call this first thing in `main` of any binary that hosts the node manager, *before* starting
/// threads or a tokio runtime: when the process was re-executed as a sliver launcher or exec
/// helper it does that job and exits; otherwise it returns at once.
pub fn maybe_run_sliver_init() {
    if std::env::var_os(INIT_ENV).is_some() {
        // The OOM killer's default score for the sliver: the node manager is exempt (-1000), and
        // its children inherit that. Reset while still host root and dumpable: once the uids
        // change, `/proc/self` is the host root's, and no process of the sliver can reset its
        // own (making one dumpable to do it would let the slice's root `ptrace` it first). With
        // CAP_SYS_RESOURCE the write also sets the floor below which no process of the sliver
        // may go. A failure is reported once a sliver asks for this launcher.
        let oom = reset_oom_score();
        // Made while the launcher waits for its spec (see `userns::prepare`); a failure is
        // reported once a sliver asks for it.
        let prepared = userns::prepare();
        let mut lines = StdinLines::default();
        let launched = read_spec(&mut lines).and_then(|spec| {
            spec.map_or(Ok(()), |s| {
                oom.and_then(|()| launch(s, &mut lines, prepared))
            })
        });
        let code = match launched {
            Ok(()) => 0,
            Err(e) => {
                // stdout is the node manager's pipe: it reads this line as the failure reason.
                Report::Error(e).send();
                1
            }
        };
        std::process::exit(code);
    }
    exec::maybe_run_exec_helper();
    super::spawner::maybe_run_spawner();
}

pub(super) type R<T> = Result<T, String>;

/// Sets this process's `oom_score_adj` to 0, the OOM killer's default (from the node manager's
/// -1000, which it inherited), and checks it: no process of a sliver or a session may be
/// exempt.
pub(super) fn reset_oom_score() -> R<()> {
    const FILE: &str = "/proc/self/oom_score_adj";
    let _ = fs::write(FILE, "0");
    let now = io("reading the OOM score", fs::read_to_string(FILE))?;
    match now.trim().parse::<i32>() {
        Ok(v) if v >= 0 => Ok(()),
        _ => Err(format!(
            "cannot reset the OOM score to 0 (it is {})",
            now.trim()
        )),
    }
}

pub(super) fn sys<T>(what: &str, r: nix::Result<T>) -> R<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

pub(super) fn io<T>(what: &str, r: std::io::Result<T>) -> R<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

pub(super) fn join_cgroups(files: &[PathBuf]) -> R<()> {
    let pid = getpid().to_string();
    for f in files {
        io(
            &format!("joining cgroup {}", f.display()),
            fs::write(f, &pid),
        )?;
    }
    Ok(())
}

/// Lines from the node manager on stdin, as the launcher reads them: the spec, then
/// [`Release::Joined`]. Read in chunks; what a chunk brings past a line is kept for the next. The
/// node manager writes nothing else before the init reports ready, and the release that follows
/// is read by the init's service child from the same pipe.
#[derive(Default)]
pub(super) struct StdinLines {
    buf: Vec<u8>,
}

impl StdinLines {
    /// The next line, without its newline; `None`: end of file before any byte of it.
    pub(super) fn next(&mut self, what: &str) -> R<Option<Vec<u8>>> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
                line.pop();
                return Ok(Some(line));
            }
            // SAFETY: a read into a valid buffer of its length.
            let k = unsafe { libc::read(0, chunk.as_mut_ptr().cast(), chunk.len()) };
            match k {
                0 if self.buf.is_empty() => return Ok(None),
                0 => return Err(format!("{what}: cut short")),
                k if k > 0 => self.buf.extend_from_slice(&chunk[..k as usize]),
                _ if nix::Error::last() == nix::Error::EINTR => {}
                _ => return Err(format!("reading {what}: {}", nix::Error::last())),
            }
        }
    }
}

/// The spec line from stdin; `None`: end of file before any byte (the node manager let a pooled
/// launcher go unused).
fn read_spec(lines: &mut StdinLines) -> R<Option<LaunchSpec>> {
    let Some(line) = lines.next("launch spec")? else {
        return Ok(None);
    };
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| format!("launch spec: {e}"))
}

/// Waits until the node manager closes its end of the launcher's stdin (or dies). Polled, not
/// read: the init's first service process reads its release from the same pipe.
fn wait_dismissed() {
    let mut pfd = libc::pollfd {
        fd: 0,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd that outlives the call. A pipe's read end reports POLLHUP once it
    // has no writer; a failed poll (EINTR aside) ends the wait too.
    while unsafe { libc::poll(&mut pfd, 1, -1) } < 0 && nix::Error::last() == nix::Error::EINTR {}
}

/// Waits until the node manager has put this launcher in the sliver's cgroups.
pub(super) fn wait_joined(lines: &mut StdinLines) -> R<()> {
    match lines.next("cgroups joined")? {
        Some(l) if Release::parse(&String::from_utf8_lossy(&l)) == Some(Release::Joined) => Ok(()),
        Some(l) => Err(format!(
            "expected the cgroups joined, got {:?}",
            String::from_utf8_lossy(&l)
        )),
        None => Err("node manager went away before joining the sliver's cgroups".into()),
    }
}

fn launch(spec: LaunchSpec, lines: &mut StdinLines, prepared: R<userns::Prepared>) -> R<()> {
    let console = io(
        "opening console log",
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.console),
    )?;
    // A pooled launcher was started with stderr on /dev/null: from now on it is the console.
    sys("dup2 stderr", nix::unistd::dup2(console.as_raw_fd(), 2))?;
    let (ns, holder) = prepared?.map(spec.idmap)?;
    // A warm launcher is killed once its init has built the root (`crate::warm`): the holder is
    // reaped now, or it would outlive it as the node manager's zombie.
    let holder = if spec.warm {
        drop(holder);
        None
    } else {
        Some(holder)
    };
    // As host root, which has every capability over the namespaces the slice's user namespace
    // owns. From here `/proc/<launcher>/ns/net` is the sliver's network: the node manager wires
    // it while the launcher builds the root filesystem.
    sys("setns(net)", setns(&ns.net, CloneFlags::CLONE_NEWNET))?;
    drop(ns.net);
    // The node manager takes a copy of this socket (`pidfd_getfd`) to configure the inside of
    // the network without a thread of its own joining it. Kept until the launcher exits.
    let route = sys(
        "opening an rtnetlink socket",
        nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Netlink,
            nix::sys::socket::SockType::Raw,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            nix::sys::socket::SockProtocol::NetlinkRoute,
        ),
    )?;
    Report::Netns(route.as_raw_fd()).send();
    let ns = ns.user;
    sys("unshare(mount)", unshare(CloneFlags::CLONE_NEWNS))?;
    // Nothing mounted from here on may propagate back to the host.
    rootfs::mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    rootfs::mount_overlay(&spec, &ns)?;
    // Kept open until the launcher exits: the next unshare would otherwise free this mount
    // namespace at once, and freeing one with mounts waits for an expedited RCU grace period
    // (milliseconds) on the start's critical path; the launcher's exit pays it instead.
    let host_owned_mnt = io(
        "opening the launcher's mount namespace",
        fs::File::open("/proc/self/ns/mnt"),
    )?;
    userns::enter(&ns)?;
    drop(ns);
    sys(
        "unshare",
        unshare(
            CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWPID,
        ),
    )?;
    let filter = seccomp::program();
    // Every process of the sliver descends from a launcher already in its cgroups. The node
    // manager makes them and moves the launcher there while it builds the above (~0.2 ms with
    // 4 v1 hierarchies on a 2-core VM), and says so. A warm sliver has no slice yet: its init is
    // moved into the slice's cgroups when one takes it, before it forks anything.
    if !spec.warm {
        wait_joined(lines)?;
    }
    // SAFETY: the launcher is single-threaded (maybe_run_sliver_init runs before any thread).
    match sys("fork", unsafe { fork() })? {
        ForkResult::Parent { child } => {
            Report::Pid(child.as_raw()).send();
            // From here only the init reports: if it dies, the node manager reads end of file.
            let _ = fs::File::open("/dev/null").map(|null| nix::unistd::dup2(null.as_raw_fd(), 1));
            // Root of the sliver's user namespace may not ptrace it while it waits (changing
            // uids made it so already, unless the machine's `fs.suid_dumpable` says otherwise).
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
            drop(holder);
            // The launcher's exit frees the host-owned mount namespace, which waits for an
            // expedited RCU grace period (IPIs to every CPU): done while the init builds its
            // root, it delayed the init by ~0.15 ms. So the launcher stays, idle (in the
            // sliver's cgroups, outside its PID namespace), until the node manager dismisses it
            // once the sliver is released (`launchers`): the host's mounts it holds are kept
            // only that long.
            wait_dismissed();
            drop(route);
            drop(host_owned_mnt);
            Ok(())
        }
        ForkResult::Child => {
            // The launcher's, not the init's: the namespace holder is its child, and the mount
            // namespace handle goes with it.
            std::mem::forget(holder);
            drop(route);
            drop(host_owned_mnt);
            let code = match init::init_main(&spec, console, &filter, lines) {
                Ok(()) => 0,
                Err(e) => {
                    Report::Error(e).send();
                    1
                }
            };
            std::process::exit(code);
        }
    }
}

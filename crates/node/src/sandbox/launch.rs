//! The sliver launcher: the first process of a sliver, re-executed from the node manager's binary
//! as host root, usually ahead of any start (`crate::launchers`): it waits for its [`LaunchSpec`]
//! on stdin. Then, in order, each step needing what the previous one made:
//!
//! 1. join the sliver's cgroups, first of all (so the init is born in them and no user code ever
//!    runs outside them), and set the OOM-killer exemption its init inherits (only host root may
//!    lower `oom_score_adj`; the init's children raise theirs back to 0);
//! 2. make the slice's user namespace (`userns::create`);
//! 3. in a private mount namespace still owned by the host, attach the shared image idmapped into
//!    the slice's range and mount the overlay root on it (`rootfs::mount_overlay`);
//! 4. enter the user namespace as its root, then unshare mount, UTS, IPC, network and PID
//!    namespaces, which the user namespace now owns — so root in the sliver has capabilities
//!    over its own network (ports below 1024, raw sockets) and nothing else;
//! 5. fork the init (PID 1 of the new PID namespace), report its pid, and exit.

use std::fs::{self, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{fork, getpid, ForkResult};
use serde::{Deserialize, Serialize};

use super::handshake::Report;
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
    /// `cgroup.procs` files to join (one per v1 hierarchy, or one for v2).
    pub cgroup_procs: Vec<PathBuf>,
    /// What the init keeps running (`service::Service::for_sliver`).
    pub service: Option<Service>,
    /// The slice's host id range: root in the sliver is `idmap.base` on the host.
    pub idmap: IdRange,
}

/// Call this first thing in `main` of any binary that hosts the node manager, *before* starting
/// threads or a tokio runtime: when the process was re-executed as a sliver launcher or exec
/// helper it does that job and exits; otherwise it returns at once.
pub fn maybe_run_sliver_init() {
    if std::env::var_os(INIT_ENV).is_some() {
        let code = match read_spec().and_then(|spec| spec.map_or(Ok(()), launch)) {
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

/// The spec line from stdin; `None`: end of file before any byte (the node manager let a pooled
/// launcher go unused). Read without buffering past the line: the init reads its release from
/// the same pipe later.
fn read_spec() -> R<Option<LaunchSpec>> {
    let mut line = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while line.last() != Some(&b'\n') {
        // SAFETY: a read into a valid buffer of its length.
        let k = unsafe { libc::read(0, chunk.as_mut_ptr().cast(), chunk.len()) };
        match k {
            0 if line.is_empty() => return Ok(None),
            0 => return Err("launch spec: cut short".into()),
            k if k > 0 => line.extend_from_slice(&chunk[..k as usize]),
            _ if nix::Error::last() == nix::Error::EINTR => {}
            _ => return Err(format!("reading launch spec: {}", nix::Error::last())),
        }
    }
    // The node manager writes nothing after the spec until the init reports ready.
    if line.iter().filter(|&&b| b == b'\n').count() != 1 {
        return Err("launch spec: more than one line".into());
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| format!("launch spec: {e}"))
}

fn launch(spec: LaunchSpec) -> R<()> {
    // Before anything else: every process of the sliver descends from a launcher already in
    // its cgroups. Done here rather than by the node manager from another thread, which cost a
    // thread start and one more wake-up of the launcher (scheduling latency on a busy node).
    join_cgroups(&spec.cgroup_procs)?;
    let console = io(
        "opening console log",
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.console),
    )?;
    // A pooled launcher was started with stderr on /dev/null: from now on it is the console.
    sys("dup2 stderr", nix::unistd::dup2(console.as_raw_fd(), 2))?;
    let _ = fs::write("/proc/self/oom_score_adj", "-1000");
    let (ns, holder) = userns::create(spec.idmap)?;
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
                | CloneFlags::CLONE_NEWNET
                | CloneFlags::CLONE_NEWPID,
        ),
    )?;
    let filter = seccomp::program();
    // SAFETY: the launcher is single-threaded (maybe_run_sliver_init runs before any thread).
    match sys("fork", unsafe { fork() })? {
        ForkResult::Parent { child } => {
            Report::Pid(child.as_raw()).send();
            drop(holder);
            drop(host_owned_mnt);
            Ok(())
        }
        ForkResult::Child => {
            // The launcher's, not the init's: the namespace holder is its child, and the mount
            // namespace handle goes with it.
            std::mem::forget(holder);
            drop(host_owned_mnt);
            let code = match init::init_main(&spec, console, &filter) {
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

//! The sliver launcher: the first process of a sliver, re-executed from the node manager's binary
//! as host root. In order, each step needing what the previous one made:
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
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{fork, getpid, ForkResult};
use serde::{Deserialize, Serialize};

use super::handshake::Report;
use super::service::Service;
use super::userns::{self, IdRange};
use super::{exec, init, rootfs, seccomp};

/// Environment variable that turns the current binary into a sliver launcher; its value is the
/// path of a [`LaunchSpec`] JSON file.
pub const INIT_ENV: &str = "SLICELAB_SLIVER_INIT";

/// What the launcher needs to build a sliver. Written by the runtime next to the sliver's state.
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
    if let Some(path) = std::env::var_os(INIT_ENV) {
        let code = match launch(Path::new(&path)) {
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

fn launch(spec_path: &Path) -> R<()> {
    let spec: LaunchSpec = serde_json::from_slice(&io("reading launch spec", fs::read(spec_path))?)
        .map_err(|e| format!("launch spec: {e}"))?;
    // Before anything else: every process of the sliver descends from a launcher already in
    // its cgroups. Done here rather than by the node manager from another thread, which cost a
    // thread start and a wake-up of the launcher on its stdin (scheduling latency on a busy node).
    join_cgroups(&spec.cgroup_procs)?;
    let console = io(
        "opening console log",
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.console),
    )?;
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

//! The sliver launcher: the first process of a sliver, re-executed from the node manager's binary
//! as host root. In order, each step needing what the previous one made:
//!
//! 1. set the OOM-killer exemption its init inherits (only host root may lower `oom_score_adj`;
//!    the init's children raise theirs back to 0); the node manager moves the launcher into the
//!    sliver's cgroups meanwhile (or it joins them itself, see `cgroups_joined_by_node`);
//! 2. make the slice's user namespace (`userns::create`);
//! 3. in a private mount namespace still owned by the host, attach the shared image idmapped into
//!    the slice's range and mount the overlay root on it (`rootfs::mount_overlay`);
//! 4. enter the user namespace as its root, then unshare mount, UTS, IPC, network and PID
//!    namespaces, which the user namespace now owns — so root in the sliver has capabilities
//!    over its own network (ports below 1024, raw sockets) and nothing else;
//! 5. once in the sliver's cgroups, fork the init (PID 1 of the new PID namespace), report its
//!    pid, and exit.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{fork, getpid, ForkResult};
use serde::{Deserialize, Serialize};

use super::handshake::{Release, Report};
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
    /// The node manager moves the launcher into `cgroup_procs` itself, concurrently with steps
    /// 2–4 (a cgroup migration waits for an RCU grace period, milliseconds), and says
    /// [`Release::Joined`] on stdin; the launcher waits for that before forking the init, so the
    /// init is born in the cgroups. `false`: the launcher joins them itself, first.
    #[serde(default)]
    pub cgroups_joined_by_node: bool,
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

/// Reads the node manager's [`Release::Joined`] from stdin a byte at a time: nothing after the
/// line may be consumed, since the init (inheriting stdin) reads the next one.
fn wait_joined() -> R<()> {
    // Not `std::io::stdin()`: it buffers, and would take the init's line too.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while byte[0] != b'\n' {
        match nix::unistd::read(0, &mut byte) {
            Ok(1) => line.push(byte[0]),
            Err(nix::errno::Errno::EINTR) => {}
            _ => break,
        }
    }
    match Release::parse(&String::from_utf8_lossy(&line)) {
        Some(Release::Joined) => Ok(()),
        _ => Err("the node manager did not move the launcher into the sliver's cgroups".into()),
    }
}

fn launch(spec_path: &Path) -> R<()> {
    let spec: LaunchSpec = serde_json::from_slice(&io("reading launch spec", fs::read(spec_path))?)
        .map_err(|e| format!("launch spec: {e}"))?;
    let console = io(
        "opening console log",
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.console),
    )?;
    if !spec.cgroups_joined_by_node {
        join_cgroups(&spec.cgroup_procs)?;
    }
    let _ = fs::write("/proc/self/oom_score_adj", "-1000");
    let ns = userns::create(spec.idmap)?;
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
    if spec.cgroups_joined_by_node {
        wait_joined()?;
    }
    // SAFETY: the launcher is single-threaded (maybe_run_sliver_init runs before any thread).
    match sys("fork", unsafe { fork() })? {
        ForkResult::Parent { child } => {
            Report::Pid(child.as_raw()).send();
            Ok(())
        }
        ForkResult::Child => {
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

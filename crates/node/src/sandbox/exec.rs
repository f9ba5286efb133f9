//! The exec helper: runs one command inside a running sliver, for `slicelab exec` and the SSH
//! gateway. Re-executed from the node manager's binary as host root, it joins the sliver's
//! cgroups, then its user namespace (becoming the sliver's root, host id `base`), then the
//! other namespaces, forks (a PID namespace applies to children) and confines the child exactly
//! as the sliver's init confines itself.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{chdir, fork, ForkResult};
use serde::{Deserialize, Serialize};

use super::init::sliver_env;
use super::launch::{io, join_cgroups, reset_oom_score, sys, R};
use super::{caps, seccomp, userns};

/// Environment variable that turns the current binary into the exec helper; its value is an
/// [`ExecSpec`] as JSON.
pub const EXEC_ENV: &str = "SLICELAB_SLIVER_EXEC";

/// What the exec helper needs to run a command inside a running sliver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    pub init_pid: i32,
    pub cgroup_procs: Vec<PathBuf>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Run this node code instead of `execve(argv)`, after the same joining and confinement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<Builtin>,
}

/// A program of the node's own, compiled into the helper, that runs inside the sliver whatever
/// its image holds (no file in the sliver is needed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Builtin {
    /// One side of a `slicelab traffic` run.
    Traffic(crate::traffic::Job),
}

impl Builtin {
    /// Runs it; the exit code.
    fn run(&self) -> i32 {
        match self {
            Builtin::Traffic(job) => crate::traffic::job::run(job),
        }
    }
}

/// Runs the exec helper and exits, if this process was started as one.
pub(super) fn maybe_run_exec_helper() {
    if let Ok(json) = std::env::var(EXEC_ENV) {
        let code = match serde_json::from_str::<ExecSpec>(&json) {
            Ok(spec) => exec_helper(&spec),
            Err(e) => {
                eprintln!("slicelab exec: bad spec: {e}");
                125
            }
        };
        std::process::exit(code);
    }
}

/// Runs `spec.argv` inside the sliver under the same confinement as its init and returns its exit
/// code (128 + signal if killed).
pub(super) fn exec_helper(spec: &ExecSpec) -> i32 {
    match exec_helper_inner(spec) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("slicelab exec: {e}");
            125
        }
    }
}

/// Unless the helper leads its own session (the SSH gateway's pty sessions), it was spawned in the
/// node manager's session: it gives up that session's controlling terminal, if any, so that
/// nothing in the sliver reaches the node manager's terminal through `/dev/tty` (which a sliver's
/// /dev has).
fn drop_inherited_terminal() {
    let me = nix::unistd::getpid();
    if nix::unistd::getsid(None).is_ok_and(|sid| sid == me) {
        return;
    }
    // ENXIO when there is no controlling terminal (a daemon's case): nothing to drop.
    if let Ok(tty) = File::options().read(true).write(true).open("/dev/tty") {
        use std::os::fd::AsRawFd;
        // SAFETY: plain ioctl on an open fd with no argument; TIOCNOTTY by a process that does
        // not lead its session only detaches that process from the terminal.
        unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCNOTTY) };
    }
}

/// Every signal's disposition back to the default and none blocked: what runs in the sliver
/// starts like a program of a login, whatever the node manager ignored (Rust's runtime ignores
/// SIGPIPE, so `yes | head` would not end; a node manager started in the background of a shell
/// ignores SIGINT and SIGQUIT) or blocked. Called in a single-threaded process.
pub(super) fn reset_signals() {
    // The kernel's `struct sigaction` for SIG_DFL: no handler, no flags, no restorer, empty mask.
    // Set by the system call itself, since the C library refuses its own real-time signals
    // (32 and 33), which the node manager's process may also ignore.
    let dfl = [0u64; 4];
    for sig in 1..=libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: rt_sigaction reads 8 bytes of mask after the handler, flags and restorer
            // from `dfl`, which is larger; the old action is not asked for (NULL). Only
            // dispositions change; no handler of ours is installed.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                )
            };
        }
    }
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
}

fn exec_helper_inner(spec: &ExecSpec) -> R<i32> {
    if spec.argv.is_empty() && spec.builtin.is_none() {
        return Err("empty command".into());
    }
    drop_inherited_terminal();
    // Open every namespace before joining any: after joining the mount namespace the host's
    // /proc is out of reach.
    let mut ns: Vec<(OwnedFd, CloneFlags)> = Vec::new();
    // The user namespace first: the others are owned by it. A sliver started before user
    // namespaces existed shares the host's, which cannot be re-entered (and needs no entering).
    let own_userns = userns::has_own_userns(spec.init_pid)?;
    let names: &[(&str, CloneFlags)] = &[
        ("user", CloneFlags::CLONE_NEWUSER),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    for &(name, flag) in names {
        if flag == CloneFlags::CLONE_NEWUSER && !own_userns {
            continue;
        }
        let f = io(
            &format!("opening {name} namespace of {}", spec.init_pid),
            File::open(format!("/proc/{}/ns/{name}", spec.init_pid)),
        )?;
        ns.push((f.into(), flag));
    }
    // The OOM killer's default score for the session: the spawner inherited the node manager's
    // exemption (-1000). Reset while still host root: after `setns(user)` and `become_root`
    // `/proc/self` is the host root's and the command could not reset its own.
    reset_oom_score()?;
    join_cgroups(&spec.cgroup_procs)?;
    for (fd, flag) in &ns {
        sys(&format!("setns {flag:?}"), setns(fd, *flag))?;
    }
    if own_userns {
        userns::become_root()?;
    }
    sys("chdir /", chdir("/"))?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| "NUL in argument".to_string()))
        .collect::<R<_>>()?;
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let mut env = sliver_env(&hostname);
    // A variable given by the caller (e.g. TERM from an SSH pty) replaces the default: with two
    // entries of one name, which one a program sees depends on its libc.
    env.retain(|kv| {
        let name = kv
            .as_bytes()
            .split(|b| *b == b'=')
            .next()
            .unwrap_or_default();
        !spec.env.iter().any(|(k, _)| k.as_bytes() == name)
    });
    env.extend(
        spec.env
            .iter()
            .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok()),
    );
    let filter = seccomp::program();
    // SAFETY: the helper is single-threaded.
    match sys("fork", unsafe { fork() })? {
        ForkResult::Child => {
            // Entering the PID namespace takes effect for children only: this child is in it.
            let _ = chdir("/root");
            if let Err(e) = caps::confine(&filter) {
                eprintln!("slicelab exec: confining: {e}");
                // SAFETY: exiting a forked child.
                unsafe { libc::_exit(125) }
            }
            if let Some(b) = &spec.builtin {
                let code = b.run();
                // SAFETY: exiting a forked child; its output was flushed by `run`.
                unsafe { libc::_exit(code) }
            }
            reset_signals();
            let e = nix::unistd::execvpe(&argv[0], &argv, &env);
            eprintln!("slicelab exec: {}: {e:?}", spec.argv[0]);
            // SAFETY: exiting a forked child.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, c)) => return Ok(c),
                Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
                Ok(_) => {}
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(format!("waiting: {e}")),
            }
        },
    }
}

//! The testbed's processes: running a tool, spawning central and node managers (each in its own
//! session, a node manager inside its node's network namespace), and finding, stopping and
//! reaping them again.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Runs `program` with `args` to the end; its stdout, or an error with its stderr.
pub(super) fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `pid` runs (a zombie does not).
pub(super) fn alive(pid: i32) -> bool {
    // A zombie is dead for our purposes (its parent has not reaped it yet).
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z"),
        Err(_) => false,
    }
}

/// The command line of `pid` (empty when it is gone).
pub(super) fn cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGTERM, then SIGKILL after `grace`; returns how many were alive.
pub(super) fn terminate(pids: &[i32], grace: Duration) -> usize {
    let live: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    for p in &live {
        let _ = kill(Pid::from_raw(*p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && live.iter().any(|p| alive(*p)) {
        reap();
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in &live {
        if alive(*p) {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && live.iter().any(|p| alive(*p)) {
        reap();
        std::thread::sleep(Duration::from_millis(20));
    }
    reap();
    live.len()
}

/// Reaps our exited children (node managers and central we spawned), so they do not linger as
/// zombies while `up` keeps running.
pub(super) fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Runs `cmd` in network namespace `ns`, in a new session (a Ctrl-C at the terminal reaches
/// only `up`, which then stops everything in order).
pub(super) fn spawn_in_netns(cmd: &mut Command, ns: Option<&str>) -> Result<Child> {
    let nsfile = match ns {
        Some(ns) => Some(
            File::open(format!("/run/netns/{ns}"))
                .with_context(|| format!("opening network namespace {ns}"))?,
        ),
        None => None,
    };
    let fd = nsfile.as_ref().map(|f| f.as_raw_fd());
    // SAFETY: only async-signal-safe syscalls between fork and exec. `ip netns exec` is not
    // used because it remounts /sys, which hides the cgroup hierarchies the node manager needs.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let child = cmd.spawn().context("spawning a testbed process")?;
    drop(nsfile);
    Ok(child)
}

/// A new (truncated) log file `<dir>/logs/<name>`.
pub(super) fn log_file(dir: &Path, name: &str) -> Result<File> {
    let logs = dir.join("logs");
    fs::create_dir_all(&logs)?;
    let p = logs.join(name);
    File::create(&p).with_context(|| format!("creating {}", p.display()))
}

/// Processes (other than us) whose command line mentions the testbed dir: central and node
/// managers of this testbed, whatever their pids were.
pub(super) fn testbed_processes(dir: &Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let args = cmdline(pid);
            let ours = args.iter().any(|a| a.contains(&needle))
                && args.iter().any(|a| a == "node" || a == "central");
            if ours {
                out.push(pid);
            }
        }
    }
    out
}

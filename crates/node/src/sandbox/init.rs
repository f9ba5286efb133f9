//! PID 1 of a sliver: finishes the root filesystem inside the sliver's namespaces, waits for
//! the node manager to plug in the network, confines itself (capabilities, `no_new_privs`,
//! seccomp) and then supervises the initscript: reaps every orphan, restarts the initscript with
//! back-off, and on SIGTERM stops everything.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::BufRead;
use std::io::BufReader;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2, fork, sethostname, setsid, ForkResult, Pid};

use super::caps;
use super::handshake::{Release, Report};
use super::launch::{io, sys, LaunchSpec, R};
use super::rootfs;
use super::service::Service;

pub(super) fn init_main(spec: &LaunchSpec, console: File, filter: &[libc::sock_filter]) -> R<()> {
    sys("setsid", setsid())?;
    // The init survives the sliver's own OOM kills: the launcher set oom_score_adj -1000 (which
    // only host root may), and the initscript resets it to 0.
    rootfs::build_inside(spec)?;
    sys("sethostname", sethostname(&spec.slice))?;
    Report::Ready.send();
    // The node manager plugs in the network, then says "go". EOF means it died first: give up
    // rather than run a sliver without its network; it will be restarted.
    let mut line = String::new();
    let _ = BufReader::new(std::io::stdin()).read_line(&mut line);
    if Release::parse(&line) != Some(Release::Go) {
        return Err("node manager went away before the sliver was wired".into());
    }
    let null = io("opening /dev/null", File::open("/dev/null"))?;
    sys("dup2 stdin", dup2(null.as_raw_fd(), 0))?;
    sys("dup2 stdout", dup2(console.as_raw_fd(), 1))?;
    sys("dup2 stderr", dup2(console.as_raw_fd(), 2))?;
    drop(null);
    drop(console);
    sys("confining init", caps::confine(filter))?;
    supervise(spec.service.as_ref());
}

pub(super) fn sliver_env(slice: &str) -> Vec<CString> {
    [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        "HOME=/root".to_string(),
        "TERM=xterm".to_string(),
        format!("SLICE={slice}"),
    ]
    .into_iter()
    .filter_map(|s| CString::new(s).ok())
    .collect()
}

fn spawn_service(service: &Service) -> Option<Pid> {
    let slice = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    // SAFETY: the init is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            let _ = setsid();
            let _ = fs::write("/proc/self/oom_score_adj", "0");
            let why = service.exec(&slice);
            eprintln!("slicelab init: cannot start the service: {why}");
            // SAFETY: exiting a forked child without running the parent's destructors.
            unsafe { libc::_exit(127) }
        }
        Ok(ForkResult::Parent { child }) => Some(child),
        Err(e) => {
            eprintln!("slicelab init: cannot fork the service: {e}");
            None
        }
    }
}

/// PID 1 of the sliver: reaps every orphan, keeps the initscript running with exponential
/// back-off (1 s … 60 s, reset after a minute of uptime), and on SIGTERM stops everything.
fn supervise(service: Option<&Service>) -> ! {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    let mut child: Option<(Pid, Instant)> = None;
    let mut backoff = Duration::from_secs(1);
    let mut next_start = service.map(|_| Instant::now());
    loop {
        if let (Some(svc), Some(at)) = (service, next_start) {
            if Instant::now() >= at {
                next_start = None;
                match spawn_service(svc) {
                    Some(pid) => child = Some((pid, Instant::now())),
                    None => next_start = Some(Instant::now() + backoff),
                }
            }
        }
        let wait = next_start
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(60))
            .max(Duration::from_millis(10));
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: valid signal set and timespec; info may be null.
        let sig = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
        if sig == libc::SIGTERM || sig == libc::SIGINT {
            shutdown();
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st) => {
                    let Some(pid) = st.pid() else { break };
                    if let Some((c, started)) = child {
                        if c == pid {
                            child = None;
                            if started.elapsed() > Duration::from_secs(60) {
                                backoff = Duration::from_secs(1);
                            }
                            eprintln!(
                                "slicelab init: initscript ended ({st:?}); restarting in {}s",
                                backoff.as_secs()
                            );
                            next_start = Some(Instant::now() + backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(60));
                        }
                    }
                }
            }
        }
    }
}

/// Stops every process of the sliver: SIGTERM, then SIGKILL after 3 s. Waits for SIGCHLD
/// (blocked since `supervise`) rather than polling, so a sliver whose processes exit at once
/// stops at once.
fn shutdown() -> ! {
    let all = Pid::from_raw(-1);
    let _ = kill(all, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Err(_) => std::process::exit(0),
            Ok(WaitStatus::StillAlive) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let ts = libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos() as libc::c_long,
                };
                // SAFETY: valid signal set and timespec; info may be null.
                unsafe { libc::sigtimedwait(chld.as_ref(), std::ptr::null_mut(), &ts) };
            }
            Ok(_) => {}
        }
    }
    let _ = kill(all, Signal::SIGKILL);
    std::process::exit(0);
}

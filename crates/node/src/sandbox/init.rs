//! PID 1 of a sliver: finishes the root filesystem inside the sliver's namespaces, confines
//! itself (capabilities, `no_new_privs`, seccomp), forks the service's first process, which waits
//! for the node manager to plug in the network (its release) before it execs, and then
//! supervises the initscript: reaps every orphan, restarts the initscript with back-off, and on
//! SIGTERM stops everything. Nothing of the slice's runs before the release.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2, fork, sethostname, setsid, ForkResult, Pid};

use super::caps;
use super::handshake::{Release, Report};
use super::launch::{io, sys, wait_joined, Assignment, LaunchSpec, StdinLines, R};
use super::rootfs;
use super::service::Service;

pub(super) fn init_main(
    spec: &LaunchSpec,
    console: File,
    filter: &[libc::sock_filter],
    lines: &mut StdinLines,
) -> R<()> {
    sys("setsid", setsid())?;
    // The OOM killer's default score, for the init and everything it forks: the launcher set it
    // (see `maybe_run_sliver_init`).
    rootfs::build_inside(spec)?;
    let null = io("opening /dev/null", File::open("/dev/null"))?;
    let service = if spec.warm {
        // Built ahead (`crate::warm`): nothing of any slice's has run, and nothing runs until a
        // slice takes this sliver and has moved the init into its cgroups. The init confines
        // itself while the node manager makes them and plugs in the network, then forks the
        // service's first process and only then reports ready: the release finds that process
        // waiting for it.
        Report::Warm.send();
        let a = assignment(lines)?;
        sys("sethostname", sethostname(&a.slice))?;
        sys("confining init", caps::confine(filter))?;
        wait_joined(lines)?;
        a.service
    } else {
        sys("sethostname", sethostname(&spec.slice))?;
        // The root is built: the node manager may release the sliver as soon as its network is
        // plugged in. Meanwhile the init confines itself, with nothing privileged left to do,
        // and forks the service's first process confined, which execs once it reads the
        // release (see `first_service`): the release costs one wake-up and an `exec`. Nothing
        // of the slice's runs before that process has the release, and it is forked only once
        // the init is confined.
        Report::Ready.send();
        sys("confining init", caps::confine(filter))?;
        spec.service.clone()
    };
    block_signals();
    let first = service
        .as_ref()
        .and_then(|svc| match first_service(svc, &console, &null) {
            Ok(f) => Some(f),
            Err(e) => {
                // Started the usual way once the init has the release (see `supervise`).
                eprintln!("slicelab init: {e}");
                None
            }
        });
    if spec.warm {
        Report::Ready.send();
    }
    if first.is_none() {
        // Nothing to release but the init itself. EOF means the node manager died first: give up
        // rather than keep a sliver without its network; it will be restarted.
        if read_release(0) != Some(Release::Go) {
            return Err("node manager went away before the sliver was wired".into());
        }
    }
    // The release goes to the first service child (which holds the pipe until it execs).
    sys("dup2 stdin", dup2(null.as_raw_fd(), 0))?;
    sys("dup2 stdout", dup2(console.as_raw_fd(), 1))?;
    sys("dup2 stderr", dup2(console.as_raw_fd(), 2))?;
    drop(null);
    drop(console);
    supervise(service.as_ref(), first);
}

/// A warm sliver's [`Assignment`]; end of file (the node manager let it go unused, or died)
/// ends the init, and with it the sliver.
fn assignment(lines: &mut StdinLines) -> R<Assignment> {
    let Some(line) = lines.next("assignment")? else {
        std::process::exit(0);
    };
    serde_json::from_slice(&line).map_err(|e| format!("assignment: {e}"))
}

/// Exit status of a first service child that was never released (the node manager went away
/// before the sliver was wired): the init then ends the sliver instead of restarting it.
const NOT_RELEASED: i32 = 125;

/// The first service child, forked before the init reports ready: it waits for the node
/// manager's [`Release::Go`] on the launcher's stdin, then takes the console and execs the service
/// (what [`spawn_service`] does for every later start). It tells the init it was released by a
/// byte on a pipe, so an initscript that itself exits with [`NOT_RELEASED`] is not mistaken for an
/// unreleased child.
fn first_service(service: &Service, console: &File, null: &File) -> R<FirstService> {
    let (released_r, released_w) = sys("pipe", nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC))?;
    // SAFETY: the init is single-threaded.
    match sys("forking the service", unsafe { fork() })? {
        ForkResult::Child => {
            drop(released_r);
            // Everything but the exec is done before the release (nothing of the slice's runs).
            let _ = setsid();
            let prepared = service.prepare(&slice_name());
            if read_release(0) != Some(Release::Go) {
                // SAFETY: exiting a forked child without running the parent's destructors.
                unsafe { libc::_exit(NOT_RELEASED) }
            }
            let _ = nix::unistd::write(&released_w, b"g");
            let _ = dup2(null.as_raw_fd(), 0);
            let _ = dup2(console.as_raw_fd(), 1);
            let _ = dup2(console.as_raw_fd(), 2);
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            let why = match prepared {
                Ok(e) => e.run(),
                Err(e) => e,
            };
            service_failed(&why)
        }
        ForkResult::Parent { child } => Ok(FirstService {
            pid: child,
            released: released_r,
        }),
    }
}

struct FirstService {
    pid: Pid,
    /// Read end of the child's "released" pipe (a byte once it read [`Release::Go`]).
    released: std::os::fd::OwnedFd,
}

impl FirstService {
    /// Whether the (exited) child had been released: its byte is in the pipe.
    fn was_released(&self) -> bool {
        let mut b = [0u8; 1];
        let fd = self.released.as_raw_fd();
        // SAFETY: a non-blocking poll of one valid descriptor, then a read into a valid buffer.
        unsafe {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            libc::poll(&mut pfd, 1, 0) > 0 && libc::read(fd, b.as_mut_ptr().cast(), 1) == 1
        }
    }
}

/// One [`Release`] line from descriptor `fd`, read without buffering past it (unbuffered reads
/// of a few bytes: nothing else is on the pipe).
fn read_release(fd: i32) -> Option<Release> {
    let mut line = Vec::with_capacity(8);
    let mut b = [0u8; 1];
    loop {
        // SAFETY: a read of one byte into a valid buffer.
        match unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) } {
            1 if b[0] == b'\n' => break,
            1 if line.len() < 64 => line.push(b[0]),
            -1 if nix::Error::last() == nix::Error::EINTR => {}
            _ => return None,
        }
    }
    Release::parse(&String::from_utf8_lossy(&line))
}

/// The signals the init waits for in `supervise`, blocked before its first child is forked (the
/// children unblock them).
fn block_signals() -> SigSet {
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
    set
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

/// In a forked child of the init: its own session, the service.
fn exec_service(service: &Service) -> ! {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let _ = setsid();
    service_failed(&service.exec(&slice_name()))
}

/// The sliver's name: the init set it as the hostname.
fn slice_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// In a forked child whose service could not start: says why on the console and exits 127.
fn service_failed(why: &str) -> ! {
    eprintln!("slicelab init: cannot start the service: {why}");
    // SAFETY: exiting a forked child without running the parent's destructors.
    unsafe { libc::_exit(127) }
}

fn spawn_service(service: &Service) -> Option<Pid> {
    // SAFETY: the init is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => exec_service(service),
        Ok(ForkResult::Parent { child }) => Some(child),
        Err(e) => {
            eprintln!("slicelab init: cannot fork the service: {e}");
            None
        }
    }
}

/// PID 1 of the sliver: reaps every orphan, keeps the initscript running with exponential
/// back-off (1 s … 60 s, reset after a minute of uptime), and on SIGTERM stops everything.
/// `first`: the service child forked before the release, if any.
fn supervise(service: Option<&Service>, mut first: Option<FirstService>) -> ! {
    let set = block_signals();
    let mut child: Option<(Pid, Instant)> = first.as_ref().map(|f| (f.pid, Instant::now()));
    let mut backoff = Duration::from_secs(1);
    let mut next_start = match first {
        Some(_) => None,
        None => service.map(|_| Instant::now()),
    };
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
                            if let Some(f) = first.take() {
                                if !f.was_released() {
                                    eprintln!(
                                        "slicelab init: node manager went away before the \
                                         sliver was wired"
                                    );
                                    std::process::exit(1);
                                }
                            }
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

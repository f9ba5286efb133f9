//! Sliver launchers started ahead of any sliver: a start takes one that already runs (its `exec`
//! of the node binary, its dynamic linking and runtime set-up done) and hands it the sliver's
//! `LaunchSpec` on its stdin, instead of spawning a process on the start's critical path.
//!
//! A waiting launcher has done only what needs no sliver: it made a user namespace, not yet
//! mapped to any ids, and the network namespace it owns (`sandbox::userns::prepare`, the costliest
//! step of a start). It is in no sliver's cgroup, has made no mount, and runs as the node
//! manager's child with its stdin a pipe from it. It exits when that pipe closes without a spec —
//! when the pool is dropped (node manager shutdown) or when the node manager dies — and its
//! namespaces go with it, so there is nothing of it for `cleanup` to find.

use std::io;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::sandbox::INIT_ENV;
use crate::veth::{self, Veth};

/// A launcher waiting for its spec, and the veth pair made ahead into its network namespace if
/// it came from the pool.
pub(crate) struct Launcher {
    pub(crate) child: Child,
    pub(crate) veth: Option<Veth>,
}

/// How long a refill waits for a new launcher's network namespace.
const NETNS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How many launchers wait at most: one start at a time is the common case (the reconciler
/// applies its actions in order), and a second one covers a start that comes before the refill
/// after the previous one is done (at idle priority, a launcher takes a few ms to be ready); a
/// burst takes the rest from `spawn`. Each waiting launcher holds a process, a network namespace
/// and a veth pair.
const POOL_SIZE: usize = 2;

/// The nice value launchers wait at.
const IDLE_NICE: libc::c_int = 19;

pub(crate) struct LauncherPool {
    exe: PathBuf,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    ready: Mutex<Vec<Launcher>>,
    /// Launchers whose sliver started, with the read end of their report pipe: each exits once
    /// its pipe is closed ([`LauncherPool::dismiss`]).
    dismissed: Mutex<Vec<(Child, ChildStdout)>>,
    /// A refill is under way (at most one at a time).
    refilling: AtomicBool,
}

impl LauncherPool {
    /// An empty pool of launchers of `exe` (the first start spawns its own and fills the pool).
    pub(crate) fn new(exe: PathBuf) -> Self {
        Self {
            exe,
            shared: Arc::default(),
        }
    }

    /// A launcher waiting for its spec, at the calling thread's priority: a pooled one, or one
    /// spawned now if none is ready.
    pub(crate) fn take(&self) -> io::Result<Launcher> {
        loop {
            let pooled = self.shared.lock().pop();
            let Some(Launcher { child: mut c, veth }) = pooled else {
                break;
            };
            // One that died waiting (killed by someone) is reaped by `try_wait`: try the next.
            if let Ok(None) = c.try_wait() {
                // Raised before it is woken by its spec, so it runs at once, not at idle
                // priority behind everything else on a busy node.
                // SAFETY: getpriority of the calling thread and setpriority of our child with
                // integer arguments (host root may raise a priority).
                let r = unsafe {
                    let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
                    libc::setpriority(libc::PRIO_PROCESS, c.id(), nice)
                };
                if r == 0 {
                    return Ok(Launcher { child: c, veth });
                }
                // Gone meanwhile: reaped, try the next.
                let _ = c.kill();
                let _ = c.wait();
            }
            if let Some(v) = veth {
                v.delete();
            }
        }
        spawn(&self.exe).map(|child| Launcher { child, veth: None })
    }

    /// A launcher whose init runs: it exits once `pipe` (the read end of its reports) is
    /// closed, which the next [`Self::refill`] does after starting the next launcher — off the
    /// start's path, as its exit frees a mount namespace (see `sandbox::launch`).
    pub(crate) fn dismiss(&self, child: Child, pipe: ChildStdout) {
        lock(&self.shared.dismissed).push((child, pipe));
    }

    /// In the background: starts launchers until the pool is full again, then ends the
    /// dismissed ones.
    pub(crate) fn refill(&self) {
        if !self.shared.has_work() || self.shared.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let (exe, shared) = (self.exe.clone(), self.shared.clone());
        std::thread::spawn(move || {
            // This thread only spawns and reaps: at the lowest priority, so a launcher starting
            // up (its exec, dynamic linking) takes only CPU time no start needs. The launcher
            // inherits it until `take` hands it out.
            // SAFETY: setpriority on the calling thread (tid) with plain integer arguments.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, IDLE_NICE);
            }
            loop {
                shared.fill(&exe);
                shared.end_dismissed();
                shared.refilling.store(false, Ordering::Release);
                // Work that came while the flag was up is done now, unless a new refill took it.
                if !shared.has_work() || shared.refilling.swap(true, Ordering::AcqRel) {
                    break;
                }
            }
        });
    }

    /// Ends every waiting launcher and reaps it.
    pub(crate) fn drain(&self) {
        self.shared.drain();
    }
}

impl Drop for LauncherPool {
    fn drop(&mut self) {
        self.drain();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Launcher>> {
        lock(&self.ready)
    }

    fn has_work(&self) -> bool {
        self.lock().len() < POOL_SIZE || !lock(&self.dismissed).is_empty()
    }

    /// Starts launchers until the pool is full (or one fails to start).
    fn fill(&self, exe: &PathBuf) {
        while self.lock().len() < POOL_SIZE {
            match spawn(exe) {
                Ok(mut child) => {
                    let veth = make_veth(&mut child);
                    self.lock().push(Launcher { child, veth });
                }
                Err(e) => {
                    tracing::warn!("starting a sliver launcher ahead: {e}");
                    break;
                }
            }
        }
    }

    /// Closes each dismissed launcher's pipe and reaps it.
    fn end_dismissed(&self) {
        let all = std::mem::take(&mut *lock(&self.dismissed));
        for (mut child, pipe) in all {
            drop(pipe);
            let _ = child.wait();
        }
    }

    fn drain(&self) {
        self.end_dismissed();
        let all = std::mem::take(&mut *self.lock());
        for Launcher { child: mut c, veth } in all {
            if let Some(v) = veth {
                v.delete();
            }
            drop(c.stdin.take());
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A refill that finished after the pool was dropped leaves its launcher here.
impl Drop for Shared {
    fn drop(&mut self) {
        self.drain();
    }
}

/// A veth pair into the network namespace of the new launcher `child`, once it says it joined
/// it (its first line, [`crate::sandbox::handshake::Report::Netns`]). `None` if it does not within
/// [`NETNS_WAIT`] (the start then wires the sliver itself, on that line or through its init) or
/// the pair cannot be made (logged; the start makes its own).
fn make_veth(child: &mut Child) -> Option<Veth> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let out = child.stdout.as_mut()?;
    let mut pfd = libc::pollfd {
        fd: out.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd that outlives the call.
    if unsafe { libc::poll(&mut pfd, 1, NETNS_WAIT.as_millis() as libc::c_int) } <= 0 {
        return None;
    }
    // The launcher writes nothing else before its spec: one read takes the line whole (a write
    // of a few bytes to a pipe is atomic), and nothing the start must read.
    let mut line = [0u8; 64];
    let k = out.read(&mut line).ok()?;
    let netns = crate::sandbox::handshake::Report::parse(&String::from_utf8_lossy(&line[..k]))
        .filter(|r| *r == crate::sandbox::handshake::Report::Netns)
        .and_then(|_| std::fs::File::open(format!("/proc/{}/ns/net", child.id())).ok())?;
    match Veth::make(&netns, &veth::pooled_name(child.id())) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("making a veth ahead for a sliver launcher: {e}");
            None
        }
    }
}

/// A launcher of `exe` waiting on its stdin for a spec; its stderr is `/dev/null` until it
/// knows the sliver's console.
fn spawn(exe: &PathBuf) -> io::Result<Child> {
    Command::new(exe)
        .env_clear()
        .env(INIT_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
}

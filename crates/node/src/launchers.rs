//! Sliver launchers started ahead of any sliver: a start takes one that already runs (its `exec`
//! of the node binary, its dynamic linking and runtime set-up done) and hands it the sliver's
//! `LaunchSpec` on its stdin, instead of spawning a process on the start's critical path.
//!
//! A waiting launcher has done only what needs no sliver: it made a user namespace, not yet
//! mapped to any ids (`sandbox::userns::prepare`). It is in no sliver's cgroup, has made no
//! mount, and runs as the node manager's child with its stdin a pipe from it. It exits when that
//! pipe closes without a spec — when the pool is dropped (node manager shutdown) or when the
//! node manager dies — and its namespace goes with it, so there is nothing of it for `cleanup`
//! to find. A launcher whose sliver started waits, in the same way, until it is dismissed.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sandbox::INIT_ENV;
use crate::sync::lock;

/// How many launchers wait at most: one start at a time is the common case (the reconciler
/// applies its actions in order), and a second one covers a start that comes before the refill
/// after the previous one is done (at idle priority, a launcher takes a few ms to be ready); a
/// burst takes the rest from `spawn`. Each waiting launcher holds two processes (it and the holder
/// of its user namespace).
const POOL_SIZE: usize = 2;

/// The nice value launchers wait at.
const IDLE_NICE: libc::c_int = 19;

pub(crate) struct LauncherPool {
    exe: PathBuf,
    shared: Arc<Shared>,
    /// How many launchers `take` handed out from the pool (the benchmark reports it).
    taken: AtomicUsize,
}

#[derive(Default)]
struct Shared {
    ready: Mutex<Vec<Child>>,
    /// Launchers whose sliver started: each exits once its stdin is closed
    /// ([`LauncherPool::dismiss`]).
    dismissed: Mutex<Vec<Child>>,
    /// A refill is under way (at most one at a time).
    refilling: AtomicBool,
    /// Drained: nothing is added to the pool any more.
    closed: AtomicBool,
}

impl LauncherPool {
    /// An empty pool of launchers of `exe` (the first start spawns its own and fills the pool).
    pub(crate) fn new(exe: PathBuf) -> Self {
        Self {
            exe,
            shared: Arc::default(),
            taken: AtomicUsize::new(0),
        }
    }

    /// A launcher waiting for its spec, at the calling thread's priority: a pooled one, or one
    /// spawned now if none is ready.
    pub(crate) fn take(&self) -> io::Result<Child> {
        loop {
            let pooled = self.shared.lock().pop();
            let Some(mut c) = pooled else {
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
                    self.taken.fetch_add(1, Ordering::Relaxed);
                    return Ok(c);
                }
                // Gone meanwhile: reaped, try the next.
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        spawn(&self.exe)
    }

    /// A launcher whose sliver is released: it exits once its stdin is closed, which the refill
    /// that follows the start does first (see `sandbox::launch`: its exit frees a mount
    /// namespace, which must not slow the init down before it is released, and holds a copy of
    /// the host's mounts, which must not outlive the start by much).
    pub(crate) fn dismiss(&self, child: Child) {
        lock(&self.shared.dismissed).push(child);
    }

    /// In the background: ends the dismissed launchers, then starts launchers until the pool is
    /// full again.
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
                shared.end_dismissed();
                let filled = shared.fill(&exe);
                shared.refilling.store(false, Ordering::Release);
                // Work that came while the flag was up is done now, unless a new refill took it
                // or a launcher failed to start (the next start tries again).
                if !filled || !shared.has_work() || shared.refilling.swap(true, Ordering::AcqRel) {
                    break;
                }
            }
        });
    }

    /// Whether launchers are being started or ended now.
    pub(crate) fn busy(&self) -> bool {
        self.shared.refilling.load(Ordering::Acquire)
    }

    /// How many launchers were taken from the pool so far.
    pub(crate) fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
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

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        lock(&self.ready)
    }

    fn has_work(&self) -> bool {
        let short = self.lock().len() < POOL_SIZE && !self.closed.load(Ordering::Acquire);
        short || !lock(&self.dismissed).is_empty()
    }

    /// Starts launchers until the pool is full; false if one failed to start.
    fn fill(&self, exe: &PathBuf) -> bool {
        while self.lock().len() < POOL_SIZE && !self.closed.load(Ordering::Acquire) {
            match spawn(exe) {
                Ok(child) => self.lock().push(child),
                Err(e) => {
                    tracing::warn!("starting a sliver launcher ahead: {e}");
                    return false;
                }
            }
        }
        // A drain that came meanwhile ends what was added after it.
        if self.closed.load(Ordering::Acquire) {
            self.drain();
        }
        true
    }

    /// Ends each dismissed launcher.
    fn end_dismissed(&self) {
        let all = std::mem::take(&mut *lock(&self.dismissed));
        for child in all {
            end(child);
        }
    }

    fn drain(&self) {
        self.closed.store(true, Ordering::Release);
        self.end_dismissed();
        let all = std::mem::take(&mut *self.lock());
        for child in all {
            end(child);
        }
    }
}

/// How long [`end`] lets a launcher exit by itself.
const END_GRACE: Duration = Duration::from_millis(200);

/// Ends launcher `child`: closes its stdin, so that it exits by itself (reaping its own
/// children, such as the holder of its namespaces, which would otherwise be left to the node
/// manager), and reaps it; kills it if it has not exited within [`END_GRACE`].
pub(crate) fn end(mut child: Child) {
    drop(child.stdin.take());
    let deadline = Instant::now() + END_GRACE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() >= deadline => break,
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A refill that finished after the pool was dropped leaves its launcher here.
impl Drop for Shared {
    fn drop(&mut self) {
        self.drain();
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

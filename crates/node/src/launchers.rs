//! Sliver launchers started ahead of any sliver: a start takes one that already runs (its `exec`
//! of the node binary, its dynamic linking and runtime set-up done) and hands it the sliver's
//! `LaunchSpec` on its stdin, instead of spawning a process on the start's critical path.
//!
//! A waiting launcher has done nothing yet: it is in no sliver's cgroup, has made no namespace
//! or mount, and runs as the node manager's child with its stdin a pipe from it. It exits when
//! that pipe closes without a spec — when the pool is dropped (node manager shutdown) or when the
//! node manager dies — so there is nothing of it for `cleanup` to find.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::sandbox::INIT_ENV;

/// How many launchers wait at most: one start at a time is the common case (the reconciler
/// applies its actions in order); a burst takes the rest from `spawn`.
const POOL_SIZE: usize = 1;

/// The nice value launchers wait at.
const IDLE_NICE: libc::c_int = 19;

pub(crate) struct LauncherPool {
    exe: PathBuf,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    ready: Mutex<Vec<Child>>,
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
    pub(crate) fn take(&self) -> io::Result<Child> {
        loop {
            let pooled = self.shared.lock().pop();
            let Some(mut c) = pooled else { break };
            match c.try_wait() {
                Ok(None) => {
                    // Raised before it is woken by its spec, so it runs at once, not at idle
                    // priority behind everything else on a busy node.
                    // SAFETY: getpriority of the calling thread and setpriority of our child
                    // with integer arguments (host root may raise a priority).
                    let r = unsafe {
                        let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
                        libc::setpriority(libc::PRIO_PROCESS, c.id(), nice)
                    };
                    if r == 0 {
                        return Ok(c);
                    }
                    // Gone meanwhile: reaped, try the next.
                    let _ = c.kill();
                    let _ = c.wait();
                }
                // Died waiting (killed by someone): reaped, try the next.
                _ => continue,
            }
        }
        spawn(&self.exe)
    }

    /// Starts launchers in the background until the pool is full again.
    pub(crate) fn refill(&self) {
        if self.shared.lock().len() >= POOL_SIZE
            || self.shared.refilling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (exe, shared) = (self.exe.clone(), self.shared.clone());
        std::thread::spawn(move || {
            // This thread only spawns: at the lowest priority, so a launcher starting up (its
            // exec, dynamic linking) takes only CPU time no start needs. The launcher inherits it
            // until `take` hands it out.
            // SAFETY: setpriority on the calling thread (tid) with plain integer arguments.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, IDLE_NICE);
            }
            while shared.lock().len() < POOL_SIZE {
                match spawn(&exe) {
                    Ok(c) => shared.lock().push(c),
                    Err(e) => {
                        tracing::warn!("starting a sliver launcher ahead: {e}");
                        break;
                    }
                }
            }
            shared.refilling.store(false, Ordering::Release);
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

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn drain(&self) {
        let all = std::mem::take(&mut *self.lock());
        for mut c in all {
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

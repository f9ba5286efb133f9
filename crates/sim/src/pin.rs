//! Pinning the simulation's processes to cores (`--pin`): central on one core, the agents on
//! another, so neither steals the other's CPU and central's CPU per change is its own.
//!
//! A child inherits the CPU mask of the thread that forks it: the calling thread takes the mask
//! of `cpu`, spawns, and gets its own mask back.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Runs `spawn` (which starts a process) on the calling thread restricted to `cpu`, if given.
/// A core that does not exist, or a mask that cannot be set, leaves the process unpinned.
pub(crate) fn on_cpu<T>(cpu: Option<usize>, spawn: impl FnOnce() -> T) -> T {
    let Some(cpu) = cpu else {
        return spawn();
    };
    let me = Pid::from_raw(0);
    let Ok(old) = sched_getaffinity(me) else {
        return spawn();
    };
    let mut one = CpuSet::new();
    let pinned = one.set(cpu).is_ok() && sched_setaffinity(me, &one).is_ok();
    let out = spawn();
    if pinned {
        if let Err(e) = sched_setaffinity(me, &old) {
            tracing::warn!(error = %e, "cannot restore this thread's CPU mask");
        }
    }
    out
}

/// The cores this process may run on.
pub(crate) fn cores() -> usize {
    sched_getaffinity(Pid::from_raw(0))
        .map(|s| {
            (0..CpuSet::count())
                .filter(|c| s.is_set(*c).unwrap_or(false))
                .count()
        })
        .unwrap_or(1)
}

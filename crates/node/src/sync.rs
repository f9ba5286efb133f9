//! Locking that outlives a panic: a mutex poisoned by a thread that panicked while holding it is
//! still used (its data stays consistent: every critical section here only moves values in and
//! out of a collection).

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

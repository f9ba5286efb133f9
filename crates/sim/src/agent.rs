//! A simulated node: the real long-poll, reconciler and reports over `FakeRuntime`, recording when
//! it has applied (and reported) the change the current phase waits for.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slicelab_client::Client;
use slicelab_model::{DesiredSlivers, NodeReport};
use slicelab_node::FakeRuntime;

use crate::{Propagation, SimError};

/// What each agent is waiting to see in its desired state during a phase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    Present,
    Absent,
}

pub(crate) struct Shared {
    /// 0: warming up; 1: waiting for `Present`; 2: waiting for `Absent`.
    pub(crate) phase: AtomicUsize,
    pub(crate) t0: std::sync::Mutex<Instant>,
    /// Nanoseconds after `t0` at which each agent's report of the goal state was acknowledged.
    pub(crate) done: Vec<AtomicU64>,
    pub(crate) warm: AtomicUsize,
    pub(crate) slice: String,
}

pub(crate) const NOT_YET: u64 = u64::MAX;

impl Shared {
    pub(crate) fn new(nodes: usize, slice: &str) -> Shared {
        Shared {
            phase: AtomicUsize::new(0),
            t0: std::sync::Mutex::new(Instant::now()),
            done: (0..nodes).map(|_| AtomicU64::new(NOT_YET)).collect(),
            warm: AtomicUsize::new(0),
            slice: slice.to_string(),
        }
    }

    /// Starts phase `phase` (1: present, 2: absent) now.
    pub(crate) fn begin(&self, phase: usize) {
        for d in &self.done {
            d.store(NOT_YET, Ordering::SeqCst);
        }
        *self.t0.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.phase.store(phase, Ordering::SeqCst);
    }
}

pub(crate) async fn agent(i: usize, client: Client, shared: Arc<Shared>) {
    let rt = FakeRuntime::new();
    let mut after: Option<String> = None;
    let mut seq = 0i64;
    let mut warmed = false;
    loop {
        let desired: DesiredSlivers = match client
            .desired_slivers(after.as_deref(), Duration::from_secs(30))
            .await
        {
            Ok(d) => d,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let now = slicelab_model::time::now();
        let _ = slicelab_node::reconcile(&rt, &desired, now);
        let slivers = slicelab_node::statuses(&rt, &desired, now).unwrap_or_default();
        let changed = after.as_deref() != Some(desired.revision.as_str());
        after = Some(desired.revision.clone());
        if changed || !warmed {
            seq += 1;
            let report = NodeReport {
                seq,
                slivers: slivers.clone(),
                health: None,
                actions: Vec::new(),
            };
            if client.report(&report).await.is_err() {
                continue;
            }
        }
        if !warmed {
            warmed = true;
            shared.warm.fetch_add(1, Ordering::SeqCst);
        }
        let has = slivers.iter().any(|s| {
            s.slice_name == shared.slice && s.state == slicelab_model::SliverState::Running
        });
        let goal = match shared.phase.load(Ordering::SeqCst) {
            1 => Some(Goal::Present),
            2 => Some(Goal::Absent),
            _ => None,
        };
        let reached = match goal {
            Some(Goal::Present) => has,
            Some(Goal::Absent) => !slivers.iter().any(|s| s.slice_name == shared.slice),
            None => false,
        };
        if reached && shared.done[i].load(Ordering::SeqCst) == NOT_YET {
            let t0 = *shared.t0.lock().unwrap_or_else(|p| p.into_inner());
            shared.done[i].store(t0.elapsed().as_nanos() as u64, Ordering::SeqCst);
        }
    }
}

pub(crate) fn percentiles(mut v: Vec<u64>, api_call: Duration) -> Propagation {
    v.sort_unstable();
    let at = |q: f64| {
        let idx = ((v.len() as f64 - 1.0) * q).round() as usize;
        Duration::from_nanos(v.get(idx).copied().unwrap_or(0))
    };
    Propagation {
        p50: at(0.50),
        p99: at(0.99),
        max: Duration::from_nanos(v.last().copied().unwrap_or(0)),
        api_call,
    }
}

pub(crate) async fn wait_phase(shared: &Shared, timeout: Duration) -> Result<Vec<u64>, SimError> {
    let start = Instant::now();
    loop {
        let done: Vec<u64> = shared
            .done
            .iter()
            .map(|d| d.load(Ordering::SeqCst))
            .collect();
        let n = done.iter().filter(|d| **d != NOT_YET).count();
        if n == done.len() {
            return Ok(done);
        }
        if start.elapsed() > timeout {
            return Err(SimError::Timeout {
                secs: timeout.as_secs(),
                done: n,
                total: done.len(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

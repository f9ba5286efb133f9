//! A simulated node: the real long-poll, reconciler and reports over `FakeRuntime`, telling the
//! driver when it has applied (and reported) the change the current phase waits for.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use slicelab_client::Client;
use slicelab_model::{DesiredSlivers, NodeReport};
use slicelab_node::FakeRuntime;

use tokio::sync::mpsc;

use crate::Propagation;

/// What each agent is waiting to see in its desired state during a phase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    Present,
    Absent,
}

pub(crate) struct Shared {
    /// 0: warming up; 1: waiting for `Present`; 2: waiting for `Absent`.
    pub(crate) phase: AtomicUsize,
    /// Whether each agent has reached the current phase's goal.
    pub(crate) done: Vec<AtomicBool>,
    pub(crate) warm: AtomicUsize,
    pub(crate) slice: String,
    /// `done PHASE K NS` lines to the driver (`crate::agents`).
    out: mpsc::UnboundedSender<String>,
}

impl Shared {
    pub(crate) fn new(agents: usize, slice: &str, out: mpsc::UnboundedSender<String>) -> Shared {
        Shared {
            phase: AtomicUsize::new(0),
            done: (0..agents).map(|_| AtomicBool::new(false)).collect(),
            warm: AtomicUsize::new(0),
            slice: slice.to_string(),
            out,
        }
    }

    /// Starts phase `phase` (1: present, 2: absent) now.
    pub(crate) fn begin(&self, phase: usize) {
        for d in &self.done {
            d.store(false, Ordering::SeqCst);
        }
        self.phase.store(phase, Ordering::SeqCst);
    }
}

pub(crate) async fn agent(k: usize, client: Client, shared: Arc<Shared>) {
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
        let phase = shared.phase.load(Ordering::SeqCst);
        let goal = match phase {
            1 => Some(Goal::Present),
            2 => Some(Goal::Absent),
            _ => None,
        };
        let reached = match goal {
            Some(Goal::Present) => has,
            Some(Goal::Absent) => !slivers.iter().any(|s| s.slice_name == shared.slice),
            None => false,
        };
        if reached && !shared.done[k].swap(true, Ordering::SeqCst) {
            let _ = shared
                .out
                .send(format!("done {phase} {k} {}\n", crate::agents::wall_ns()));
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

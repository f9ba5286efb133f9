//! Background upkeep: the periodic jobs, run by the leading replica only (`crate::leader`), and
//! the listener of other replicas' changes (`crate::wakeups`), started and stopped together.
//!
//! | job | every | what |
//! |---|---|---|
//! | `liveness` | 15 s | nodes silent for 2 minutes are marked `down` (one event each) |
//! | `usage_rollup` | hour | raw usage samples older than a day become hourly rows |
//! | `flow_expiry` | hour | flows older than 30 days are folded into per-slice daily totals |
//! | `blob_sweep` | hour | blobs no image uses, and unfinished uploads, a day old are removed |
//! | `rate_buckets` | 15 s | shared lookup allowances idle for 2 minutes are forgotten (PostgreSQL) |
//! | `peering` | `--peer-sync` (10 s), or at once when kicked | the exchange with every peer (`crate::peering`) |
//!
//! Each is safe if two replicas ever run it at once (a leader that has not yet noticed it lost
//! its lock): the liveness sweep and the blob removal change a row only if it is still in the
//! state they read (`UPDATE … WHERE status = 'up'`, `DELETE … RETURNING`), so each event is
//! written once; the rollup and the flow expiry take a transaction-level lock of their own, so
//! two runs happen one after the other and the second finds nothing left to fold. A new leader
//! runs every job at once, then on its schedule.

use std::sync::Arc;
use std::time::Duration;

use slicelab_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::{api, blobs, leader, limits, now, wakeups};

/// How often central looks for nodes that stopped reporting.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
/// Longest wait for the background tasks to end at shutdown.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The background tasks of one central.
pub(crate) struct Upkeep {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Upkeep {
    /// Starts leadership, the jobs (while leading) and the change listener.
    pub(crate) fn start(st: &AppState) -> Upkeep {
        let stop = CancellationToken::new();
        let (tx, rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(leader::hold(
                st.store.clone(),
                st.metrics.clone(),
                tx,
                stop.clone(),
            )),
            tokio::spawn(run(st.clone(), rx.clone(), stop.clone())),
            tokio::spawn(crate::peering::run(st.clone(), rx, stop.clone())),
            tokio::spawn(wakeups::listen(st.clone(), stop.clone())),
        ];
        let mut tasks = tasks;
        if st.publisher.is_some() {
            // Replicas: a notification lost with a dying replica is caught up here.
            tasks.push(tokio::spawn(crate::desired::resync(
                st.clone(),
                stop.clone(),
            )));
        }
        Upkeep { stop, tasks }
    }

    /// Stops every task; the leader releases its lock.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        for mut t in self.tasks {
            if tokio::time::timeout(STOP_WAIT, &mut t).await.is_err() {
                t.abort();
            }
        }
    }
}

/// When each hourly job ran last on this central (Unix seconds; 0: not since it leads).
#[derive(Default)]
struct Due {
    rollup: i64,
    blobs: i64,
}

/// Runs the jobs whenever this central leads.
async fn run(st: AppState, mut leading: watch::Receiver<bool>, stop: CancellationToken) {
    loop {
        while !*leading.borrow_and_update() {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = leading.changed() => if r.is_err() { return },
            }
        }
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut due = Due::default();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Checked before every round: a leader that lost its lock runs nothing more.
            if !*leading.borrow() {
                break;
            }
            round(&st, &mut due).await;
        }
    }
}

/// One round of whatever is due.
async fn round(st: &AppState, due: &mut Due) {
    let store: &Arc<Store> = &st.store;
    if now() - due.rollup >= api::usage::ROLLUP_EVERY {
        due.rollup = now();
        st.metrics.job_ran("usage_rollup");
        if let Err(e) = store.rollup_usage(now()).await {
            tracing::error!(error = %e, "usage rollup failed");
        }
        st.metrics.job_ran("flow_expiry");
        if let Err(e) = store.expire_flows(now(), api::flows::FLOW_RETENTION).await {
            tracing::error!(error = %e, "flow expiry failed");
        }
    }
    if now() - due.blobs >= blobs::SWEEP_EVERY.as_secs() as i64 {
        due.blobs = now();
        st.metrics.job_ran("blob_sweep");
        match st.blobs.sweep(store, now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(blobs = n, "removed abandoned blobs"),
            Err(e) => tracing::error!(error = %e, "blob sweep failed"),
        }
    }
    st.metrics.job_ran("liveness");
    match store
        .sweep_down_nodes(now(), slicelab_model::time::NODE_LIVE_WINDOW)
        .await
    {
        Ok(down) if !down.is_empty() => {
            tracing::warn!(nodes = ?down, "nodes stopped reporting")
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "liveness sweep failed"),
    }
    if st.lookups.is_shared() {
        st.metrics.job_ran("rate_buckets");
        if let Err(e) = store
            .forget_rate_buckets(limits::unix_now() - limits::IDLE_FORGET_S)
            .await
        {
            tracing::error!(error = %e, "forgetting idle lookup allowances failed");
        }
    }
}

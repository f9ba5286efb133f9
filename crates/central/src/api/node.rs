//! The node-facing endpoints: desired slivers by long-poll, and report batches.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use slicelab_model::sliver::ReportAck;
use slicelab_model::{DesiredSlivers, NodeReport};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::metrics::WatcherGuard;
use crate::state::AppState;

/// Longest a poll may wait.
const MAX_WAIT: u64 = 60;
/// A waiting poll assembles its node's state again this often even without a wake-up (from
/// memory: `crate::desired` re-reads what a lost notification of another replica hid).
const RECHECK: Duration = Duration::from_secs(5);
/// `last_contact` is refreshed at most this often by polls (each refresh is a write).
const CONTACT_EVERY: i64 = 10;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SliversQuery {
    /// The revision the node has; the answer waits until it differs.
    pub after: Option<String>,
    /// Seconds to wait at most (default 30; more than 60 waits 60).
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_counter")]
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub wait: Option<u64>,
}

/// The calling node's desired slivers. Returns at once when its revision differs from `after`,
/// else as soon as a change makes it differ, else after `wait` seconds with the same revision.
#[utoipa::path(get, path = "/api/v1/node/slivers", tag = "node", operation_id = "desired_slivers",
    params(SliversQuery), security(("node_key" = [])),
    responses((status = 200, body = DesiredSlivers), (status = 403, description = "Not a node key.")))]
pub async fn slivers(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SliversQuery>,
) -> ApiResult<Json<DesiredSlivers>> {
    let node = caller.node_or_403()?.clone();
    let wait = Duration::from_secs(q.wait.unwrap_or(30).min(MAX_WAIT));
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = st.changes.subscribe();
    let mut mine = st.watch_node(&node.hostname);
    let _watching = WatcherGuard::new(&st.metrics.watchers);
    let mut touched = false;
    // A timer wake assembles again even if no local write happened (a clock change).
    let mut force = false;
    loop {
        // Mark the current change as seen before reading, so a write landing while we compute
        // wakes the next wait instead of being missed.
        let generation = (*changes.borrow_and_update(), *mine.borrow_and_update());
        let now = crate::now();
        if !touched && node.last_contact.is_none_or(|t| now - t >= CONTACT_EVERY) {
            st.store.touch_node(&node, now).await?;
            st.node_keys.contacted(&node.hostname, now);
            touched = true;
        }
        // A node that just applied a change polls again at once: answer that with the state
        // assembled last while nothing concerning it has changed since. Otherwise assemble it
        // from the desired-state index (`crate::desired`): no query unless this node's own part
        // or a changed slice must be read, and a changed slice is read once for all its nodes.
        let cached = if force {
            None
        } else {
            st.cached_desired(node.id, generation, now)
        };
        let (desired, next_change) = match cached {
            Some(hit) => hit,
            None => {
                let (d, next) = st.desired.desired(&st.store, &node, now).await?;
                st.metrics
                    .desired_computed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let d = std::sync::Arc::new(d);
                st.cache_desired(node.id, generation, d.clone(), next);
                (d, next)
            }
        };
        if q.after.as_deref() != Some(desired.revision.as_str()) {
            return Ok(Json((*desired).clone()));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() || st.is_stopping() {
            return Ok(Json((*desired).clone()));
        }
        // Leases start and end, and slices expire, with no write to wake us: wake for them.
        let mut nap = left.min(RECHECK);
        if let Some(b) = next_change {
            nap = nap.min(Duration::from_secs((b - now).max(0) as u64));
        }
        force = false;
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() || st.is_stopping() {
                    return Ok(Json((*desired).clone()));
                }
            }
            r = mine.changed() => {
                if r.is_err() || st.is_stopping() {
                    return Ok(Json((*desired).clone()));
                }
            }
            _ = tokio::time::sleep(nap) => { force = true; }
        }
    }
}

/// Stores a report batch; repeats of an acknowledged `seq` are ignored.
#[utoipa::path(post, path = "/api/v1/node/report", tag = "node", operation_id = "report",
    request_body = NodeReport, security(("node_key" = [])),
    responses((status = 200, body = ReportAck), (status = 403, description = "Not a node key."),
        (status = 409, description = "The report contradicts the registry.")))]
pub async fn report(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(r): ApiJson<NodeReport>,
) -> ApiResult<Json<ReportAck>> {
    let node = caller.node_or_403()?.clone();
    if r.seq < 1 {
        return Err(ApiError::invalid("seq", "seq starts at 1"));
    }
    if r.slivers.len() > 10_000 {
        return Err(ApiError::invalid(
            "slivers",
            "at most 10000 slivers per report",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = r.slivers.iter().find(|s| !seen.insert(&s.slice_name)) {
        return Err(ApiError::invalid(
            "slivers",
            format!("slice {:?} is listed twice", dup.slice_name),
        ));
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let hostname = node.hostname.clone();
    let pending = crate::batch::Pending {
        node,
        report: r,
        now: crate::now(),
        reply,
    };
    if st.reports.send(pending).await.is_err() {
        return Err(ApiError::internal("central is shutting down"));
    }
    let acked_seq = match answer.await {
        Ok(Ok(seq)) => seq,
        Ok(Err(m)) if !m.is_empty() => return Err(ApiError::conflict(m)),
        _ => return Err(ApiError::internal("internal error; see the central's log")),
    };
    // The report's commit wrote `last_contact`: the next poll need not.
    st.node_keys.contacted(&hostname, crate::now());
    Ok(Json(ReportAck { acked_seq }))
}

//! Prometheus metrics in text exposition format. A handful of series, kept by hand: no global
//! recorder, so several centrals can live in one process (tests) without clashing.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// (method, route, status) → count
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route → latency histogram
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Node long-polls waiting right now.
    pub watchers: AtomicI64,
    /// Desired-sliver computations for long-polls (each is a few queries).
    pub desired_computed: AtomicI64,
    /// Reads of the desired-state index (`crate::desired`): one slice's part, every slice's
    /// parts in bulk, one node's own part.
    pub desired_slice_reads: AtomicI64,
    pub desired_bulk_reads: AtomicI64,
    pub desired_node_reads: AtomicI64,
    /// 1 while this central leads the replicas (runs the periodic jobs), else 0.
    pub leader: AtomicI64,
    /// Change notifications sent to other replicas, and heard from them.
    pub replica_notifies_sent: AtomicI64,
    pub replica_notifies_heard: AtomicI64,
    /// Runs of each periodic job by this central.
    job_runs: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let h = m.entry(route.to_string()).or_insert_with(|| Histogram {
                counts: vec![0; BUCKETS.len()],
                ..Default::default()
            });
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// Counts one run of the periodic job `job`.
    pub fn job_ran(&self, job: &'static str) {
        if let Ok(mut m) = self.job_runs.lock() {
            *m.entry(job).or_default() += 1;
        }
    }

    pub fn render(&self, registry: &[(&str, i64)]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP slicelab_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE slicelab_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "slicelab_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP slicelab_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE slicelab_http_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "slicelab_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "slicelab_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "slicelab_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "slicelab_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        out.push_str("# HELP slicelab_registry_objects Objects in the registry, by kind.\n");
        out.push_str("# TYPE slicelab_registry_objects gauge\n");
        for (kind, n) in registry {
            let _ = writeln!(out, "slicelab_registry_objects{{kind=\"{kind}\"}} {n}");
        }
        out.push_str("# HELP slicelab_node_watchers Node long-polls waiting for a change.\n");
        out.push_str("# TYPE slicelab_node_watchers gauge\n");
        let _ = writeln!(
            out,
            "slicelab_node_watchers {}",
            self.watchers.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP slicelab_desired_computations_total Desired-sliver computations by node long-polls.\n",
        );
        out.push_str("# TYPE slicelab_desired_computations_total counter\n");
        let _ = writeln!(
            out,
            "slicelab_desired_computations_total {}",
            self.desired_computed.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP slicelab_desired_reads_total Database reads of the desired-state index, by part (slice: one slice, bulk: every slice, node: one node's own part).\n",
        );
        out.push_str("# TYPE slicelab_desired_reads_total counter\n");
        for (part, n) in [
            ("slice", &self.desired_slice_reads),
            ("bulk", &self.desired_bulk_reads),
            ("node", &self.desired_node_reads),
        ] {
            let _ = writeln!(
                out,
                "slicelab_desired_reads_total{{part=\"{part}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        self.render_replicas(&mut out);
        out
    }

    /// Leadership, periodic jobs and wake-ups between replicas.
    fn render_replicas(&self, out: &mut String) {
        out.push_str(
            "# HELP slicelab_central_leader 1 if this central runs the periodic jobs (the replicas' leader).\n",
        );
        out.push_str("# TYPE slicelab_central_leader gauge\n");
        let _ = writeln!(
            out,
            "slicelab_central_leader {}",
            self.leader.load(Ordering::Relaxed)
        );
        out.push_str("# HELP slicelab_central_job_runs_total Periodic job runs by this central.\n");
        out.push_str("# TYPE slicelab_central_job_runs_total counter\n");
        if let Ok(m) = self.job_runs.lock() {
            for (job, n) in m.iter() {
                let _ = writeln!(out, "slicelab_central_job_runs_total{{job=\"{job}\"}} {n}");
            }
        }
        out.push_str(
            "# HELP slicelab_replica_notifications_total Change notifications sent to and heard from other central replicas.\n",
        );
        out.push_str("# TYPE slicelab_replica_notifications_total counter\n");
        for (dir, v) in [
            ("sent", &self.replica_notifies_sent),
            ("heard", &self.replica_notifies_heard),
        ] {
            let _ = writeln!(
                out,
                "slicelab_replica_notifications_total{{direction=\"{dir}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// Middleware: counts and times every request by its route template (not its raw path, which
/// would make one series per object).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    state.metrics.observe(
        &method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// Counts a waiting watcher for as long as it lives.
pub struct WatcherGuard<'a>(&'a AtomicI64);

impl<'a> WatcherGuard<'a> {
    pub fn new(g: &'a AtomicI64) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        WatcherGuard(g)
    }
}

impl Drop for WatcherGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

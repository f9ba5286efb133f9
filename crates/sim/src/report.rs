//! What a simulation measured, and how it is printed: one central, or one central next to
//! replicas measured in the same run.

use std::fmt;
use std::time::Duration;

/// Latencies of one change, from the API call returning to each agent's acknowledged report.
#[derive(Debug, Clone, Default)]
pub struct Propagation {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub api_call: Duration,
}

/// One run of the scenario against one set of centrals.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub setup: Duration,
    /// Nodes running an agent (all of them, or a spread sample past `MAX_AGENTS`).
    pub agents: usize,
    pub add: Propagation,
    pub delete: Propagation,
    /// The centrals' CPU seconds during the two measured phases (all of them together).
    pub central_cpu_s: f64,
    /// Of which during the add phase, and during the delete phase.
    pub add_cpu_s: f64,
    pub delete_cpu_s: f64,
    /// Slice changes made (API calls: the add in chunks of 10,000 nodes, then the delete).
    pub changes: usize,
    /// The agents' process's CPU seconds during the phases.
    pub agents_cpu_s: f64,
    pub phases_wall_s: f64,
    /// The largest peak resident memory of a central.
    pub central_rss_peak_mb: f64,
    /// HTTP requests the centrals answered per second during the measured phases.
    pub requests_per_s: f64,
}

/// The same scenario on several central replicas of one PostgreSQL database: agents spread over
/// them, changes written through the first.
#[derive(Debug, Clone, Default)]
pub struct ReplicaRun {
    pub centrals: usize,
    pub run: Measured,
}

#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub nodes: usize,
    pub setup: Duration,
    /// Nodes running an agent.
    pub agents: usize,
    pub add: Propagation,
    pub delete: Propagation,
    /// Central's CPU seconds during the two measured phases.
    pub central_cpu_s: f64,
    pub add_cpu_s: f64,
    pub delete_cpu_s: f64,
    pub changes: usize,
    pub agents_cpu_s: f64,
    pub phases_wall_s: f64,
    /// Central's peak resident memory.
    pub central_rss_peak_mb: f64,
    /// HTTP requests central answered per second during the measured phases.
    pub requests_per_s: f64,
    /// With `run_with_replicas`: the replicas' run, next to the single central's above.
    pub replicas: Option<ReplicaRun>,
}

impl Propagation {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "p50_ms": ms(self.p50),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
            "api_call_ms": ms(self.api_call),
        })
    }
}

impl Measured {
    /// Central's CPU seconds per slice change (each change's fan-out, the agents' reports and
    /// re-polls included).
    pub fn cpu_per_change_s(&self) -> f64 {
        self.central_cpu_s / self.changes.max(1) as f64
    }

    /// Central's CPU microseconds per node concerned by a change: the add and the delete each
    /// concern every node with an agent.
    pub fn cpu_per_node_change_us(&self) -> f64 {
        1e6 * self.central_cpu_s / (2 * self.agents.max(1)) as f64
    }

    /// The figures as JSON (`slicelab sim -o json`): durations in milliseconds.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "setup_ms": ms(self.setup),
            "agents": self.agents,
            "add": self.add.to_json(),
            "delete": self.delete.to_json(),
            "central_cpu_s": self.central_cpu_s,
            "central_cpu_add_s": self.add_cpu_s,
            "central_cpu_delete_s": self.delete_cpu_s,
            "changes": self.changes,
            "central_cpu_per_change_s": self.cpu_per_change_s(),
            "central_cpu_per_node_change_us": self.cpu_per_node_change_us(),
            "agents_cpu_s": self.agents_cpu_s,
            "phases_wall_s": self.phases_wall_s,
            "central_rss_peak_mb": self.central_rss_peak_mb,
            "requests_per_s": self.requests_per_s,
        })
    }
}

impl SimReport {
    /// The report as JSON (`slicelab sim -o json`): the single central's figures, and the
    /// replicas' beside them when they ran.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.single().to_json();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("nodes".into(), self.nodes.into());
            m.insert(
                "replicas".into(),
                match &self.replicas {
                    Some(r) => {
                        let mut run = r.run.to_json();
                        if let serde_json::Value::Object(rm) = &mut run {
                            rm.insert("centrals".into(), r.centrals.into());
                        }
                        run
                    }
                    None => serde_json::Value::Null,
                },
            );
        }
        v
    }

    pub(crate) fn new(nodes: usize, single: Measured, replicas: Option<ReplicaRun>) -> SimReport {
        SimReport {
            nodes,
            setup: single.setup,
            agents: single.agents,
            add: single.add,
            delete: single.delete,
            central_cpu_s: single.central_cpu_s,
            add_cpu_s: single.add_cpu_s,
            delete_cpu_s: single.delete_cpu_s,
            changes: single.changes,
            agents_cpu_s: single.agents_cpu_s,
            phases_wall_s: single.phases_wall_s,
            central_rss_peak_mb: single.central_rss_peak_mb,
            requests_per_s: single.requests_per_s,
            replicas,
        }
    }

    /// The single central's run.
    pub fn single(&self) -> Measured {
        Measured {
            setup: self.setup,
            agents: self.agents,
            add: self.add.clone(),
            delete: self.delete.clone(),
            central_cpu_s: self.central_cpu_s,
            add_cpu_s: self.add_cpu_s,
            delete_cpu_s: self.delete_cpu_s,
            changes: self.changes,
            agents_cpu_s: self.agents_cpu_s,
            phases_wall_s: self.phases_wall_s,
            central_rss_peak_mb: self.central_rss_peak_mb,
            requests_per_s: self.requests_per_s,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cost(m: &Measured) -> String {
    format!(
        "{:.1} CPU-s over {:.1}s ({:.0}% of one core; add {:.1}, delete {:.1}), \
         {:.2} CPU-s per change ({} changes, {:.0} µs per node and change), \
         peak RSS {:.0} MiB, {:.0} requests/s; agents' process {:.1} CPU-s",
        m.central_cpu_s,
        m.phases_wall_s,
        100.0 * m.central_cpu_s / m.phases_wall_s.max(1e-9),
        m.add_cpu_s,
        m.delete_cpu_s,
        m.cpu_per_change_s(),
        m.changes,
        m.cpu_per_node_change_us(),
        m.central_rss_peak_mb,
        m.requests_per_s,
        m.agents_cpu_s
    )
}

/// "N simulated nodes", or "N simulated nodes, A of them running an agent".
fn who(nodes: usize, agents: usize) -> String {
    if agents >= nodes {
        format!("{nodes} simulated nodes")
    } else {
        format!("{nodes} simulated nodes ({agents} of them, evenly spread, run an agent)")
    }
}

const CHANGES: [&str; 2] = ["slice added to all nodes", "slice deleted"];

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(rep) = &self.replicas else {
            writeln!(
                f,
                "slicelab sim: {} (setup {:.1}s)",
                who(self.nodes, self.agents),
                self.setup.as_secs_f64()
            )?;
            writeln!(
                f,
                "  change                    p50 ms     p99 ms     max ms   (API call ms)"
            )?;
            for (name, p) in CHANGES.iter().zip([&self.add, &self.delete]) {
                writeln!(
                    f,
                    "  {name:<24} {:>8.0}   {:>8.0}   {:>8.0}   ({:.0})",
                    ms(p.p50),
                    ms(p.p99),
                    ms(p.max),
                    ms(p.api_call)
                )?;
            }
            return writeln!(f, "  central: {}", cost(&self.single()));
        };
        let (one, many) = (self.single(), &rep.run);
        writeln!(
            f,
            "slicelab sim: {}, 1 central vs {} replicas on one PostgreSQL database \
             (agents spread over the replicas, changes written through the first)",
            who(self.nodes, self.agents),
            rep.centrals
        )?;
        writeln!(
            f,
            "                            {:<36}{} replicas",
            "1 central", rep.centrals
        )?;
        writeln!(
            f,
            "  change                    p50 ms   p99 ms   max ms   (API)    p50 ms   p99 ms   max ms   (API)"
        )?;
        let pairs = [(&one.add, &many.add), (&one.delete, &many.delete)];
        for (name, (a, b)) in CHANGES.iter().zip(pairs) {
            writeln!(
                f,
                "  {name:<24} {:>7.0}  {:>7.0}  {:>7.0}  ({:>5.0})   {:>7.0}  {:>7.0}  {:>7.0}  ({:>5.0})",
                ms(a.p50),
                ms(a.p99),
                ms(a.max),
                ms(a.api_call),
                ms(b.p50),
                ms(b.p99),
                ms(b.max),
                ms(b.api_call)
            )?;
        }
        writeln!(
            f,
            "  setup: 1 central {:.1}s, {} replicas {:.1}s",
            one.setup.as_secs_f64(),
            rep.centrals,
            many.setup.as_secs_f64()
        )?;
        writeln!(f, "  1 central: {}", cost(&one))?;
        writeln!(f, "  {} replicas (together): {}", rep.centrals, cost(many))
    }
}

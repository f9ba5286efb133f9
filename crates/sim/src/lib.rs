//! `slicelab sim`: PlanetLab's lesson "use simulation for scalability".
//!
//! Runs N simulated node agents — each speaks the real node protocol (long-poll of desired
//! slivers, report batches) and runs the real reconciler over a fake runtime that only records
//! (`slicelab_node::FakeRuntime`) — in a process of their own (`slicelab sim --agent-process`),
//! against a real central started as another process, so central's CPU time and memory are
//! measured on their own (and, with `pin`, each runs on a core of its own). It then times how
//! long an API change takes to be applied and reported by every agent, and divides central's
//! CPU seconds by the number of changes.
//!
//! A process holds at most [`MAX_AGENTS`] long-polls (one connection each, and the machine's
//! open-file limit): past that (`--nodes 100000`), every node is registered and concerned by
//! each change, but only an evenly spread sample of them runs an agent.
//!
//! [`run_with_replicas`] runs the same scenario twice in one go, each on a fresh PostgreSQL
//! database: against one central, then against several central replicas on one database, with
//! the agents spread over the replicas and the changes written through the first — so a change
//! reaches most agents through another replica's wake-up.
//!
//! - `central`: the central processes and their costs;
//! - `agent`: one simulated node, and the phase bookkeeping;
//! - `agents`: the agents' process and the driver's end of it;
//! - `pin`: pinning central and the agents to cores;
//! - `pg`: the runs' PostgreSQL databases;
//! - `report`: what was measured, and its printing.

#![forbid(unsafe_code)]

mod agent;
mod agents;
mod central;
mod pg;
mod pin;
mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::objects::{LoginResponse, NodeWithKey};
use thiserror::Error;

use crate::agents::{AgentProcess, AgentsConfig};
use crate::central::Centrals;

pub use crate::agents::serve as serve_agents;

/// Most long-polling agents one run holds (each is a connection at central and in the agents'
/// process; the open-file limit of this machine is 20,000).
pub const MAX_AGENTS: usize = 16_000;
pub use crate::report::{Measured, Propagation, ReplicaRun, SimReport};

#[derive(Debug, Error)]
pub enum SimError {
    #[error("cannot start central: {0}")]
    Central(String),
    #[error("central API: {0}")]
    Api(#[from] slicelab_client::ClientError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {secs}s: only {done} of {total} agents applied the change")]
    Timeout {
        secs: u64,
        done: usize,
        total: usize,
    },
    #[error("several centrals share one PostgreSQL database: give a postgres://… URL ({0})")]
    NeedsPostgres(String),
    #[error("{0}")]
    Db(String),
    #[error("simulated agents: {0}")]
    Agents(String),
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    /// The slicelab binary, to start central with (`slicelab central`).
    pub exe: PathBuf,
    /// Database URL for central; a temporary SQLite file when `None`. For
    /// [`run_with_replicas`], a PostgreSQL server on which it may create databases.
    pub db: Option<String>,
    /// Longest wait for one phase.
    pub timeout: Duration,
    /// How many nodes run an agent (at most [`MAX_AGENTS`]; `None`: every node, up to that).
    pub agents: Option<usize>,
    /// Central on the first core, the agents on the second (when there are two).
    pub pin: bool,
}

impl SimConfig {
    /// How many agents run.
    pub fn agent_count(&self) -> usize {
        self.agents
            .unwrap_or(self.nodes)
            .min(self.nodes)
            .min(MAX_AGENTS)
    }

    /// The cores central and the agents are pinned to, if pinned.
    fn cpus(&self) -> (Option<usize>, Option<usize>) {
        if self.pin && pin::cores() >= 2 {
            (Some(0), Some(1))
        } else {
            (None, None)
        }
    }
}

/// Runs the simulation against one central and returns its measurements.
pub async fn run(cfg: SimConfig) -> Result<SimReport, SimError> {
    raise_nofile();
    let start = Instant::now();
    let centrals = Centrals::start(&cfg, cfg.db.as_deref(), 1)?;
    let single = scenario(&cfg, &centrals, start).await?;
    Ok(SimReport::new(cfg.nodes, single, None))
}

/// Runs the simulation against one central, then against `centrals` replicas on one database,
/// each on a new database of the PostgreSQL server `cfg.db` names (dropped afterwards).
pub async fn run_with_replicas(cfg: SimConfig, centrals: usize) -> Result<SimReport, SimError> {
    let server = match cfg.db.as_deref() {
        Some(u) if pg::is_postgres(u) => u.to_string(),
        Some(u) => return Err(SimError::NeedsPostgres(format!("not {u:?}"))),
        None => return Err(SimError::NeedsPostgres("none was given".into())),
    };
    raise_nofile();
    let mut runs = Vec::new();
    for (k, n) in [(1, 1), (2, centrals.max(2))] {
        let db = pg::TempDb::create(&server, &format!("slicelab_sim_{}_{k}", std::process::id()))
            .await?;
        let start = Instant::now();
        let result = match Centrals::start(&cfg, Some(&db.url), n) {
            Ok(c) => {
                let r = scenario(&cfg, &c, start).await;
                drop(c);
                r
            }
            Err(e) => Err(e),
        };
        db.drop_db().await;
        runs.push((n, result?));
    }
    let (n, many) = runs.pop().unwrap_or_default();
    let (_, single) = runs.pop().unwrap_or_default();
    Ok(SimReport::new(
        cfg.nodes,
        single,
        Some(ReplicaRun {
            centrals: n,
            run: many,
        }),
    ))
}

/// The scenario: register the nodes, start their agents (agent i polls central i mod n), then
/// time a slice added to every node and the slice deleted, both written through the first.
/// Setup counts from `setup_start` (before the centrals started).
async fn scenario(
    cfg: &SimConfig,
    centrals: &Centrals,
    setup_start: Instant,
) -> Result<Measured, SimError> {
    let anon = centrals.client(0, None)?;
    let login: LoginResponse = anon
        .post(
            "/auth/login",
            &json!({"email": "admin@localhost", "password": central::PASSWORD}),
        )
        .await?;
    let admin = anon.with_token(login.token);
    let _: Value = admin
        .post(
            "/sites",
            &json!({"login_base": "sim", "name": "Simulated site", "max_slices": 100}),
        )
        .await?;
    let keys = register_nodes(&admin, cfg.nodes).await?;
    let slice = "sim_exp".to_string();
    let _: Value = admin
        .post(
            "/slices",
            &json!({"name": slice, "description": "scale simulation"}),
        )
        .await?;
    // Agent k runs node k * nodes / agents: every node when they are as many, else a spread.
    let n_agents = cfg.agent_count();
    let agents_cfg = AgentsConfig {
        centrals: centrals.targets(),
        slice: slice.clone(),
        agents: (0..n_agents)
            .map(|k| {
                let i = k * cfg.nodes / n_agents.max(1);
                (i, keys[i].1.clone())
            })
            .collect(),
    };
    let mut agents = AgentProcess::start(&cfg.exe, &agents_cfg, cfg.cpus().1).await?;
    agents.wait_warm(cfg.timeout).await?;
    // Let the first round of polls settle into waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let setup = setup_start.elapsed();

    let agents_cpu0 = agents.pid().map(central::cpu_seconds).unwrap_or(0.0);
    let cpu0 = centrals.cpu_seconds();
    let req0 = centrals.requests_total().await;
    let phases_start = Instant::now();

    // Phase 1: the slice is added to every node (in API calls of at most 10,000 nodes).
    agents.begin(1).await?;
    let t0 = agents::wall_ns();
    let call = Instant::now();
    let mut changes = 0;
    for chunk in keys.chunks(10_000) {
        let names: Vec<&String> = chunk.iter().map(|(h, _)| h).collect();
        let _: Value = admin
            .post(&format!("/slices/{slice}/nodes"), &json!({"names": names}))
            .await?;
        changes += 1;
    }
    let add_call = call.elapsed();
    let add = agent::percentiles(agents.wait_done(1, t0, cfg.timeout).await?, add_call);
    let add_cpu_s = centrals.cpu_seconds() - cpu0;

    // Phase 2: the slice is deleted.
    agents.begin(2).await?;
    let t0 = agents::wall_ns();
    let call = Instant::now();
    let _: Value = admin.delete(&format!("/slices/{slice}")).await?;
    changes += 1;
    let del_call = call.elapsed();
    let delete = agent::percentiles(agents.wait_done(2, t0, cfg.timeout).await?, del_call);

    let phases_wall_s = phases_start.elapsed().as_secs_f64();
    let central_cpu_s = centrals.cpu_seconds() - cpu0;
    let agents_cpu_s = agents.pid().map(central::cpu_seconds).unwrap_or(0.0) - agents_cpu0;
    let requests_per_s = (centrals.requests_total().await - req0) / phases_wall_s.max(1e-9);
    let central_rss_peak_mb = centrals.rss_peak_mb();
    agents.stop().await;
    Ok(Measured {
        setup,
        agents: n_agents,
        add,
        delete,
        central_cpu_s,
        add_cpu_s,
        delete_cpu_s: central_cpu_s - add_cpu_s,
        changes,
        agents_cpu_s,
        phases_wall_s,
        central_rss_peak_mb,
        requests_per_s,
    })
}

/// Registers `n` nodes, a few requests in flight at a time; their (hostname, key).
async fn register_nodes(admin: &Client, n: usize) -> Result<Vec<(String, String)>, SimError> {
    let mut keys: Vec<(String, String)> = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..n {
        let a = admin.clone();
        pending.spawn(async move {
            let host = format!("n{i:05}.sim.test");
            let nk: Result<NodeWithKey, _> = a
                .post("/nodes", &json!({"hostname": host, "site": "sim"}))
                .await;
            nk.map(|nk| (nk.node.hostname, nk.node_key))
        });
        if pending.len() >= 16 {
            if let Some(r) = pending.join_next().await {
                keys.push(r.map_err(|e| SimError::Central(e.to_string()))??);
            }
        }
    }
    while let Some(r) = pending.join_next().await {
        keys.push(r.map_err(|e| SimError::Central(e.to_string()))??);
    }
    Ok(keys)
}

/// Raises the open-file limit to its hard maximum: each agent holds a connection, and central
/// (which inherits the limit) holds the other end.
pub(crate) fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

//! `slicelab sim`: PlanetLab's lesson "use simulation for scalability".
//!
//! Runs N simulated node agents in this process — each speaks the real node protocol (long-poll of
//! desired slivers, report batches) and runs the real reconciler over a fake runtime that only
//! records (`slicelab_node::FakeRuntime`) — against a real central started as a separate process,
//! so its CPU time and memory can be measured on their own. It then times how long an API change
//! takes to be applied and reported by every agent.

#![forbid(unsafe_code)]

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::objects::{LoginResponse, NodeWithKey};
use slicelab_model::{DesiredSlivers, NodeReport};
use slicelab_node::FakeRuntime;
use thiserror::Error;

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
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    /// The slicelab binary, to start central with (`slicelab central`).
    pub exe: PathBuf,
    /// Database URL for central; a temporary SQLite file when `None`.
    pub db: Option<String>,
    /// Longest wait for one phase.
    pub timeout: Duration,
}

/// Latencies of one change, from the API call returning to each agent's acknowledged report.
#[derive(Debug, Clone, Default)]
pub struct Propagation {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub api_call: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub nodes: usize,
    pub setup: Duration,
    pub add: Propagation,
    pub delete: Propagation,
    /// Central's CPU seconds during the two measured phases.
    pub central_cpu_s: f64,
    pub phases_wall_s: f64,
    /// Central's peak resident memory.
    pub central_rss_peak_mb: f64,
    /// HTTP requests central answered per second during the measured phases.
    pub requests_per_s: f64,
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(
            f,
            "slicelab sim: {} simulated nodes (setup {:.1}s)",
            self.nodes,
            self.setup.as_secs_f64()
        )?;
        writeln!(
            f,
            "  change                    p50 ms     p99 ms     max ms   (API call ms)"
        )?;
        for (name, p) in [
            ("slice added to all nodes", &self.add),
            ("slice deleted", &self.delete),
        ] {
            writeln!(
                f,
                "  {name:<24} {:>8.0}   {:>8.0}   {:>8.0}   ({:.0})",
                ms(p.p50),
                ms(p.p99),
                ms(p.max),
                ms(p.api_call)
            )?;
        }
        writeln!(
            f,
            "  central: {:.1} CPU-s over {:.1}s ({:.0}% of one core), peak RSS {:.0} MiB, {:.0} requests/s",
            self.central_cpu_s,
            self.phases_wall_s,
            100.0 * self.central_cpu_s / self.phases_wall_s.max(1e-9),
            self.central_rss_peak_mb,
            self.requests_per_s
        )
    }
}

/// Central as a child process, killed on drop.
struct CentralProc {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for CentralProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PASSWORD: &str = "sim-admin-password";

fn start_central(cfg: &SimConfig) -> Result<CentralProc, SimError> {
    let dir = tempfile::tempdir()?;
    let db = cfg
        .db
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/central.db", dir.path().display()));
    let mut child = Command::new(&cfg.exe)
        .args(["central", "--db", &db, "--listen", "127.0.0.1:0"])
        .env("SLICELAB_ADMIN_PASSWORD", PASSWORD)
        .env("SLICELAB_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| SimError::Central(format!("{}: {e}", cfg.exe.display())))?;
    let Some(out) = child.stdout.take() else {
        return Err(SimError::Central("no stdout".into()));
    };
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .and_then(|u| u.strip_suffix("/api/v1"))
        .map(str::to_string);
    match url {
        Some(url) => Ok(CentralProc {
            child,
            url,
            _dir: dir,
        }),
        None => {
            let _ = child.kill();
            Err(SimError::Central(format!("unexpected first line {line:?}")))
        }
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    (ticks(11) + ticks(12)) / hz
}

fn rss_peak_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn requests_total(url: &str) -> f64 {
    let Ok(resp) = http_get(&format!("{url}/metrics")).await else {
        return 0.0;
    };
    resp.lines()
        .filter(|l| l.starts_with("slicelab_http_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn http_get(url: &str) -> Result<String, SimError> {
    // The metrics page is plain text outside /api/v1: a bare HTTP/1.1 GET over a socket.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = tokio::net::TcpStream::connect(host).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    Ok(buf)
}

/// Raises the open-file limit to its hard maximum: each agent holds a connection, and central
/// (which inherits the limit) holds the other end.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// What each agent is waiting to see in its desired state during a phase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    Present,
    Absent,
}

struct Shared {
    /// 0: warming up; 1: waiting for `Present`; 2: waiting for `Absent`.
    phase: AtomicUsize,
    t0: std::sync::Mutex<Instant>,
    /// Nanoseconds after `t0` at which each agent's report of the goal state was acknowledged.
    done: Vec<AtomicU64>,
    warm: AtomicUsize,
    slice: String,
}

const NOT_YET: u64 = u64::MAX;

async fn agent(i: usize, client: Client, shared: Arc<Shared>) {
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

fn percentiles(mut v: Vec<u64>, api_call: Duration) -> Propagation {
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

async fn wait_phase(shared: &Shared, timeout: Duration) -> Result<Vec<u64>, SimError> {
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

/// Runs the simulation and returns its measurements.
pub async fn run(cfg: SimConfig) -> Result<SimReport, SimError> {
    raise_nofile();
    let setup_start = Instant::now();
    let central = start_central(&cfg)?;
    let pid = central.child.id();
    let anon = Client::new(&central.url, None);
    let login: LoginResponse = anon
        .post(
            "/auth/login",
            &json!({"email": "admin@localhost", "password": PASSWORD}),
        )
        .await?;
    let admin = anon.with_token(login.token);
    let _: Value = admin
        .post(
            "/sites",
            &json!({"login_base": "sim", "name": "Simulated site", "max_slices": 100}),
        )
        .await?;
    // Register the nodes, a few requests in flight at a time.
    let mut keys: Vec<(String, String)> = Vec::with_capacity(cfg.nodes);
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..cfg.nodes {
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
    let slice = "sim_exp".to_string();
    let _: Value = admin
        .post(
            "/slices",
            &json!({"name": slice, "description": "scale simulation"}),
        )
        .await?;
    let shared = Arc::new(Shared {
        phase: AtomicUsize::new(0),
        t0: std::sync::Mutex::new(Instant::now()),
        done: (0..cfg.nodes).map(|_| AtomicU64::new(NOT_YET)).collect(),
        warm: AtomicUsize::new(0),
        slice: slice.clone(),
    });
    let base = Client::new(&central.url, None);
    let mut agents = tokio::task::JoinSet::new();
    for (i, (_, key)) in keys.iter().enumerate() {
        agents.spawn(agent(i, base.with_token(key.clone()), shared.clone()));
    }
    let warm_start = Instant::now();
    while shared.warm.load(Ordering::SeqCst) < cfg.nodes {
        if warm_start.elapsed() > cfg.timeout {
            return Err(SimError::Timeout {
                secs: cfg.timeout.as_secs(),
                done: shared.warm.load(Ordering::SeqCst),
                total: cfg.nodes,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the first round of polls settle into waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let setup = setup_start.elapsed();

    let cpu0 = cpu_seconds(pid);
    let req0 = requests_total(&central.url).await;
    let phases_start = Instant::now();

    // Phase 1: the slice is added to every node in one API call (chunked at the API's limit).
    *shared.t0.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    shared.phase.store(1, Ordering::SeqCst);
    let call = Instant::now();
    for chunk in keys.chunks(10_000) {
        let names: Vec<&String> = chunk.iter().map(|(h, _)| h).collect();
        let _: Value = admin
            .post(&format!("/slices/{slice}/nodes"), &json!({"names": names}))
            .await?;
    }
    let add_call = call.elapsed();
    let add = percentiles(wait_phase(&shared, cfg.timeout).await?, add_call);

    // Phase 2: the slice is deleted.
    for d in &shared.done {
        d.store(NOT_YET, Ordering::SeqCst);
    }
    *shared.t0.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    shared.phase.store(2, Ordering::SeqCst);
    let call = Instant::now();
    let _: Value = admin.delete(&format!("/slices/{slice}")).await?;
    let del_call = call.elapsed();
    let delete = percentiles(wait_phase(&shared, cfg.timeout).await?, del_call);

    let phases_wall_s = phases_start.elapsed().as_secs_f64();
    let central_cpu_s = cpu_seconds(pid) - cpu0;
    let requests_per_s = (requests_total(&central.url).await - req0) / phases_wall_s.max(1e-9);
    let central_rss_peak_mb = rss_peak_mb(pid);
    agents.abort_all();
    drop(central);
    Ok(SimReport {
        nodes: cfg.nodes,
        setup,
        add,
        delete,
        central_cpu_s,
        phases_wall_s,
        central_rss_peak_mb,
        requests_per_s,
    })
}

//! The simulated agents' own process: `slicelab sim` starts `slicelab sim --agent-process`,
//! hands it the agents' keys on its stdin, and drives the phases over its stdin and stdout, so
//! that the agents' CPU is not central's nor the driver's (and may be pinned to another core).
//!
//! The protocol is lines of text: the driver sends one [`AgentsConfig`] as JSON, then `phase N`
//! (1: wait for the slice, 2: wait for it to be gone); the agents' process answers `warm` once
//! every agent has polled and reported once, `phase N` once the phase is set (the driver then
//! makes the change), and `done N I NS` when agent `I` has applied and reported phase `N`'s goal,
//! `NS` the wall clock in nanoseconds since the Unix epoch (both processes read the same clock).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use slicelab_client::{Client, Endpoint, Trust};
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::agent::{self, Shared};
use crate::SimError;

/// A central the agents poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Target {
    pub(crate) url: String,
    /// `sha256:HEX` of its CA.
    pub(crate) fingerprint: String,
}

/// What the driver hands the agents' process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AgentsConfig {
    pub(crate) centrals: Vec<Target>,
    pub(crate) slice: String,
    /// (node index, node key); the k-th agent polls central `k mod centrals`.
    pub(crate) agents: Vec<(usize, String)>,
}

/// Wall clock in nanoseconds since the Unix epoch.
pub(crate) fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Runs the agents' process on stdin/stdout until stdin closes (the driver is done or gone).
pub async fn serve() -> Result<(), SimError> {
    crate::raise_nofile();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let Some(first) = lines.next_line().await? else {
        return Ok(());
    };
    let cfg: AgentsConfig = serde_json::from_str(&first)
        .map_err(|e| SimError::Agents(format!("a bad configuration line: {e}")))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(first) = rx.recv().await {
            let mut buf = first;
            while let Ok(more) = rx.try_recv() {
                buf.push_str(&more);
            }
            if write_all(&mut out, buf.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let shared = Arc::new(Shared::new(cfg.agents.len(), &cfg.slice, tx.clone()));
    // One HTTP client (connection pool) per central, shared by its agents as before.
    let mut clients: Vec<Client> = Vec::new();
    for t in &cfg.centrals {
        let trust =
            Trust::fingerprint(&t.fingerprint).map_err(|e| SimError::Central(e.to_string()))?;
        clients.push(
            Client::connect(&Endpoint::new(&t.url).trust(trust), None)
                .map_err(|e| SimError::Central(e.to_string()))?,
        );
    }
    if clients.is_empty() {
        return Err(SimError::Agents("no central to poll".into()));
    }
    let mut agents = tokio::task::JoinSet::new();
    for (k, (_, key)) in cfg.agents.iter().enumerate() {
        let client = clients[k % clients.len()].with_token(key.clone());
        agents.spawn(agent::agent(k, client, shared.clone()));
    }
    // Warm: every agent polled and reported once.
    let warm = {
        let shared = shared.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            while shared.warm.load(Ordering::SeqCst) < shared.done.len() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = tx.send("warm\n".into());
        })
    };
    while let Some(line) = lines.next_line().await? {
        if let Some(n) = line.strip_prefix("phase ") {
            let phase: usize = n
                .trim()
                .parse()
                .map_err(|_| SimError::Agents(format!("a bad line: {line:?}")))?;
            shared.begin(phase);
            let _ = tx.send(format!("phase {phase}\n"));
        }
    }
    warm.abort();
    agents.abort_all();
    drop(tx);
    drop(shared);
    let _ = writer.await;
    Ok(())
}

async fn write_all(out: &mut (impl AsyncWrite + Unpin), b: &[u8]) -> std::io::Result<()> {
    out.write_all(b).await?;
    out.flush().await
}

/// The driver's end: the agents' process, killed on drop.
pub(crate) struct AgentProcess {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    agents: usize,
}

impl AgentProcess {
    /// Starts `exe sim --agent-process` (on `cpu` only, if given) and hands it `cfg`.
    pub(crate) async fn start(
        exe: &std::path::Path,
        cfg: &AgentsConfig,
        cpu: Option<usize>,
    ) -> Result<AgentProcess, SimError> {
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(["sim", "--agent-process"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        let mut child = crate::pin::on_cpu(cpu, || cmd.spawn())
            .map_err(|e| SimError::Agents(format!("{}: {e}", exe.display())))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(SimError::Agents("no stdin/stdout".into()));
        };
        let mut line = serde_json::to_string(cfg)
            .map_err(|e| SimError::Agents(format!("configuration: {e}")))?;
        line.push('\n');
        write_all(&mut stdin, line.as_bytes()).await?;
        Ok(AgentProcess {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            agents: cfg.agents.len(),
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn next_line(&mut self, until: tokio::time::Instant) -> Result<String, SimError> {
        match tokio::time::timeout_at(until, self.lines.next_line()).await {
            Ok(Ok(Some(l))) => Ok(l),
            Ok(Ok(None)) => Err(SimError::Agents("the agents' process ended".into())),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(SimError::Agents("the agents' process is silent".into())),
        }
    }

    /// Waits until every agent has polled and reported once.
    pub(crate) async fn wait_warm(&mut self, timeout: Duration) -> Result<(), SimError> {
        let until = tokio::time::Instant::now() + timeout;
        while self.next_line(until).await? != "warm" {}
        Ok(())
    }

    /// Sets the agents' goal for `phase`, and returns once they have it.
    pub(crate) async fn begin(&mut self, phase: usize) -> Result<(), SimError> {
        write_all(&mut self.stdin, format!("phase {phase}\n").as_bytes()).await?;
        let want = format!("phase {phase}");
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.next_line(until).await? != want {}
        Ok(())
    }

    /// Waits until every agent has reached `phase`'s goal; the nanoseconds each took after
    /// `t0_ns` (wall clock).
    pub(crate) async fn wait_done(
        &mut self,
        phase: usize,
        t0_ns: u64,
        timeout: Duration,
    ) -> Result<Vec<u64>, SimError> {
        let until = tokio::time::Instant::now() + timeout;
        let mut took = vec![None; self.agents];
        let mut n = 0;
        while n < self.agents {
            let line = match self.next_line(until).await {
                Ok(l) => l,
                Err(_) if tokio::time::Instant::now() >= until => {
                    return Err(SimError::Timeout {
                        secs: timeout.as_secs(),
                        done: n,
                        total: self.agents,
                    })
                }
                Err(e) => return Err(e),
            };
            let w: Vec<&str> = line.split(' ').collect();
            let ["done", p, k, ns] = w.as_slice() else {
                continue;
            };
            let (Ok(p), Ok(k), Ok(ns)) =
                (p.parse::<usize>(), k.parse::<usize>(), ns.parse::<u64>())
            else {
                continue;
            };
            if p == phase {
                if let Some(slot @ None) = took.get_mut(k) {
                    *slot = Some(ns.saturating_sub(t0_ns));
                    n += 1;
                }
            }
        }
        Ok(took.into_iter().flatten().collect())
    }

    /// Ends the agents (closing their stdin), then the process.
    pub(crate) async fn stop(mut self) {
        let _ = self.stdin.shutdown().await;
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

//! The centrals a simulation runs against: real `slicelab central` processes — one, or several
//! replicas on one PostgreSQL database sharing a blob directory — and what they cost (CPU
//! seconds, peak memory, requests answered), read from `/proc` and `/metrics`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::{SimConfig, SimError};

/// The admin password every simulated central is started with.
pub(crate) const PASSWORD: &str = "sim-admin-password";

/// Central as a child process, killed on drop.
struct CentralProc {
    child: Child,
    url: String,
}

impl Drop for CentralProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One run's centrals, killed on drop.
pub(crate) struct Centrals {
    procs: Vec<CentralProc>,
    _dir: tempfile::TempDir,
}

impl Centrals {
    /// Starts `n` centrals on `db` (a temporary SQLite file when `None`), one after the other so
    /// the first migrates and creates the admin alone.
    pub(crate) fn start(cfg: &SimConfig, db: Option<&str>, n: usize) -> Result<Centrals, SimError> {
        let dir = tempfile::tempdir()?;
        let db = db
            .map(str::to_string)
            .unwrap_or_else(|| format!("sqlite://{}/central.db", dir.path().display()));
        let blobs = dir.path().join("blobs");
        let mut procs = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            procs.push(spawn(&cfg.exe, &db, &blobs)?);
        }
        Ok(Centrals { procs, _dir: dir })
    }

    /// Base URLs, the first being the one changes are written through.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.procs.iter().map(|p| p.url.clone()).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.procs.len()
    }

    /// CPU seconds all of them used so far.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        self.procs.iter().map(|p| cpu_seconds(p.child.id())).sum()
    }

    /// The largest peak resident memory among them.
    pub(crate) fn rss_peak_mb(&self) -> f64 {
        self.procs
            .iter()
            .map(|p| rss_peak_mb(p.child.id()))
            .fold(0.0, f64::max)
    }

    /// HTTP requests all of them answered so far.
    pub(crate) async fn requests_total(&self) -> f64 {
        let mut n = 0.0;
        for p in &self.procs {
            n += requests_total(&p.url).await;
        }
        n
    }
}

fn spawn(exe: &Path, db: &str, blobs: &Path) -> Result<CentralProc, SimError> {
    let blobs = blobs.display().to_string();
    let mut child = Command::new(exe)
        .args(["central", "--db", db, "--listen", "127.0.0.1:0"])
        .args(["--blob-dir", &blobs])
        .env("SLICELAB_ADMIN_PASSWORD", PASSWORD)
        .env("SLICELAB_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| SimError::Central(format!("{}: {e}", exe.display())))?;
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
        Some(url) => Ok(CentralProc { child, url }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
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

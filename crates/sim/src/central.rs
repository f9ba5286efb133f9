//! The centrals a simulation runs against: real `slicelab central` processes — one, or several
//! replicas on one PostgreSQL database sharing a blob directory and a CA — over HTTPS, as
//! deployed (clients pin the CA's fingerprint central prints), and what they cost (CPU seconds,
//! peak memory, requests answered), read from `/proc` and `/metrics`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use slicelab_client::{Client, Endpoint, Trust};

use crate::{SimConfig, SimError};

/// The admin password every simulated central is started with.
pub(crate) const PASSWORD: &str = "sim-admin-password";

/// Central as a child process, killed on drop.
struct CentralProc {
    child: Child,
    url: String,
    /// `sha256:HEX` of its CA (the same for every replica: they share the TLS directory).
    fingerprint: String,
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
    /// Reads `/metrics` over the same TLS.
    http: reqwest::Client,
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
        let mut procs = Vec::with_capacity(n);
        let cpu = cfg.cpus().0;
        for _ in 0..n.max(1) {
            procs.push(crate::pin::on_cpu(cpu, || {
                spawn(&cfg.exe, &db, dir.path())
            })?);
        }
        let pem = std::fs::read(dir.path().join("tls/ca.pem"))?;
        let http = reqwest::Certificate::from_pem(&pem)
            .and_then(|ca| reqwest::Client::builder().add_root_certificate(ca).build())
            .map_err(|e| SimError::Central(format!("a client of central's CA: {e}")))?;
        Ok(Centrals {
            procs,
            http,
            _dir: dir,
        })
    }

    /// A client of replica `i` (of `i % len`), trusting the centrals' CA by its fingerprint.
    pub(crate) fn client(&self, i: usize, token: Option<String>) -> Result<Client, SimError> {
        let p = &self.procs[i % self.procs.len()];
        let trust =
            Trust::fingerprint(&p.fingerprint).map_err(|e| SimError::Central(e.to_string()))?;
        Client::connect(&Endpoint::new(&p.url).trust(trust), token)
            .map_err(|e| SimError::Central(e.to_string()))
    }

    /// Where the agents find each central.
    pub(crate) fn targets(&self) -> Vec<crate::agents::Target> {
        self.procs
            .iter()
            .map(|p| crate::agents::Target {
                url: p.url.clone(),
                fingerprint: p.fingerprint.clone(),
            })
            .collect()
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
            n += requests_total(&self.http, &p.url).await;
        }
        n
    }
}

/// Starts one central with its blobs and TLS directory in `dir`; reads its URL and CA.
fn spawn(exe: &Path, db: &str, dir: &Path) -> Result<CentralProc, SimError> {
    let mut child = Command::new(exe)
        .args(["central", "--db", db, "--listen", "127.0.0.1:0"])
        .arg("--blob-dir")
        .arg(dir.join("blobs"))
        .arg("--tls-dir")
        .arg(dir.join("tls"))
        .env("SLICELAB_ADMIN_PASSWORD", PASSWORD)
        .env("SLICELAB_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| SimError::Central(format!("{}: {e}", exe.display())))?;
    let Some(out) = child.stdout.take() else {
        return Err(SimError::Central("no stdout".into()));
    };
    let mut out = BufReader::new(out);
    let (mut url, mut fingerprint) = (None, None);
    let mut said = String::new();
    while url.is_none() || fingerprint.is_none() {
        let mut line = String::new();
        if out.read_line(&mut line)? == 0 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SimError::Central(format!(
                "central did not say its URL and CA: {said:?}"
            )));
        }
        for w in line.split_whitespace() {
            if let Some(u) = w.strip_suffix("/api/v1") {
                url = Some(u.to_string());
            }
            if w.starts_with("sha256:") {
                fingerprint = Some(w.to_string());
            }
        }
        said.push_str(&line);
    }
    Ok(CentralProc {
        child,
        url: url.unwrap_or_default(),
        fingerprint: fingerprint.unwrap_or_default(),
    })
}

/// CPU seconds (user + system) a process has used, from /proc.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
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

async fn requests_total(http: &reqwest::Client, url: &str) -> f64 {
    let text = match http.get(format!("{url}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0.0,
    };
    text.lines()
        .filter(|l| l.starts_with("slicelab_http_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

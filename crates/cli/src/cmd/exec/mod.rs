//! `slicelab exec SLICE -- CMD`: runs CMD in every sliver of a slice, like PlanetLab users did
//! with pssh: one OpenSSH client per node, in parallel, through the nodes' SSH gateways
//! (`ssh -p PORT SLICE@NODE CMD`). Going through SSH (rather than a central API) means exactly
//! the slice's persons' keys get in, and nothing new needs to be trusted.
//!
//! Nodes are the slice's nodes as central lists them (or `--nodes`), reached by hostname. Every
//! output line is printed as it comes, prefixed with the node's name; on a terminal a progress
//! line (`progress`) stays below them; a summary goes to stderr and the exit status is non-zero
//! when any node failed.

mod native;
mod progress;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::args::{ExecArgs, Output};
use crate::session::session;

use progress::Progress;

/// How one node did.
#[derive(Debug)]
struct Outcome {
    node: String,
    ok: bool,
    detail: String,
    took: Duration,
}

async fn pump(
    reader: impl AsyncRead + Unpin,
    prefix: String,
    to_stderr: bool,
    progress: &Progress,
) -> std::io::Result<()> {
    let mut lines = BufReader::new(reader).lines();
    while let Some(l) = lines.next_line().await? {
        progress.line(to_stderr, &format!("{prefix}{l}"));
    }
    Ok(())
}

/// The ssh client for `slice@node` running the command, its output piped.
fn ssh_command(node: &str, slice: &str, a: &ExecArgs, identity: Option<&Path>) -> Command {
    // BatchMode: never prompt (for passwords or unknown host keys) in the middle of a fan-out.
    let mut c = crate::ssh::client(a.port, identity);
    // `--` before the destination: after it, everything is the remote command line.
    c.arg("--")
        .arg(format!("{slice}@{node}"))
        .args(&a.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// What every node's run shares.
struct Shared {
    a: ExecArgs,
    width: usize,
    identity: Option<PathBuf>,
    /// Keys for the in-process client; empty with `--openssh` (or when none loads).
    keys: native::Keys,
    config: Arc<russh::client::Config>,
    progress: Progress,
}

/// Runs the command on one node, its output prefixed with the node's name: in-process, or
/// through OpenSSH when asked to or when the in-process client hands the node over.
async fn run_one(node: String, sh: Arc<Shared>) -> Outcome {
    let t0 = Instant::now();
    let prefix = format!("{:w$} | ", node, w = sh.width);
    let work = async {
        if !sh.keys.is_empty() {
            let command = sh.a.command.join(" ");
            let line =
                |to_stderr: bool, l: &str| sh.progress.line(to_stderr, &format!("{prefix}{l}"));
            match native::run(
                sh.config.clone(),
                &sh.keys,
                &node,
                sh.a.port,
                &sh.a.slice,
                &command,
                line,
            )
            .await
            {
                Ok(native::Ended::Exit(0)) => return (true, String::new()),
                Ok(native::Ended::Exit(c)) => return (false, format!("exit status: {c}")),
                Ok(native::Ended::Signal(s)) => return (false, format!("killed by {s}")),
                Ok(native::Ended::Closed) => {
                    return (false, "the channel closed without an exit status".into())
                }
                Err(native::Failed::Node(e)) => {
                    sh.progress.line(true, &format!("{prefix}{e}"));
                    return (false, "ssh failed (see its message above)".into());
                }
                // OpenSSH decides (and says why it refuses, if it does).
                Err(native::Failed::HandOver(why)) => {
                    tracing::debug!(node = %node, "to OpenSSH: {why}");
                }
            }
        }
        run_openssh(&node, &prefix, &sh).await
    };
    let (ok, detail) = match tokio::time::timeout(Duration::from_secs(sh.a.timeout), work).await {
        Ok(r) => r,
        Err(_) => (false, format!("timed out after {} s", sh.a.timeout)),
    };
    Outcome {
        node,
        ok,
        detail,
        took: t0.elapsed(),
    }
}

/// Runs the command on one node through an OpenSSH client process.
async fn run_openssh(node: &str, prefix: &str, sh: &Shared) -> (bool, String) {
    let mut child = match ssh_command(node, &sh.a.slice, &sh.a, sh.identity.as_deref()).spawn() {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot run ssh: {e}")),
    };
    let out = child
        .stdout
        .take()
        .map(|o| pump(o, prefix.to_string(), false, &sh.progress));
    let err = child
        .stderr
        .take()
        .map(|e| pump(e, prefix.to_string(), true, &sh.progress));
    let (_, _, st) = tokio::join!(
        async {
            if let Some(f) = out {
                let _ = f.await;
            }
        },
        async {
            if let Some(f) = err {
                let _ = f.await;
            }
        },
        child.wait()
    );
    match st {
        Ok(st) if st.success() => (true, String::new()),
        // ssh's own failures (connection, authentication) are 255.
        Ok(st) if st.code() == Some(255) => (false, "ssh failed (see its message above)".into()),
        Ok(st) => (false, format!("{st}")),
        Err(e) => (false, format!("waiting for ssh: {e}")),
    }
}

/// `slicelab exec`: fails when any node failed.
pub(crate) async fn exec(out: Output, a: ExecArgs) -> Result<()> {
    let nodes = if a.nodes.is_empty() {
        let s = session()?;
        let slice = s
            .client
            .slice(&a.slice)
            .await
            .with_context(|| format!("looking up slice {}", a.slice))?;
        slice.nodes
    } else {
        a.nodes.clone()
    };
    if nodes.is_empty() {
        bail!(
            "slice {} has no nodes (add some with `slicelab slice add-nodes`)",
            a.slice
        );
    }
    let identity = crate::ssh::identity(a.identity.as_deref());
    let width = nodes.iter().map(String::len).max().unwrap_or(0);
    let keys = if a.openssh {
        native::Keys::default()
    } else {
        native::Keys::load(identity.as_deref())
    };
    let limit = Arc::new(Semaphore::new(a.parallel.max(1)));
    let sh = Arc::new(Shared {
        progress: Progress::new(
            out == Output::Table && std::io::stderr().is_terminal(),
            nodes.len(),
        ),
        width,
        identity,
        keys,
        config: native::config(),
        a,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for n in nodes.iter().cloned() {
        let (sh, limit) = (sh.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            run_one(n, sh).await
        });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let r = r.context("exec task")?;
        sh.progress.finished(r.ok);
        results.push(r);
    }
    sh.progress.clear();
    results.sort_by(|x, y| x.node.cmp(&y.node));
    let failed = summarize(&results, width);
    if failed > 0 {
        bail!("{failed} of {} nodes failed", results.len());
    }
    Ok(())
}

/// Prints how each node did and the totals on stderr; returns how many failed.
fn summarize(results: &[Outcome], width: usize) -> usize {
    let failed = results.iter().filter(|r| !r.ok).count();
    eprintln!();
    for r in results {
        eprintln!(
            "{:width$}  {:6}  {:>6.1}s  {}",
            r.node,
            if r.ok { "ok" } else { "FAILED" },
            r.took.as_secs_f64(),
            r.detail
        );
    }
    eprintln!(
        "{} of {} nodes ok{}",
        results.len() - failed,
        results.len(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    failed
}

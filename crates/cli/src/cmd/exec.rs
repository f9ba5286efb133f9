//! `slicelab exec SLICE -- CMD`: runs CMD in every sliver of a slice, like PlanetLab users did
//! with pssh: one OpenSSH client per node, in parallel, through the nodes' SSH gateways
//! (`ssh -p PORT SLICE@NODE CMD`). Going through SSH (rather than a central API) means exactly
//! the slice's persons' keys get in, and nothing new needs to be trusted.
//!
//! Nodes are the slice's nodes as central lists them (or `--nodes`), reached by hostname. Every
//! output line is printed as it comes, prefixed with the node's name; a summary goes to stderr
//! and the exit status is non-zero when any node failed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::args::ExecArgs;
use crate::session::session;

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
) -> std::io::Result<()> {
    let mut lines = BufReader::new(reader).lines();
    while let Some(l) = lines.next_line().await? {
        if to_stderr {
            eprintln!("{prefix}{l}");
        } else {
            println!("{prefix}{l}");
        }
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

/// Runs the command on one node, its output prefixed with the node's name.
async fn run_one(
    node: String,
    width: usize,
    slice: String,
    a: Arc<ExecArgs>,
    identity: Option<PathBuf>,
) -> Outcome {
    let t0 = Instant::now();
    let mut child = match ssh_command(&node, &slice, &a, identity.as_deref()).spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                node,
                ok: false,
                detail: format!("cannot run ssh: {e}"),
                took: t0.elapsed(),
            }
        }
    };
    let prefix = format!("{node:width$} | ");
    let out = child.stdout.take().map(|o| pump(o, prefix.clone(), false));
    let err = child.stderr.take().map(|e| pump(e, prefix, true));
    let work = async {
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
        st
    };
    let (ok, detail) = match tokio::time::timeout(Duration::from_secs(a.timeout), work).await {
        Ok(Ok(st)) if st.success() => (true, String::new()),
        // ssh's own failures (connection, authentication) are 255.
        Ok(Ok(st)) if st.code() == Some(255) => {
            (false, "ssh failed (see its message above)".into())
        }
        Ok(Ok(st)) => (false, format!("{st}")),
        Ok(Err(e)) => (false, format!("waiting for ssh: {e}")),
        Err(_) => (false, format!("timed out after {} s", a.timeout)),
    };
    Outcome {
        node,
        ok,
        detail,
        took: t0.elapsed(),
    }
}

/// `slicelab exec`: fails when any node failed.
pub(crate) async fn exec(a: ExecArgs) -> Result<()> {
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
    let a = Arc::new(a);
    let limit = Arc::new(Semaphore::new(a.parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for n in nodes.iter().cloned() {
        let (a, identity, limit, slice) =
            (a.clone(), identity.clone(), limit.clone(), a.slice.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            run_one(n, width, slice, a, identity).await
        });
    }
    let tty = std::io::stderr().is_terminal();
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let r = r.context("exec task")?;
        if tty {
            eprintln!(
                "[{}/{}] {} {}",
                results.len() + 1,
                nodes.len(),
                r.node,
                if r.ok { "done" } else { "failed" }
            );
        }
        results.push(r);
    }
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

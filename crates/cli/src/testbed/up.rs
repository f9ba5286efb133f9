//! `slicelab up`: checks it can run, clears what an earlier testbed left, brings the testbed up
//! (`bring_up`), logs the invoking user in as the demo PI, prints the summary and, unless
//! detached, stays in the foreground until Ctrl-C or SIGTERM, then tears everything down.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::bring_up::bring_up;
use super::down::teardown_in_background;
use super::keys::invoking_user;
use super::process::reap;
use super::summary::print_summary;
use super::{require_root, Testbed};
use crate::args::UpArgs;
use crate::config::{self, Config};

/// `slicelab up`.
pub async fn up(a: UpArgs) -> Result<()> {
    preflight()?;
    let dir = a.dir.clone();
    fs::create_dir_all(dir.join("keys")).with_context(|| format!("creating {}", dir.display()))?;
    let left = teardown_in_background(&dir, "cleanup task").await?;
    if left.anything() {
        eprintln!(
            "Removed the leftovers of an earlier testbed ({} processes, {} nodes).",
            left.processes, left.nodes
        );
    }
    let mut tb = Testbed {
        up_pid: (!a.detach).then_some(std::process::id() as i32),
        ..Default::default()
    };
    tb.save(&dir)?;
    let started = Instant::now();
    let demo = match bring_up(&a, &mut tb).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("\nerror: {e:#}\nTearing down what was started...");
            let _ = teardown_in_background(&dir, "cleanup task").await;
            return Err(e);
        }
    };
    let login = save_login(
        &tb.central_url,
        tb.central_ca_fingerprint.as_deref(),
        &demo.people.pi_email,
        &demo.people.pi_token,
    );
    print_summary(&a, &tb, &demo, login.as_deref(), started.elapsed());
    if a.detach {
        return Ok(());
    }
    wait_for_signal().await?;
    eprintln!("\nStopping the testbed...");
    let r = teardown_in_background(&dir, "teardown task").await?;
    eprintln!(
        "Testbed down: stopped {} processes, removed {} nodes.",
        r.processes, r.nodes
    );
    Ok(())
}

/// Root, and the tools `up` runs.
fn preflight() -> Result<()> {
    require_root("up")?;
    for tool in ["ip", "nft", "ssh-keygen"] {
        if Command::new(tool).arg("-V").output().is_err()
            && Command::new(tool).arg("--help").output().is_err()
        {
            bail!("`{tool}` is not installed (sudo ./install.sh installs what slicelab needs)");
        }
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM, reaping exited children meanwhile.
async fn wait_for_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing a SIGTERM handler")?;
    let mut reaper = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = reaper.tick() => reap(),
        }
    }
}

/// Saves the PI's session as the invoking user's login (so `slicelab slice ...` and
/// `slicelab exec` work at once), unless that user is logged in to another central.
fn save_login(
    central: &str,
    ca_fingerprint: Option<&str>,
    email: &str,
    token: &str,
) -> Option<PathBuf> {
    let path = match std::env::var_os(config::ENV_CONFIG).filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => match invoking_user() {
            Some((_, _, h)) => h.join(".config").join("slicelab").join("config.toml"),
            None => config::path().ok()?,
        },
    };
    let old = Config::load(&path).ok()?;
    if old.central.as_deref().is_some_and(|c| c != central) && old.token.is_some() {
        return None;
    }
    let cfg = Config {
        central: Some(central.to_string()),
        token: Some(token.to_string()),
        email: Some(email.to_string()),
        ca_fingerprint: ca_fingerprint.map(str::to_string),
        ..Config::default()
    };
    cfg.save(&path).ok()?;
    if let Some((uid, gid, h)) = invoking_user() {
        // Written by root on the user's behalf: hand the files over.
        let mut p = path.clone();
        loop {
            let _ = std::os::unix::fs::chown(&p, Some(uid), Some(gid));
            match p.parent() {
                Some(parent) if parent.starts_with(&h) && parent != h => p = parent.to_path_buf(),
                _ => break,
            }
        }
    }
    Some(path)
}

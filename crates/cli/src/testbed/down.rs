//! `slicelab down` and the teardown `up` also runs before it starts and when it stops: finds
//! everything a testbed in `dir` left (from its state file and by name: namespaces, cgroups,
//! state dirs, processes mentioning `dir`) and removes it in order: the foreground `up`, the node
//! managers, each node's slivers and namespace, the bridge, central, the marked blocks, files.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::hosts::{set_block, HOSTS, KNOWN_HOSTS};
use super::process::{alive, cmdline, run, spawn_in_netns, terminate, testbed_processes};
use super::state::STATE_FILE;
use super::{netns, require_root, Testbed, BRIDGE, CGROUP_PREFIX, NS_PREFIX};
use crate::args::DownArgs;

/// What `down` found and removed.
#[derive(Debug, Default)]
pub struct DownReport {
    pub processes: usize,
    pub nodes: usize,
    pub namespaces: usize,
    pub bridge: bool,
    pub blocks: bool,
}

impl DownReport {
    pub fn anything(&self) -> bool {
        self.processes + self.nodes + self.namespaces > 0 || self.bridge || self.blocks
    }
}

/// Tears down the testbed in `dir` (and any leftovers of a crashed one). Idempotent.
pub fn teardown(dir: &Path) -> Result<DownReport> {
    let mut r = DownReport::default();
    let tb = Testbed::load(dir);
    stop_foreground_up(tb.as_ref());
    let exe = std::env::current_exe().context("finding the slicelab binary")?;
    let nodes = find_nodes(dir, tb.as_ref());
    // Node managers first (they would restart slivers), then each node's slivers and objects.
    r.processes += stop_node_managers(tb.as_ref(), &nodes);
    for i in &nodes {
        clean_node(&exe, dir, *i)?;
        r.namespaces += 1;
        r.nodes += 1;
    }
    // The host ends of the veths went with their namespaces; only the bridge is left.
    if run("ip", &["link", "show", "dev", BRIDGE]).is_ok() {
        run("ip", &["link", "del", BRIDGE])?;
        r.bridge = true;
    }
    r.processes += stop_central(dir, tb.as_ref());
    r.blocks |= set_block(HOSTS, &[])?;
    r.blocks |= set_block(KNOWN_HOSTS, &[])?;
    for f in ["central.db", "central.db-wal", "central.db-shm", STATE_FILE] {
        let p = dir.join(f);
        if p.exists() {
            fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(r)
}

/// A foreground `up` tears down itself on SIGTERM; let it (for up to 90 s), then sweep.
fn stop_foreground_up(tb: Option<&Testbed>) {
    if let Some(pid) = tb.and_then(|t| t.up_pid) {
        let me = std::process::id() as i32;
        if pid != me && alive(pid) && cmdline(pid).iter().any(|a| a == "up") {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(90);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Stops the node managers: those the state file names and whatever runs in the nodes'
/// namespaces. Returns how many were alive.
fn stop_node_managers(tb: Option<&Testbed>, nodes: &[u8]) -> usize {
    let mut managers: Vec<i32> = tb
        .map(|t| t.nodes.iter().filter_map(|n| n.pid).collect())
        .unwrap_or_default();
    managers.retain(|p| cmdline(*p).iter().any(|a| a == "node"));
    for i in nodes {
        let ns = netns(*i);
        if netns_exists(&ns) {
            if let Ok(out) = run("ip", &["netns", "pids", &ns]) {
                managers.extend(out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    managers.sort();
    managers.dedup();
    terminate(&managers, Duration::from_secs(10))
}

/// Removes node `i`: its slivers and kernel objects (`slicelab node cleanup` inside its
/// namespace), the namespace, and its state dir.
fn clean_node(exe: &Path, dir: &Path, i: u8) -> Result<()> {
    let ns = netns(i);
    // Cleanup deletes the node's gateway interface and nft table: it must run in the node's
    // namespace, never in the host's. A vanished namespace is recreated for it (empty).
    if !netns_exists(&ns) {
        run("ip", &["netns", "add", &ns])?;
    }
    let state_dir = dir.join(format!("n{i}"));
    let mut c = Command::new(exe);
    c.args(["node", "cleanup", "--purge", "--state-dir"])
        .arg(&state_dir)
        .args(["--cgroup-parent", &format!("{CGROUP_PREFIX}{i}")])
        .env_remove("SLICELAB_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = spawn_in_netns(&mut c, Some(&ns))?
        .wait_with_output()
        .context("waiting for node cleanup")?;
    if !out.status.success() {
        eprintln!(
            "warning: cleanup of node {i} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    run("ip", &["netns", "del", &ns])?;
    if state_dir.exists() {
        fs::remove_dir_all(&state_dir)
            .with_context(|| format!("removing {}", state_dir.display()))?;
    }
    Ok(())
}

/// Stops central: the pid the state file names, and any process mentioning `dir`. Returns how
/// many were alive.
fn stop_central(dir: &Path, tb: Option<&Testbed>) -> usize {
    let mut central: Vec<i32> = tb
        .and_then(|t| t.central_pid)
        .filter(|p| cmdline(*p).iter().any(|a| a == "central"))
        .into_iter()
        .collect();
    central.extend(testbed_processes(dir));
    central.sort();
    central.dedup();
    terminate(&central, Duration::from_secs(10))
}

/// Node indices with anything left: from the state file, namespaces, cgroups and state dirs.
fn find_nodes(dir: &Path, tb: Option<&Testbed>) -> Vec<u8> {
    let mut idx: Vec<u8> = tb
        .map(|t| t.nodes.iter().map(|n| n.index).collect())
        .unwrap_or_default();
    let mut scan = |d: &Path, prefix: &str| {
        if let Ok(rd) = fs::read_dir(d) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(i) = name.strip_prefix(prefix).and_then(|s| s.parse::<u8>().ok()) {
                    idx.push(i);
                }
            }
        }
    };
    scan(Path::new("/run/netns"), NS_PREFIX);
    scan(dir, "n");
    scan(Path::new("/sys/fs/cgroup"), CGROUP_PREFIX);
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            scan(&e.path(), CGROUP_PREFIX);
        }
    }
    idx.sort();
    idx.dedup();
    idx
}

fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// `teardown(dir)` on a blocking thread; `task` names it if the thread fails.
pub(super) async fn teardown_in_background(dir: &Path, task: &'static str) -> Result<DownReport> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || teardown(&dir))
        .await
        .context(task)?
}

/// `slicelab down`.
pub async fn down(a: DownArgs) -> Result<()> {
    require_root("down")?;
    let r = teardown_in_background(&a.dir, "teardown task").await?;
    if r.anything() {
        eprintln!(
            "Testbed down: stopped {} processes, removed {} nodes{}.",
            r.processes,
            r.nodes,
            if r.bridge { " and the bridge" } else { "" }
        );
    } else {
        eprintln!(
            "No testbed was running (nothing left in {}).",
            a.dir.display()
        );
    }
    Ok(())
}

//! The testbed's nodes: each registered at central (with the demo slice's initscript for it),
//! given its node key and SSH host key, and its node manager started inside its namespace; then
//! waiting until every node runs its sliver of the demo slice.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use slicelab_client::Client;
use slicelab_model::objects::{NodeCreate, SliceTagSet};
use slicelab_model::{BootState, SliverState, TagName};

use super::central::Central;
use super::keys::host_key;
use super::process::{log_file, reap, spawn_in_netns};
use super::progress::Progress;
use super::{
    host_addr, netns, node_addr, site_name, Testbed, TestbedNode, CGROUP_PREFIX, DEMO_PORT,
    DEMO_SLICE, DOMAIN,
};
use crate::args::UpArgs;

/// What the started nodes need in `/etc/hosts` and known_hosts, and their hostnames.
pub(super) struct Started {
    pub(super) hosts: Vec<String>,
    pub(super) known: Vec<String>,
    pub(super) hostnames: Vec<String>,
}

/// Registers and starts nodes 1..=`a.nodes` (recording each in `tb` as it starts).
pub(super) async fn start_nodes(
    exe: &Path,
    a: &UpArgs,
    tb: &mut Testbed,
    (central, pi): (&Central, &Client),
    progress: &mut Progress,
) -> Result<Started> {
    let mut started = Started {
        hosts: vec![format!("{} central.{DOMAIN}", host_addr())],
        known: Vec::new(),
        hostnames: Vec::new(),
    };
    for i in 1..=a.nodes {
        let site = site_name((i - 1) % a.sites);
        let hostname = format!("node{i}.{site}.{DOMAIN}");
        let node_key = register_node(&central.admin, pi, &hostname, &site).await?;
        let files = node_files(&a.dir, i, &node_key)?;
        let addr = node_addr(i);
        started.hosts.push(format!("{addr} {hostname} node{i}"));
        started
            .known
            .push(format!("{hostname},{addr} {}", files.host_pub));
        let child = spawn_node_manager(exe, central, &a.dir, i, &files)?;
        tb.nodes.push(TestbedNode {
            index: i,
            hostname: hostname.clone(),
            address: addr,
            netns: netns(i),
            pid: Some(child.id() as i32),
        });
        tb.save(&a.dir)?;
        started.hostnames.push(hostname);
        progress.set(&format!("nodes: {i}/{} started", a.nodes));
    }
    Ok(started)
}

/// Registers `hostname` at `site` and sets the demo slice's initscript for it; returns the
/// node key.
async fn register_node(admin: &Client, pi: &Client, hostname: &str, site: &str) -> Result<String> {
    let nk = admin
        .create_node(&NodeCreate {
            hostname: hostname.to_string(),
            site: site.to_string(),
            boot_state: BootState::Boot,
            cpu_cores: 1,
            mem_mb: 512,
            disk_gb: 1,
            region: String::new(),
            reservable: false,
        })
        .await
        .with_context(|| format!("registering {hostname}"))?;
    pi.set_slice_tag(
        DEMO_SLICE,
        TagName::Initscript,
        &SliceTagSet {
            value: initscript(hostname),
            node: Some(hostname.to_string()),
        },
    )
    .await
    .context("setting the demo slice's initscript")?;
    Ok(nk.node_key)
}

/// The demo sliver's program: a web page naming its node, served on the demo port.
fn initscript(hostname: &str) -> String {
    format!(
        "mkdir -p /srv/www && echo \"<h1>{DEMO_SLICE} on {hostname}</h1>\" > /srv/www/index.html && exec httpd -f -p {DEMO_PORT} -h /srv/www"
    )
}

/// A node's files: its state dir, node key file and SSH host key.
struct NodeFiles {
    state_dir: PathBuf,
    key_file: PathBuf,
    host_key: PathBuf,
    /// The host key's public half (`algorithm base64`), for known_hosts.
    host_pub: String,
}

/// Creates node `i`'s state dir with its node key in `node.key` (mode 0600), and finds or makes
/// its host key.
fn node_files(dir: &Path, i: u8, node_key: &str) -> Result<NodeFiles> {
    let state_dir = dir.join(format!("n{i}"));
    fs::create_dir_all(&state_dir)?;
    let key_file = state_dir.join("node.key");
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_file)
        .and_then(|mut f| f.write_all(node_key.as_bytes()))
        .with_context(|| format!("writing {}", key_file.display()))?;
    let (host_key, host_pub) = host_key(dir, i)?;
    Ok(NodeFiles {
        state_dir,
        key_file,
        host_key,
        host_pub,
    })
}

/// Starts node `i`'s manager in the node's namespace, logging under `<dir>/logs`; the
/// environment cannot override its flags.
fn spawn_node_manager(
    exe: &Path,
    central: &Central,
    dir: &Path,
    i: u8,
    f: &NodeFiles,
) -> Result<Child> {
    let mut c = Command::new(exe);
    c.args([
        "node",
        "--central",
        &central.url,
        "--ca-fingerprint",
        &central.ca_fingerprint,
        "--ssh-listen",
        "0.0.0.0:22",
    ])
    .arg("--key-file")
    .arg(&f.key_file)
    .arg("--state-dir")
    .arg(&f.state_dir)
    .arg("--ssh-host-key")
    .arg(&f.host_key)
    .args(["--cgroup-parent", &format!("{CGROUP_PREFIX}{i}")])
    .env_remove("SLICELAB_NODE_KEY")
    .env_remove("SLICELAB_CENTRAL")
    .env_remove("SLICELAB_CA")
    .env_remove("SLICELAB_ALLOW_PLAIN_HTTP")
    .stdin(Stdio::null())
    .stdout(log_file(dir, &format!("node{i}.log"))?)
    .stderr(log_file(dir, &format!("node{i}.err.log"))?);
    spawn_in_netns(&mut c, Some(&netns(i)))
}

/// Up means: every node runs its sliver of the demo slice (and so its SSH gateway is up).
/// Fails when a sliver fails, or after 90 s.
pub(super) async fn wait_ready(a: &UpArgs, pi: &Client, progress: &mut Progress) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let slivers = pi.slice_slivers(DEMO_SLICE).await.unwrap_or_default();
        let running = slivers
            .iter()
            .filter(|s| s.state == SliverState::Running)
            .count();
        progress.set(&format!(
            "nodes: {running}/{} running the demo slice",
            a.nodes
        ));
        if running == usize::from(a.nodes) {
            return Ok(());
        }
        if let Some(f) = slivers.iter().find(|s| s.state == SliverState::Failed) {
            bail!("the demo sliver on {} failed: {}", f.node, f.message);
        }
        if Instant::now() > deadline {
            bail!(
                "only {running} of {} nodes run the demo slice after 90 s (logs in {})",
                a.nodes,
                a.dir.join("logs").display()
            );
        }
        reap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

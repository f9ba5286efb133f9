//! `slicelab up` / `slicelab down`: a whole testbed on one machine.
//!
//! Layout (every name derives from a fixed prefix, so `down` — or the next `up` — finds and
//! removes what a crashed run left, even without the state file):
//! - a host bridge `slup0` with 10.99.0.1/24, the only host address the testbed uses; central
//!   listens there (a separate `slicelab central` process on a SQLite file in the testbed dir);
//! - node *i* is a network namespace `slup-n<i>` with a veth (`slup-n<i>` on the host, enslaved
//!   to the bridge; `eth0` inside) at 10.99.0.(10+i), default route via the bridge address; its
//!   node manager (`slicelab node`) runs inside that namespace with its own state dir
//!   `<dir>/n<i>`, cgroup parent `slicelab-up-n<i>` and SSH gateway on port 22; its gateway
//!   interface, nft table and sliver subnet are the defaults, which is fine because they live in
//!   the node's namespace;
//! - a marked block in `/etc/hosts` (node hostnames) and in `/etc/ssh/ssh_known_hosts` (the
//!   nodes' host keys, kept in `<dir>/keys` across runs), so `ssh demo_slice@node1.demo.slicelab.test`
//!   works without prompts;
//! - `<dir>/testbed.json`: what runs (pids, nodes), for `down` and `slicelab exec`.
//!
//! No traffic leaves the machine: nothing routes the bridge's subnet anywhere else.

use std::fs::{self, File};
use std::io::{IsTerminal, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use slicelab_client::Client;
use slicelab_model::objects::{
    KeyCreate, NodeCreate, PersonCreate, SiteCreate, SliceCreate, SliceTagSet,
};
use slicelab_model::{BootState, Role, SliverState, TagName};

use crate::cli::{DownArgs, UpArgs};
use crate::config::{self, Config};

pub const BRIDGE: &str = "slup0";
pub const NS_PREFIX: &str = "slup-n";
pub const CGROUP_PREFIX: &str = "slicelab-up-n";
pub const DEMO_SLICE: &str = "demo_slice";
const DOMAIN: &str = "slicelab.test";
const BLOCK_BEGIN: &str = "# BEGIN slicelab up (removed by `slicelab down`)";
const BLOCK_END: &str = "# END slicelab up";
const HOSTS: &str = "/etc/hosts";
const KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";
const STATE_FILE: &str = "testbed.json";
/// The demo service every sliver of the demo slice runs, reachable at node port 8080.
const DEMO_PORT: u16 = 8080;

pub fn host_addr() -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, 1)
}

pub fn node_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, 10 + i)
}

pub fn netns(i: u8) -> String {
    format!("{NS_PREFIX}{i}")
}

fn site_name(k: u8) -> String {
    if k == 0 {
        "demo".into()
    } else {
        format!("site{}", k + 1)
    }
}

/// What runs, written by `up` as it goes and read by `down` and `exec`. It holds no secret
/// (mode 0644), so `slicelab exec` finds the key without root.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Testbed {
    pub central_url: String,
    pub central_pid: Option<i32>,
    /// The foreground `slicelab up` that tears the testbed down on Ctrl-C (`None` when detached).
    pub up_pid: Option<i32>,
    pub nodes: Vec<TestbedNode>,
    /// The demo user's private key, when `up` knows it.
    pub user_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestbedNode {
    pub index: u8,
    pub hostname: String,
    pub address: Ipv4Addr,
    pub netns: String,
    pub pid: Option<i32>,
}

impl Testbed {
    pub fn load(dir: &Path) -> Option<Testbed> {
        let b = fs::read(dir.join(STATE_FILE)).ok()?;
        serde_json::from_slice(&b).ok()
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }
}

// ---------- small helpers ----------

fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn random_password() -> Result<String> {
    let mut b = [0u8; 12];
    File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .context("reading /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purposes (its parent has not reaped it yet).
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z"),
        Err(_) => false,
    }
}

fn cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGTERM, then SIGKILL after `grace`; returns how many were alive.
fn terminate(pids: &[i32], grace: Duration) -> usize {
    let live: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    for p in &live {
        let _ = kill(Pid::from_raw(*p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && live.iter().any(|p| alive(*p)) {
        reap();
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in &live {
        if alive(*p) {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && live.iter().any(|p| alive(*p)) {
        reap();
        std::thread::sleep(Duration::from_millis(20));
    }
    reap();
    live.len()
}

/// Reaps our exited children (node managers and central we spawned), so they do not linger as
/// zombies while `up` keeps running.
fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Runs `cmd` in network namespace `ns`, in a new session (a Ctrl-C at the terminal reaches
/// only `up`, which then stops everything in order).
fn spawn_in_netns(cmd: &mut Command, ns: Option<&str>) -> Result<Child> {
    let nsfile = match ns {
        Some(ns) => Some(
            File::open(format!("/run/netns/{ns}"))
                .with_context(|| format!("opening network namespace {ns}"))?,
        ),
        None => None,
    };
    let fd = nsfile.as_ref().map(|f| f.as_raw_fd());
    // SAFETY: only async-signal-safe syscalls between fork and exec. `ip netns exec` is not
    // used because it remounts /sys, which hides the cgroup hierarchies the node manager needs.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let child = cmd.spawn().context("spawning a testbed process")?;
    drop(nsfile);
    Ok(child)
}

fn log_file(dir: &Path, name: &str) -> Result<File> {
    let logs = dir.join("logs");
    fs::create_dir_all(&logs)?;
    let p = logs.join(name);
    File::create(&p).with_context(|| format!("creating {}", p.display()))
}

/// Replaces (or with `lines` empty, removes) our marked block in `path`. Written in place, not
/// renamed over: in containers /etc/hosts is often a bind mount.
fn set_block(path: &str, lines: &[String]) -> Result<bool> {
    // No /etc/ssh: no OpenSSH client to serve; nothing to clean either.
    if Path::new(path).parent().is_some_and(|d| !d.is_dir()) {
        return Ok(false);
    }
    let old = match fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && lines.is_empty() => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {path}")),
    };
    let mut out = String::new();
    let mut inside = false;
    let mut had = false;
    for l in old.lines() {
        if l == BLOCK_BEGIN {
            inside = true;
            had = true;
        } else if l == BLOCK_END && inside {
            inside = false;
        } else if !inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    if !lines.is_empty() {
        out.push_str(BLOCK_BEGIN);
        out.push('\n');
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(BLOCK_END);
        out.push('\n');
    }
    if out != old {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path)
            .and_then(|mut f| f.write_all(out.as_bytes()))
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(had)
}

/// Shows progress: one updating line on a terminal, a line per change otherwise.
struct Progress {
    tty: bool,
    last: String,
}

impl Progress {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            last: String::new(),
        }
    }

    fn set(&mut self, msg: &str) {
        if msg == self.last {
            return;
        }
        self.last = msg.to_string();
        if self.tty {
            eprint!("\r\x1b[K{msg}");
        } else {
            eprintln!("{msg}");
        }
        let _ = std::io::stderr().flush();
    }

    fn done(&mut self, msg: &str) {
        if self.tty {
            eprintln!("\r\x1b[K{msg}");
        } else if msg != self.last {
            eprintln!("{msg}");
        }
        self.last.clear();
    }
}

// ---------- down ----------

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

/// Processes (other than us) whose command line mentions the testbed dir: central and node
/// managers of this testbed, whatever their pids were.
fn testbed_processes(dir: &Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let args = cmdline(pid);
            let ours = args.iter().any(|a| a.contains(&needle))
                && args.iter().any(|a| a == "node" || a == "central");
            if ours {
                out.push(pid);
            }
        }
    }
    out
}

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
    // A foreground `up` tears down itself on SIGTERM; let it, then sweep.
    if let Some(pid) = tb.as_ref().and_then(|t| t.up_pid) {
        let me = std::process::id() as i32;
        if pid != me && alive(pid) && cmdline(pid).iter().any(|a| a == "up") {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(90);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let exe = std::env::current_exe().context("finding the slicelab binary")?;
    let nodes = find_nodes(dir, tb.as_ref());
    // Node managers first (they would restart slivers), then each node's slivers and objects.
    let mut managers: Vec<i32> = tb
        .as_ref()
        .map(|t| t.nodes.iter().filter_map(|n| n.pid).collect())
        .unwrap_or_default();
    managers.retain(|p| cmdline(*p).iter().any(|a| a == "node"));
    for i in &nodes {
        let ns = netns(*i);
        if netns_exists(&ns) {
            if let Ok(out) = run("ip", &["netns", "pids", &ns]) {
                managers.extend(out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    managers.sort();
    managers.dedup();
    r.processes += terminate(&managers, Duration::from_secs(10));
    for i in &nodes {
        let ns = netns(*i);
        // Cleanup deletes the node's gateway interface and nft table: it must run in the node's
        // namespace, never in the host's. A vanished namespace is recreated for it (empty).
        if !netns_exists(&ns) {
            run("ip", &["netns", "add", &ns])?;
        }
        let state_dir = dir.join(format!("n{i}"));
        let mut c = Command::new(&exe);
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
        r.namespaces += 1;
        if state_dir.exists() {
            fs::remove_dir_all(&state_dir)
                .with_context(|| format!("removing {}", state_dir.display()))?;
        }
        r.nodes += 1;
    }
    // The host ends of the veths went with their namespaces; only the bridge is left.
    if run("ip", &["link", "show", "dev", BRIDGE]).is_ok() {
        run("ip", &["link", "del", BRIDGE])?;
        r.bridge = true;
    }
    let mut central: Vec<i32> = tb
        .as_ref()
        .and_then(|t| t.central_pid)
        .filter(|p| cmdline(*p).iter().any(|a| a == "central"))
        .into_iter()
        .collect();
    central.extend(testbed_processes(dir));
    central.sort();
    central.dedup();
    r.processes += terminate(&central, Duration::from_secs(10));
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

pub async fn down(a: DownArgs) -> Result<()> {
    require_root("down")?;
    let dir = a.dir.clone();
    let r = tokio::task::spawn_blocking(move || teardown(&dir))
        .await
        .context("teardown task")??;
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

fn require_root(what: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("`slicelab {what}` needs root (it creates network namespaces and cgroups): sudo slicelab {what}");
    }
    Ok(())
}

// ---------- up ----------

/// The invoking user (behind sudo, the one who ran sudo): uid, gid, home.
fn invoking_user() -> Option<(u32, u32, PathBuf)> {
    let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let gid = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
    Some((uid, gid, user.dir))
}

fn home() -> Option<PathBuf> {
    invoking_user()
        .map(|(_, _, h)| h)
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
}

/// The demo user's key: the invoking user's own if there is one, else one generated (once)
/// under `<dir>/keys`. Returns (public key line, private key path, generated?).
fn user_key(dir: &Path) -> Result<(String, PathBuf, bool)> {
    if let Some(h) = home() {
        for name in ["id_ed25519", "id_rsa"] {
            let private = h.join(".ssh").join(name);
            if let Ok(p) = fs::read_to_string(private.with_extension("pub")) {
                if !p.trim().is_empty() {
                    return Ok((p.trim().to_string(), private, false));
                }
            }
        }
    }
    let private = dir.join("keys").join("id_ed25519");
    if !private.exists() {
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "user@demo.slicelab.test",
                "-f",
                &private.to_string_lossy(),
            ],
        )?;
        if let Some((uid, gid, _)) = invoking_user() {
            for p in [private.clone(), private.with_extension("pub")] {
                let _ = std::os::unix::fs::chown(&p, Some(uid), Some(gid));
            }
        }
    }
    let public = fs::read_to_string(private.with_extension("pub"))
        .with_context(|| format!("reading {}.pub", private.display()))?;
    Ok((public.trim().to_string(), private, true))
}

/// The node's host key, kept across runs so known_hosts entries stay valid.
fn host_key(dir: &Path, i: u8) -> Result<(PathBuf, String)> {
    let private = dir.join("keys").join(format!("node{i}_host_ed25519_key"));
    if !private.exists() {
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &format!("node{i}"),
                "-f",
                &private.to_string_lossy(),
            ],
        )?;
    }
    let public = fs::read_to_string(private.with_extension("pub"))
        .with_context(|| format!("reading {}.pub", private.display()))?;
    // `algorithm base64` without the comment.
    let public = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    Ok((private, public))
}

fn setup_network(nodes: u8) -> Result<()> {
    let h = host_addr();
    run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    run("ip", &["addr", "add", &format!("{h}/24"), "dev", BRIDGE])?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    for i in 1..=nodes {
        let ns = netns(i);
        run("ip", &["netns", "add", &ns])?;
        run(
            "ip",
            &[
                "link", "add", &ns, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        run("ip", &["link", "set", &ns, "master", BRIDGE, "up"])?;
        let batch = format!(
            "link set lo up\naddr add {}/24 dev eth0\nlink set eth0 up\nroute add default via {h}\n",
            node_addr(i)
        );
        let mut c = Command::new("ip");
        c.args(["-n", &ns, "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().context("running ip")?;
        if let Some(mut w) = child.stdin.take() {
            w.write_all(batch.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "configuring {ns}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

struct Demo {
    admin_email: String,
    admin_password: String,
    pi_email: String,
    user_email: String,
    person_password: String,
    user_key: PathBuf,
    user_key_generated: bool,
    pi_token: String,
}

fn initscript(hostname: &str) -> String {
    format!(
        "mkdir -p /srv/www && echo \"<h1>{DEMO_SLICE} on {hostname}</h1>\" > /srv/www/index.html && exec httpd -f -p {DEMO_PORT} -h /srv/www"
    )
}

async fn login_retry(
    base: &str,
    email: &str,
    pw: &str,
    central: &mut Child,
) -> Result<(Client, String)> {
    let anon = Client::new(base, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match anon.login(email, pw).await {
            Ok(r) => return Ok((anon.with_token(r.token.clone()), r.token)),
            Err(e) => {
                if let Ok(Some(st)) = central.try_wait() {
                    bail!("central exited ({st}); see its log in the testbed dir's logs/");
                }
                if Instant::now() > deadline {
                    return Err(e).context("central did not come up within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Saves the PI's session as the invoking user's login (so `slicelab slice ...` and
/// `slicelab exec` work at once), unless that user is logged in to another central.
fn save_login(central: &str, email: &str, token: &str) -> Option<PathBuf> {
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

pub async fn up(a: UpArgs) -> Result<()> {
    require_root("up")?;
    for tool in ["ip", "nft", "ssh-keygen"] {
        if Command::new(tool).arg("-V").output().is_err()
            && Command::new(tool).arg("--help").output().is_err()
        {
            bail!("`{tool}` is not installed (sudo ./install.sh installs what slicelab needs)");
        }
    }
    let dir = a.dir.clone();
    fs::create_dir_all(dir.join("keys")).with_context(|| format!("creating {}", dir.display()))?;
    let d2 = dir.clone();
    let left = tokio::task::spawn_blocking(move || teardown(&d2))
        .await
        .context("cleanup task")??;
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
    let result = bring_up(&a, &mut tb).await;
    let (demo, ssh_target) = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("\nerror: {e:#}\nTearing down what was started...");
            let d2 = dir.clone();
            let _ = tokio::task::spawn_blocking(move || teardown(&d2)).await;
            return Err(e);
        }
    };
    let login = save_login(&tb.central_url, &demo.pi_email, &demo.pi_token);
    print_summary(
        &a,
        &tb,
        &demo,
        &ssh_target,
        login.as_deref(),
        started.elapsed(),
    );
    if a.detach {
        return Ok(());
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing a SIGTERM handler")?;
    let mut reaper = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = reaper.tick() => reap(),
        }
    }
    eprintln!("\nStopping the testbed...");
    let r = tokio::task::spawn_blocking(move || teardown(&dir))
        .await
        .context("teardown task")??;
    eprintln!(
        "Testbed down: stopped {} processes, removed {} nodes.",
        r.processes, r.nodes
    );
    Ok(())
}

async fn bring_up(a: &UpArgs, tb: &mut Testbed) -> Result<(Demo, String)> {
    let dir = &a.dir;
    let exe = std::env::current_exe().context("finding the slicelab binary")?;
    let mut progress = Progress::new();
    progress.set("network: bridge and namespaces...");
    let n = a.nodes;
    tokio::task::spawn_blocking(move || setup_network(n))
        .await
        .context("network task")??;

    progress.set("central: starting...");
    let admin_email = format!("admin@{DOMAIN}");
    let admin_password = random_password()?;
    let listen = format!("{}:{}", host_addr(), a.port);
    let url = format!("http://{listen}");
    let mut c = Command::new(&exe);
    c.args([
        "central",
        "--listen",
        &listen,
        "--admin-email",
        &admin_email,
    ])
    .arg("--db")
    .arg(format!("sqlite://{}", dir.join("central.db").display()))
    .env("SLICELAB_ADMIN_PASSWORD", &admin_password)
    .env_remove("SLICELAB_DB")
    .stdin(Stdio::null())
    .stdout(log_file(dir, "central.log")?)
    .stderr(log_file(dir, "central.err.log")?);
    let mut central = spawn_in_netns(&mut c, None)?;
    tb.central_pid = Some(central.id() as i32);
    tb.central_url = url.clone();
    tb.save(dir)?;
    let (admin, _) = login_retry(&url, &admin_email, &admin_password, &mut central).await?;

    progress.set("central: demo sites, persons, nodes and slice...");
    for k in 0..a.sites {
        let login_base = site_name(k);
        admin
            .create_site(&SiteCreate {
                name: if k == 0 {
                    "Demo University".into()
                } else {
                    format!("Demo Site {}", k + 1)
                },
                login_base,
                url: String::new(),
                max_slices: 10,
                latitude: None,
                longitude: None,
            })
            .await
            .context("creating the demo sites")?;
    }
    let person_password = random_password()?;
    let pi_email = format!("pi@demo.{DOMAIN}");
    let user_email = format!("user@demo.{DOMAIN}");
    for (email, first, role) in [
        (&pi_email, "Pat", Role::Pi),
        (&user_email, "Uma", Role::User),
    ] {
        admin
            .create_person(&PersonCreate {
                email: email.clone(),
                first_name: first.into(),
                last_name: "Demo".into(),
                password: Some(person_password.clone()),
                roles: vec![role],
                sites: vec!["demo".into()],
            })
            .await
            .with_context(|| format!("creating {email}"))?;
    }
    let (public, private, generated) = user_key(dir)?;
    admin
        .add_key(&user_email, &KeyCreate { key: public })
        .await
        .context("adding the demo user's SSH key")?;
    tb.user_key = Some(private.clone());
    let (pi, pi_token) = login_retry(&url, &pi_email, &person_password, &mut central).await?;
    pi.create_slice(&SliceCreate {
        name: DEMO_SLICE.into(),
        description: "The demo slice of `slicelab up`: a web page on every node".into(),
        url: String::new(),
    })
    .await
    .context("creating the demo slice")?;
    pi.add_slice_persons(DEMO_SLICE, &[pi_email.clone(), user_email.clone()])
        .await
        .context("adding persons to the demo slice")?;
    pi.set_slice_tag(
        DEMO_SLICE,
        TagName::Ports,
        &SliceTagSet {
            value: format!("{DEMO_PORT}/tcp"),
            node: None,
        },
    )
    .await
    .context("setting the demo slice's ports")?;

    let mut hosts = vec![format!("{} central.{DOMAIN}", host_addr())];
    let mut known = Vec::new();
    let mut hostnames = Vec::new();
    for i in 1..=a.nodes {
        let site = site_name((i - 1) % a.sites);
        let hostname = format!("node{i}.{site}.{DOMAIN}");
        let nk = admin
            .create_node(&NodeCreate {
                hostname: hostname.clone(),
                site: site.clone(),
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
                value: initscript(&hostname),
                node: Some(hostname.clone()),
            },
        )
        .await
        .context("setting the demo slice's initscript")?;
        let state_dir = dir.join(format!("n{i}"));
        fs::create_dir_all(&state_dir)?;
        let key_file = state_dir.join("node.key");
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_file)
            .and_then(|mut f| f.write_all(nk.node_key.as_bytes()))
            .with_context(|| format!("writing {}", key_file.display()))?;
        let (host_key_path, host_pub) = host_key(dir, i)?;
        let addr = node_addr(i);
        hosts.push(format!("{addr} {hostname} node{i}"));
        known.push(format!("{hostname},{addr} {host_pub}"));
        let mut c = Command::new(&exe);
        c.args(["node", "--central", &url, "--ssh-listen", "0.0.0.0:22"])
            .arg("--key-file")
            .arg(&key_file)
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("--ssh-host-key")
            .arg(&host_key_path)
            .args(["--cgroup-parent", &format!("{CGROUP_PREFIX}{i}")])
            .env_remove("SLICELAB_NODE_KEY")
            .env_remove("SLICELAB_CENTRAL")
            .stdin(Stdio::null())
            .stdout(log_file(dir, &format!("node{i}.log"))?)
            .stderr(log_file(dir, &format!("node{i}.err.log"))?);
        let child = spawn_in_netns(&mut c, Some(&netns(i)))?;
        tb.nodes.push(TestbedNode {
            index: i,
            hostname: hostname.clone(),
            address: addr,
            netns: netns(i),
            pid: Some(child.id() as i32),
        });
        tb.save(dir)?;
        hostnames.push(hostname);
        progress.set(&format!("nodes: {i}/{} started", a.nodes));
    }
    set_block(HOSTS, &hosts)?;
    set_block(KNOWN_HOSTS, &known)?;
    pi.add_slice_nodes(DEMO_SLICE, &hostnames)
        .await
        .context("adding the nodes to the demo slice")?;

    // Up means: every node runs its sliver of the demo slice (and so its SSH gateway is up).
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
            break;
        }
        if let Some(f) = slivers.iter().find(|s| s.state == SliverState::Failed) {
            bail!("the demo sliver on {} failed: {}", f.node, f.message);
        }
        if Instant::now() > deadline {
            bail!(
                "only {running} of {} nodes run the demo slice after 90 s (logs in {})",
                a.nodes,
                dir.join("logs").display()
            );
        }
        reap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    progress.done(&format!("nodes: {0}/{0} running the demo slice", a.nodes));
    let ssh_target = format!(
        "{DEMO_SLICE}@{}",
        hostnames.first().cloned().unwrap_or_default()
    );
    Ok((
        Demo {
            admin_email,
            admin_password,
            pi_email,
            user_email,
            person_password,
            user_key: private,
            user_key_generated: generated,
            pi_token,
        },
        ssh_target,
    ))
}

fn print_summary(
    a: &UpArgs,
    tb: &Testbed,
    d: &Demo,
    ssh_target: &str,
    login: Option<&Path>,
    took: Duration,
) {
    let mut s = format!(
        "\nslicelab testbed is up: {} nodes at {} site(s), in {:.0?}.\n\n",
        a.nodes, a.sites, took
    );
    s.push_str(&format!(
        "  central   {}   (API under /api/v1)\n",
        tb.central_url
    ));
    s.push_str(&format!(
        "  admin     {}  password {}\n",
        d.admin_email, d.admin_password
    ));
    s.push_str(&format!(
        "  pi        {}  password {}\n",
        d.pi_email, d.person_password
    ));
    s.push_str(&format!(
        "  user      {}  password {}\n",
        d.user_email, d.person_password
    ));
    s.push_str(&format!(
        "  ssh key   {}{}\n\n",
        d.user_key.display(),
        if d.user_key_generated {
            "  (generated; the demo user's key)"
        } else {
            "  (yours; the demo user's key)"
        }
    ));
    let w = tb.nodes.iter().map(|n| n.hostname.len()).max().unwrap_or(4);
    s.push_str(&format!(
        "  {:w$}  {:11}  {}\n",
        "NODE", "ADDRESS", "DEMO SERVICE"
    ));
    for n in &tb.nodes {
        s.push_str(&format!(
            "  {:w$}  {:11}  http://{}:{DEMO_PORT}/\n",
            n.hostname,
            n.address.to_string(),
            n.address
        ));
    }
    let ident = if d.user_key_generated {
        format!("-i {} ", d.user_key.display())
    } else {
        String::new()
    };
    s.push_str(&format!("\n  Enter a sliver:   ssh {ident}{ssh_target}\n"));
    s.push_str(&format!(
        "  Run everywhere:   slicelab exec {DEMO_SLICE} -- uname -n\n"
    ));
    match login {
        Some(p) => s.push_str(&format!(
            "  Logged in as {} (saved in {}): try `slicelab slice list`.\n",
            d.pi_email,
            p.display()
        )),
        None => s.push_str(&format!(
            "  Log in with:      slicelab login --central {} --email {}\n",
            tb.central_url, d.pi_email
        )),
    }
    if a.detach {
        s.push_str("  Stop it with:     sudo slicelab down\n");
    } else {
        s.push_str("  Stop it with:     Ctrl-C here (or sudo slicelab down)\n");
    }
    s.push_str(&format!(
        "  Logs:             {}\n",
        a.dir.join("logs").display()
    ));
    print!("{s}");
    let _ = std::io::stdout().flush();
}

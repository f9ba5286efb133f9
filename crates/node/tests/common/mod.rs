//! Fixture for root integration tests: a node instance with its own gateway interface, subnet, nft table,
//! cgroup parent and state dir, torn down (via `cleanup`) on drop even when a test fails, plus
//! counters of every kind of kernel object a sliver creates, for leak checks.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use slicelab_model::{Resources, SliverSpec};
use slicelab_node::{LinuxRuntime, NodeNames, Runtime, RuntimeConfig};

/// Root tests share the machine's global tables; one at a time keeps the counts exact.
static SERIAL: Mutex<()> = Mutex::new(());

pub const INIT_EXE: &str = env!("CARGO_BIN_EXE_slicelab-sliver-init");

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Returns None (and says why) when the test cannot run here.
pub fn root_or_skip(test: &str) -> Option<()> {
    if !is_root() {
        eprintln!("SKIPPED {test}: needs root (namespaces, cgroups, nftables)");
        return None;
    }
    for tool in ["ip", "nft", "nsenter"] {
        if Command::new(tool).arg("-V").output().is_err()
            && Command::new(tool).arg("--version").output().is_err()
        {
            eprintln!("SKIPPED {test}: `{tool}` is not installed");
            return None;
        }
    }
    Some(())
}

pub struct TestNode {
    pub cfg: RuntimeConfig,
    pub rt: Option<LinuxRuntime>,
    pub dir: tempfile::TempDir,
    pub baseline: Counts,
    _serial: MutexGuard<'static, ()>,
}

impl TestNode {
    pub fn new(idx: u8) -> TestNode {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        // Orphaned sliver inits come back to us, so none lingers as a zombie of a PID 1 that
        // does not reap.
        // SAFETY: plain prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let names = NodeNames {
            gateway_if: format!("sltest{idx}"),
            subnet: Ipv4Addr::new(10, 79, idx, 0),
            nft_table: format!("slicelab_test{idx}"),
            cgroup_parent: format!("slicelab-test{idx}"),
        };
        // A crashed earlier run may have left this instance's objects.
        let _ = slicelab_node::cleanup(Path::new("/nonexistent"), &names, false);
        settle_veths();
        let baseline = Counts::take(&names);
        let dir = tempfile::Builder::new()
            .prefix("slicelab-node-test")
            .tempdir()
            .expect("tempdir");
        let cfg = RuntimeConfig {
            names,
            init_exe: PathBuf::from(INIT_EXE),
            ..RuntimeConfig::new(dir.path())
        };
        let rt = LinuxRuntime::new(cfg.clone()).expect("runtime");
        TestNode {
            cfg,
            rt: Some(rt),
            dir,
            baseline,
            _serial: serial,
        }
    }

    pub fn rt(&self) -> &LinuxRuntime {
        self.rt.as_ref().expect("runtime open")
    }

    pub fn names(&self) -> &NodeNames {
        &self.cfg.names
    }

    pub fn start(&self, spec: &SliverSpec) {
        self.rt().create(spec).expect("create");
        self.rt().start(&spec.slice_name).expect("start");
    }

    /// Runs `sh -c script` in the sliver.
    pub fn sh(&self, slice: &str, script: &str) -> Output {
        self.rt()
            .exec(slice, &["/bin/sh".into(), "-c".into(), script.into()])
            .expect("exec")
    }

    pub fn sh_ok(&self, slice: &str, script: &str) -> String {
        let o = self.sh(slice, script);
        assert!(
            o.status.success(),
            "`{script}` in {slice} failed: {}\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn console(&self, slice: &str) -> String {
        fs::read_to_string(
            self.dir
                .path()
                .join("slivers")
                .join(slice)
                .join("console.log"),
        )
        .unwrap_or_default()
    }

    pub fn wait_console(&self, slice: &str, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.console(slice).contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{slice}: {needle:?} not in console within {timeout:?}:\n{}",
            self.console(slice)
        );
    }

    pub fn address(&self, slice: &str) -> Ipv4Addr {
        self.rt()
            .list()
            .expect("list")
            .into_iter()
            .find(|o| o.slice_name == slice)
            .and_then(|o| o.address)
            .expect("address")
    }

    /// The node's kernel objects, without a sliver built ahead of the next start (`warm`): it
    /// is ended first (which must leave nothing behind either), and made again after the next
    /// start.
    pub fn counts(&self) -> Counts {
        if let Some(rt) = &self.rt {
            rt.set_warm_slivers(false);
            rt.set_warm_slivers(true);
        }
        Counts::take(self.names())
    }

    /// Everything the test created is gone: same counts as before the node existed (the gateway interface
    /// and nft table are the node's own and were removed by cleanup).
    pub fn assert_no_leaks_after_cleanup(mut self) {
        let names = self.cfg.names.clone();
        self.rt = None;
        slicelab_node::cleanup(self.dir.path(), &names, true).expect("cleanup");
        let after = Counts::take(&names);
        assert_eq!(self.baseline, after, "kernel objects leaked");
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = slicelab_node::cleanup(self.dir.path(), &self.cfg.names, true);
    }
}

pub fn spec(name: &str, initscript: Option<&str>) -> SliverSpec {
    SliverSpec {
        slice_id: 1,
        slice_name: name.into(),
        expires: i64::MAX,
        run: true,
        keys: vec![],
        resources: Resources {
            initscript: initscript.map(String::from),
            ..Default::default()
        },
        image_digest: None,
    }
}

/// Waits (bounded) until no veth of an earlier test (`sl…` slivers, `slt-…` test uplinks) is
/// still being torn down: the kernel deletes a dead namespace's veths asynchronously, and a
/// baseline taken meanwhile would count one that is about to vanish.
fn settle_veths() {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "type", "veth"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let stray = out
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .any(|name| name.starts_with("sl"));
        if !stray {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kernel objects of the kinds a sliver creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub mounts: usize,
    pub netns: usize,
    pub veths: usize,
    pub nft_rules: usize,
    pub cgroups: usize,
    pub processes: usize,
}

impl Counts {
    pub fn take(names: &NodeNames) -> Counts {
        reap_zombies();
        // Only mounts a node instance of these tests can make (under its state dir, e.g. disk
        // quota images) or test namespaces: the machine is shared with other work that mounts.
        let mounts = fs::read_to_string("/proc/self/mountinfo")
            .map(|s| {
                s.lines()
                    .filter(|l| l.contains("slicelab-node-test") || l.contains("/run/netns/slt-"))
                    .count()
            })
            .unwrap_or(0);
        let mut netns = BTreeSet::new();
        if let Ok(rd) = fs::read_dir("/proc") {
            for e in rd.flatten() {
                if let Ok(l) = fs::read_link(e.path().join("ns/net")) {
                    netns.insert(l);
                }
            }
        }
        let veths = Command::new("ip")
            .args(["-o", "link", "show", "type", "veth"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(0);
        let nft_rules = slicelab_node::net::count_rules(names);
        let (mut cgroups, mut processes) = (0, 0);
        if let Ok(cg) = slicelab_node::cgroup::Cgroups::detect(&names.cgroup_parent) {
            for s in cg.list() {
                cgroups += cg.dirs(&s).iter().filter(|d| d.exists()).count();
                processes += cg.pids(&s).len();
            }
        }
        Counts {
            mounts,
            netns: netns.len(),
            veths,
            nft_rules,
            cgroups,
            processes,
        }
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Reaps zombie children (sliver inits reparented to this test process as subreaper).
pub fn reap_zombies() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// A network namespace standing for "the uplink side": a veth from the host (`HOST/24`) to the
/// namespace (`PEER/24`). Deleted on drop.
pub struct UplinkNs {
    pub name: String,
    pub host: Ipv4Addr,
    pub peer: Ipv4Addr,
}

impl UplinkNs {
    pub fn new(idx: u8) -> UplinkNs {
        let name = format!("slt-up{idx}");
        let host = Ipv4Addr::new(10, 80, idx, 1);
        let peer = Ipv4Addr::new(10, 80, idx, 2);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let veth = format!("slt-up{idx}h");
        let script = format!(
            "set -e\nip netns add {name}\nip link add {veth} type veth peer name eth0 netns {name}\n\
             ip addr add {host}/24 dev {veth}\nip link set {veth} up\n\
             ip -n {name} addr add {peer}/24 dev eth0\nip -n {name} link set eth0 up\nip -n {name} link set lo up\n"
        );
        let o = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh");
        let ns = UplinkNs { name, host, peer };
        assert!(
            o.status.success(),
            "uplink setup: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        ns
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = fs::File::open(&path).expect("open netns");
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }
}

impl Drop for UplinkNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        // The kernel removes the namespace's veth asynchronously; wait for it, so the next test
        // (which counts veths for its leak check) starts from a settled machine.
        let veth = format!("{}h", self.name);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && Command::new("ip")
                .args(["link", "show", "dev", &veth])
                .output()
                .is_ok_and(|o| o.status.success())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The admin of the centrals these tests start.
pub const ADMIN_EMAIL: &str = "admin@node.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A real central on `listen` over the SQLite file in `db`; retries while the port of a previous
/// incarnation (a test restarting central) is not free yet.
pub async fn start_central(db: &Path, listen: std::net::SocketAddr) -> slicelab_central::Running {
    let cfg = || slicelab_central::Config {
        db_url: format!("sqlite://{}/central.db", db.display()),
        listen,
        admin_email: ADMIN_EMAIL.into(),
        admin_password: Some(ADMIN_PASSWORD.into()),
        tls: None,
    };
    for _ in 0..50 {
        if let Ok(c) = slicelab_central::start(cfg()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slicelab_central::start(cfg()).await.expect("central")
}

/// A client logged in as that admin.
pub async fn admin_client(base: &str) -> slicelab_client::Client {
    let anon = slicelab_client::Client::new(base, None);
    let r: slicelab_model::objects::LoginResponse = anon
        .post(
            "/auth/login",
            &serde_json::json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await
        .expect("login");
    anon.with_token(r.token)
}

pub fn unix_now() -> i64 {
    slicelab_model::time::now()
}

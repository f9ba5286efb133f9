//! Fixture for root integration tests: a node instance with its own bridge, subnet, nft table,
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
        if Command::new(tool).arg("-V").output().is_err() && Command::new(tool).arg("--version").output().is_err() {
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
        let names = NodeNames {
            bridge: format!("sltest{idx}"),
            subnet: Ipv4Addr::new(10, 79, idx, 0),
            nft_table: format!("slicelab_test{idx}"),
            cgroup_parent: format!("slicelab-test{idx}"),
        };
        // A crashed earlier run may have left this instance's objects.
        let _ = slicelab_node::cleanup(Path::new("/nonexistent"), &names, false);
        let baseline = Counts::take(&names);
        let dir = tempfile::Builder::new().prefix("slicelab-node-test").tempdir().expect("tempdir");
        let cfg = RuntimeConfig {
            state_dir: dir.path().to_path_buf(),
            names,
            init_exe: PathBuf::from(INIT_EXE),
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
        fs::read_to_string(self.dir.path().join("slivers").join(slice).join("console.log")).unwrap_or_default()
    }

    pub fn wait_console(&self, slice: &str, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.console(slice).contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{slice}: {needle:?} not in console within {timeout:?}:\n{}", self.console(slice));
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

    pub fn counts(&self) -> Counts {
        Counts::take(self.names())
    }

    /// Everything the test created is gone: same counts as before the node existed (the bridge
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
        let mounts = fs::read_to_string("/proc/self/mountinfo").map(|s| s.lines().count()).unwrap_or(0);
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

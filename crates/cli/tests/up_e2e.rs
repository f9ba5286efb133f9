//! The local testbed end to end, as a user meets it: `slicelab up --nodes 4`, the real OpenSSH
//! client logs into slivers on two nodes, `slicelab exec` runs everywhere, `slicelab down`
//! leaves nothing behind (namespaces, veths, bridge, mounts, cgroups, nft tables, processes,
//! /etc/hosts lines). Root only; says SKIPPED otherwise.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_slicelab");

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Everything the testbed could leave behind, by its names.
#[derive(Debug, PartialEq, Eq)]
struct Leftovers {
    netns: Vec<String>,
    links: Vec<String>,
    mounts: Vec<String>,
    cgroups: Vec<String>,
    processes: Vec<String>,
    etc_lines: usize,
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn lines_with(s: &str, needles: &[&str]) -> Vec<String> {
    s.lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .map(String::from)
        .collect()
}

impl Leftovers {
    fn take(dir: &Path) -> Leftovers {
        let d = dir.to_string_lossy().into_owned();
        let mut cgroups = Vec::new();
        for base in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            for e in fs::read_dir(base.path()).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with("slicelab-up-") {
                    cgroups.push(e.path().display().to_string());
                }
            }
            if base
                .file_name()
                .to_string_lossy()
                .starts_with("slicelab-up-")
            {
                cgroups.push(base.path().display().to_string());
            }
        }
        let mut processes = Vec::new();
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            if let Ok(c) = fs::read(e.path().join("cmdline")) {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                if c.contains(&d) && !c.contains("cargo") {
                    processes.push(c);
                }
            }
        }
        let etc = fs::read_to_string("/etc/hosts").unwrap_or_default()
            + &fs::read_to_string("/etc/ssh/ssh_known_hosts").unwrap_or_default();
        Leftovers {
            netns: lines_with(&sh("ip netns list"), &["slup"]),
            links: lines_with(&sh("ip -o link show"), &["slup"]),
            mounts: lines_with(
                &fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
                &["slup", &d],
            ),
            cgroups,
            processes,
            etc_lines: lines_with(&etc, &["slicelab"]).len(),
        }
    }

    fn none() -> Leftovers {
        Leftovers {
            netns: vec![],
            links: vec![],
            mounts: vec![],
            cgroups: vec![],
            processes: vec![],
            etc_lines: 0,
        }
    }
}

fn nft_tables() -> BTreeSet<String> {
    sh("nft list tables").lines().map(String::from).collect()
}

/// Held for the whole test by every test that runs `slicelab up` (see `web_e2e.rs`): they use
/// the same bridge and namespace names, so they must not run at the same time.
const UP_LOCK: &str = "/run/slicelab-up-test.lock";

fn up_lock() -> nix::fcntl::Flock<fs::File> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(UP_LOCK)
        .expect("opening the testbed test lock");
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("locking the testbed test lock")
}

/// Runs `slicelab down` on drop, so a failing test leaves no testbed behind.
struct Testbed {
    dir: tempfile::TempDir,
    home: PathBuf,
}

impl Testbed {
    fn cmd(&self) -> Command {
        let mut c = Command::new(EXE);
        c.env("SLICELAB_UP_DIR", self.dir.path())
            .env("SLICELAB_CONFIG", self.home.join("config.toml"))
            // No personal key of whoever runs the test: the testbed generates one.
            .env("HOME", &self.home)
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .env_remove("SUDO_USER")
            .env_remove("SLICELAB_TOKEN")
            .env_remove("SLICELAB_CENTRAL");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("running slicelab")
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

fn ssh(key: &Path, target: &str, cmd: &str) -> Output {
    Command::new("/usr/bin/ssh")
        .arg("-i")
        .arg(key)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            // Host keys must come from the testbed's block in /etc/ssh/ssh_known_hosts.
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            target,
            cmd,
        ])
        .output()
        .expect("running /usr/bin/ssh")
}

#[test]
fn up_ssh_exec_down_leaves_nothing() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED up_ssh_exec_down_leaves_nothing: needs root (network namespaces, cgroups)"
        );
        return;
    }
    for tool in ["/usr/bin/ssh", "/usr/bin/ssh-keygen"] {
        if !Path::new(tool).exists() {
            eprintln!("SKIPPED up_ssh_exec_down_leaves_nothing: {tool} is not installed");
            return;
        }
    }
    let _lock = up_lock();
    if !Leftovers::take(Path::new("/nonexistent-slicelab"))
        .netns
        .is_empty()
    {
        eprintln!(
            "SKIPPED up_ssh_exec_down_leaves_nothing: a `slicelab up` testbed is running here"
        );
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("slicelab-up-test")
        .tempdir()
        .expect("tempdir");
    let home = dir.path().join("home");
    fs::create_dir_all(&home).expect("home");
    let tables_before = nft_tables();
    let tb = Testbed { dir, home };
    let dirp = tb.dir.path().to_path_buf();

    let t0 = std::time::Instant::now();
    let o = tb.run(&["up", "--nodes", "4", "--detach", "--port", "18080"]);
    assert!(o.status.success(), "up: {}", text(&o));
    eprintln!("up --nodes 4 took {:?}", t0.elapsed());
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(dirp.join("testbed.json")).expect("testbed.json"))
            .expect("testbed.json");
    let key = PathBuf::from(state["user_key"].as_str().expect("user_key"));
    assert!(key.starts_with(&dirp), "the key was generated: {key:?}");
    let hosts: Vec<String> = state["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["hostname"].as_str().map(String::from))
        .collect();
    assert_eq!(hosts.len(), 4);

    // The real OpenSSH client, by hostname (from /etc/hosts), into slivers on two nodes.
    for h in [&hosts[0], &hosts[2]] {
        let o = ssh(&key, &format!("demo_slice@{h}"), "hostname");
        assert!(o.status.success(), "ssh {h}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "demo_slice");
    }

    // exec: one line per node, each sliver answering with its UTS name (the slice's).
    let o = tb.run(&["exec", "demo_slice", "--", "uname", "-n"]);
    assert!(o.status.success(), "exec: {}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{}", text(&o));
    let mut seen = BTreeSet::new();
    for l in &lines {
        let (node, answer) = l.split_once(" | ").expect("NODE | OUTPUT");
        assert_eq!(answer, "demo_slice", "{l}");
        seen.insert(node.trim().to_string());
    }
    assert_eq!(seen, hosts.iter().cloned().collect(), "{out}");
    // A failing command fails exec.
    let o = tb.run(&["exec", "demo_slice", "--", "false"]);
    assert!(!o.status.success(), "exec false: {}", text(&o));

    let o = tb.run(&["down"]);
    assert!(o.status.success(), "down: {}", text(&o));
    assert_eq!(Leftovers::take(&dirp), Leftovers::none());
    let new_tables: Vec<String> = nft_tables()
        .difference(&tables_before)
        // Tables of other test binaries' node instances, not ours.
        .filter(|t| !t.contains("test"))
        .cloned()
        .collect();
    assert!(new_tables.is_empty(), "nft tables left: {new_tables:?}");
    eprintln!("up → ssh → exec → down took {:?}", t0.elapsed());
}

//! Fixture shared by the tests that run a real `slicelab up` testbed (`up_e2e.rs`, `web_e2e.rs`):
//! a lock that keeps them apart (they use the same bridge and namespace names), the testbed itself
//! with `slicelab down` on drop, and a census of everything a testbed could leave behind.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const EXE: &str = env!("CARGO_BIN_EXE_slicelab");

/// Held for the whole test by every test that runs `slicelab up`.
const UP_LOCK: &str = "/run/slicelab-up-test.lock";

pub fn up_lock() -> nix::fcntl::Flock<fs::File> {
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

/// The real OpenSSH client as a user runs it against the testbed: `key` only, host keys from the
/// testbed's block in /etc/ssh/ssh_known_hosts, no prompts, no stdin.
pub fn ssh(key: &Path, target: &str, cmd: &str) -> Output {
    Command::new("/usr/bin/ssh")
        .arg("-i")
        .arg(key)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            target,
            cmd,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("running /usr/bin/ssh")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn sh(cmd: &str) -> String {
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

/// Everything a testbed could leave behind, by its names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub netns: Vec<String>,
    pub links: Vec<String>,
    pub mounts: Vec<String>,
    pub cgroups: Vec<String>,
    pub processes: Vec<String>,
    pub etc_lines: usize,
}

impl Leftovers {
    /// `dir`: the testbed's directory (its processes and mounts name it).
    pub fn take(dir: &Path) -> Leftovers {
        let d = dir.to_string_lossy().into_owned();
        let mut cgroups = Vec::new();
        for base in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            if base
                .file_name()
                .to_string_lossy()
                .starts_with("slicelab-up-")
            {
                cgroups.push(base.path().display().to_string());
            }
            for e in fs::read_dir(base.path()).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with("slicelab-up-") {
                    cgroups.push(e.path().display().to_string());
                }
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

    /// Whether some other `slicelab up` testbed runs on this machine now.
    pub fn other_testbed_running() -> bool {
        !Leftovers::take(Path::new("/nonexistent-slicelab"))
            .netns
            .is_empty()
    }
}

/// A testbed directory and HOME of its own; runs `slicelab down` on drop, so a failing test
/// leaves no testbed behind.
pub struct Testbed {
    pub dir: tempfile::TempDir,
    home: PathBuf,
}

impl Testbed {
    pub fn new(prefix: &str) -> Testbed {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("tempdir");
        let home = dir.path().join("home");
        fs::create_dir_all(&home).expect("home");
        Testbed { dir, home }
    }

    /// `slicelab` with this testbed's environment (no stdin).
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(EXE);
        c.env("SLICELAB_UP_DIR", self.dir.path())
            .env("SLICELAB_CONFIG", self.home.join("config.toml"))
            // No personal key of whoever runs the test: the testbed generates one.
            .env("HOME", &self.home)
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .env_remove("SUDO_USER")
            .env_remove("SLICELAB_TOKEN")
            .env_remove("SLICELAB_CENTRAL")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("running slicelab")
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

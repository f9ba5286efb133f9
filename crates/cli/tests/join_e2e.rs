//! A machine joins as a node over TLS with a join token, as an operator would do it: `slicelab
//! central` (its own CA), `slicelab login --ca-fingerprint`, `slicelab node add` printing the
//! command, that command run with `--no-start`, then the node manager started from the written
//! node.env; it reports to central over HTTPS. A reused token, an expired token and a wrong CA
//! are refused (the last naming the fingerprint); plain HTTP to a non-loopback address is refused
//! by the CLI and the node manager before anything is sent. Root: the node manager runs for real
//! (with its own interface, nft table and cgroup names), and is cleaned up after.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod central_process;

const PASSWORD: &str = "join-test-password";
const EXE: &str = env!("CARGO_BIN_EXE_slicelab");
/// This test's node manager names (none of a testbed's or another test's).
const NAMES: [&str; 8] = [
    "--gateway-if",
    "sljoin0",
    "--nft-table",
    "slicelab_join",
    "--cgroup-parent",
    "slicelab_join",
    "--subnet",
    "10.79.3.0",
];

struct Central {
    child: Child,
    url: String,
    fingerprint: String,
}

impl Drop for Central {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_central(dir: &Path) -> Central {
    let c = central_process::spawn(
        Command::new(EXE)
            .args(["central", "--listen", "127.0.0.1:0"])
            .arg("--db")
            .arg(format!("sqlite://{}", dir.join("central.db").display()))
            .env("SLICELAB_ADMIN_PASSWORD", PASSWORD)
            .env_remove("SLICELAB_DB")
            .env_remove("SLICELAB_TLS_DIR")
            .stderr(Stdio::null()),
    );
    Central {
        child: c.child,
        url: c.url,
        fingerprint: c.fingerprint,
    }
}

/// Runs the CLI with the test's config file; stdin as given.
fn cli(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut c = Command::new(EXE)
        .args(args)
        .env("SLICELAB_CONFIG", dir.join("config.toml"))
        .env_remove("SLICELAB_CENTRAL")
        .env_remove("SLICELAB_TOKEN")
        .env_remove("SLICELAB_CA")
        .env_remove("SLICELAB_CA_FINGERPRINT")
        .env_remove("SLICELAB_ALLOW_PLAIN_HTTP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn slicelab");
    let _ = c.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    c.wait_with_output().expect("slicelab runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `slicelab node join …` line `node add` printed, as arguments.
fn join_args(o: &Output) -> Vec<String> {
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("slicelab node join "))
        .unwrap_or_else(|| panic!("no join command printed: {}", text(o)));
    line.split_whitespace().skip(1).map(String::from).collect()
}

fn run_join(dir: &Path, args: &[String], extra: &[&str]) -> Output {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(extra);
    cli(dir, &all, "")
}

#[test]
fn a_node_joins_over_tls_with_a_single_use_token() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var("CI").is_err(), "CI runs this as root");
        eprintln!("SKIPPED a_node_joins_over_tls_with_a_single_use_token: needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let c = start_central(dir);

    // Without a CA to trust, login names the fingerprint central presents and saves nothing.
    let o = cli(
        dir,
        &[
            "login",
            "--central",
            &c.url,
            "--email",
            "admin@localhost",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        !o.status.success(),
        "an unknown CA must not be trusted silently"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&c.fingerprint),
        "{}",
        text(&o)
    );
    assert!(!dir.join("config.toml").exists(), "nothing saved");

    // An operator logs in, pinning the CA central printed, and adds a site and a node.
    let o = cli(
        dir,
        &[
            "login",
            "--central",
            &c.url,
            "--email",
            "admin@localhost",
            "--password-stdin",
            "--ca-fingerprint",
            &c.fingerprint,
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(o.status.success(), "login: {}", text(&o));
    let o = cli(dir, &["site", "add", "joinlab", "--name", "Join Lab"], "");
    assert!(o.status.success(), "site add: {}", text(&o));
    let o = cli(
        dir,
        &["node", "add", "n1.join.test", "--site", "joinlab"],
        "",
    );
    assert!(o.status.success(), "node add: {}", text(&o));
    let join = join_args(&o);
    assert!(
        join.iter().any(|a| a == &c.fingerprint),
        "the command carries the CA fingerprint: {join:?}"
    );

    // A wrong CA: refused before the token is spent, naming both fingerprints.
    let wrong = format!("sha256:{}", "00".repeat(32));
    let mut bad = join.clone();
    if let Some(i) = bad.iter().position(|a| a == &c.fingerprint) {
        bad[i] = wrong.clone();
    }
    let etc = dir.join("etc");
    let state = dir.join("state");
    let local = [
        "--config-dir",
        etc.to_str().expect("utf-8"),
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--no-start",
    ];
    let o = run_join(dir, &bad, &local);
    assert!(
        !o.status.success(),
        "a wrong CA must be refused: {}",
        text(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&wrong) && err.contains(&c.fingerprint),
        "{err}"
    );
    assert!(!etc.join("node.key").exists(), "nothing written");

    // The right command joins (and writes the configuration) ...
    let o = run_join(dir, &join, &local);
    assert!(o.status.success(), "join: {}", text(&o));
    let env = std::fs::read_to_string(etc.join("node.env")).expect("node.env");
    assert!(
        env.contains(&format!("SLICELAB_CA_FINGERPRINT={}", c.fingerprint)),
        "{env}"
    );
    // ... once.
    let o = run_join(dir, &join, &local);
    assert!(!o.status.success(), "a reused token must be refused");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already used"),
        "{}",
        text(&o)
    );

    // An expired token is refused.
    let o = cli(
        dir,
        &["node", "join-token", "n1.join.test", "--ttl", "1"],
        "",
    );
    assert!(o.status.success(), "join-token: {}", text(&o));
    let expiring = join_args(&o);
    std::thread::sleep(Duration::from_millis(2100));
    let other = dir.join("etc2");
    let o = run_join(
        dir,
        &expiring,
        &["--config-dir", other.to_str().expect("utf-8"), "--no-start"],
    );
    assert!(!o.status.success(), "an expired token must be refused");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("expired"),
        "{}",
        text(&o)
    );

    // The node manager, started from node.env, talks to central over HTTPS.
    let mut node = Command::new(EXE);
    node.arg("node").args(NAMES);
    for line in env.lines().filter(|l| !l.starts_with('#')) {
        if let Some((k, v)) = line.split_once('=') {
            node.env(k, v);
        }
    }
    let mut node = node
        .env_remove("SLICELAB_NODE_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node manager starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let up = loop {
        let o = cli(dir, &["node", "show", "n1.join.test", "-o", "json"], "");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        if v["last_contact"].as_i64().is_some_and(|t| t > 0) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(node.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = node.wait();
    let mut cleanup = vec![
        "node",
        "cleanup",
        "--state-dir",
        state.to_str().expect("utf-8"),
    ];
    cleanup.extend(NAMES);
    let o = cli(dir, &cleanup, "");
    assert!(o.status.success(), "cleanup: {}", text(&o));
    assert!(up, "the joined node manager reached central over TLS");

    // `node doctor` on the joined machine: the kernel checks and central answering its key.
    let o = cli(
        dir,
        &[
            "node",
            "doctor",
            "--config-dir",
            etc.to_str().expect("utf-8"),
            "--state-dir",
            state.to_str().expect("utf-8"),
            "-o",
            "json",
        ],
        "",
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert!(
        v["checks"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["name"] == "central" && c["ok"] == true)),
        "doctor: {}",
        text(&o)
    );

    // Plain HTTP to a non-loopback address: refused by login and by the node manager, before
    // anything is sent (192.0.2.1 is TEST-NET-1: nothing would answer anyway).
    let o = cli(
        dir,
        &[
            "login",
            "--central",
            "http://192.0.2.1:8080",
            "--email",
            "a@b.c",
            "--password-stdin",
        ],
        "x\n",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refusing plain HTTP"),
        "{}",
        text(&o)
    );
    let mut args = vec![
        "node",
        "--central",
        "http://192.0.2.1:8080",
        "--key",
        "sln_x",
        "--state-dir",
        state.to_str().expect("utf-8"),
    ];
    args.extend(NAMES);
    let o = cli(dir, &args, "");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refusing plain HTTP"),
        "{}",
        text(&o)
    );
    let o = cli(dir, &cleanup, "");
    assert!(o.status.success(), "cleanup: {}", text(&o));
}

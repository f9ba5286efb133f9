//! `cargo bench -p slicelab --bench exec` (root): fan-out exec over 50 slivers, next to Debian's
//! `parallel-ssh` in the same run.
//!
//! Brings up its own testbed (`slicelab up --nodes 50 --port 18390`, the demo slice on every
//! node, in a directory and home of its own), then runs `true` in every sliver, alternating:
//! `slicelab exec demo_slice` (SSH in-process), `parallel-ssh` over the same 50 hosts, and
//! `slicelab exec --openssh` (one OpenSSH process per node, as before); same key, same ssh
//! options, 50 at once each. Then one session alone, `slicelab exec --nodes` next to OpenSSH's
//! `ssh`. Prints the medians and the ratios, then `slicelab down`.
//!
//! It holds the lock the testbed tests hold (they share the bridge and namespace names), and
//! refuses to start while another testbed runs. Under `cargo test --all-targets` it only says why
//! it does not run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_slicelab");
const NODES: usize = 50;
const PORT: &str = "18390";
const ROUNDS: usize = 7;
/// The testbed tests' lock (`crates/cli/tests/testbed/mod.rs`).
const UP_LOCK: &str = "/run/slicelab-up-test.lock";

struct Bed {
    dir: tempfile::TempDir,
    home: PathBuf,
}

impl Bed {
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLICELAB_UP_DIR", self.dir.path())
            .env("SLICELAB_CONFIG", self.home.join("config.toml"))
            .env("HOME", &self.home)
            .env_remove("SLICELAB_OUTPUT")
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .env_remove("SUDO_USER")
            .stdin(Stdio::null());
        c
    }

    fn slicelab(&self, args: &[&str]) -> Command {
        let mut c = self.cmd(EXE);
        c.args(args);
        c
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let o = self.slicelab(&["down"]).output();
        if !o.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("exec bench: `slicelab down` failed: {o:?}");
        }
    }
}

/// Runs `c` with its output discarded; how long it took, or why it failed.
fn timed(mut c: Command) -> Result<Duration, String> {
    let t = Instant::now();
    let o = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    let took = t.elapsed();
    if o.status.success() {
        Ok(took)
    } else {
        Err(format!(
            "{}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" / ")
        ))
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn run() -> Result<(), String> {
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(UP_LOCK)
        .map_err(|e| format!("{UP_LOCK}: {e}"))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("locking {UP_LOCK}: {e}"))?;
    if Path::new("/sys/class/net/slup0").exists() {
        return Err("another `slicelab up` testbed is running (bridge slup0)".into());
    }
    let dir = tempfile::Builder::new()
        .prefix("slicelab-exec-bench")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let home = dir.path().join("home");
    fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let bed = Bed { dir, home };

    let t = Instant::now();
    let o = bed
        .slicelab(&[
            "up",
            "--nodes",
            &NODES.to_string(),
            "--detach",
            "--no-debian-image",
            "--port",
            PORT,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "up: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    println!(
        "exec: testbed of {NODES} nodes up in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let state: serde_json::Value = serde_json::from_slice(
        &fs::read(bed.dir.path().join("testbed.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let key = state["user_key"]
        .as_str()
        .ok_or("no user_key in testbed.json")?
        .to_string();
    let hosts: Vec<String> = state["nodes"]
        .as_array()
        .ok_or("no nodes in testbed.json")?
        .iter()
        .filter_map(|n| n["hostname"].as_str().map(String::from))
        .collect();
    if hosts.len() != NODES {
        return Err(format!("{} nodes in testbed.json", hosts.len()));
    }
    let hosts_file = bed.dir.path().join("hosts");
    fs::write(&hosts_file, hosts.join("\n") + "\n").map_err(|e| e.to_string())?;

    let par = NODES.to_string();
    let slicelab = |openssh: bool| {
        let mut a = vec!["exec", "demo_slice", "-i", &key, "--parallel", &par];
        if openssh {
            a.push("--openssh");
        }
        a.extend(["--", "true"]);
        bed.slicelab(&a)
    };
    // The same options `slicelab exec --openssh` gives ssh (crates/cli/src/ssh.rs).
    let ssh_opts =
        format!("-p 22 -i {key} -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR");
    let pssh = || {
        let mut c = bed.cmd("parallel-ssh");
        c.arg("-h").arg(&hosts_file).args([
            "-l",
            "demo_slice",
            "-p",
            &par,
            "-t",
            "60",
            "-x",
            &ssh_opts,
            "true",
        ]);
        c
    };

    // Every sliver answers before timing starts.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match timed(slicelab(true)) {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => {
                return Err(format!("slivers not all reachable after 300 s: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_secs(3)),
        }
    }
    let (mut ours, mut peer, mut before) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        let a = timed(slicelab(false)).map_err(|e| format!("slicelab exec: {e}"))?;
        let b = timed(pssh()).map_err(|e| format!("parallel-ssh: {e}"))?;
        let c = timed(slicelab(true)).map_err(|e| format!("slicelab exec --openssh: {e}"))?;
        println!(
            "exec: round {}: slicelab exec {}, parallel-ssh {}, slicelab exec --openssh {}",
            r + 1,
            ms(a),
            ms(b),
            ms(c)
        );
        ours.push(a);
        peer.push(b);
        before.push(c);
    }
    // One session alone: its latency, which the fan-out hides behind the CPU it shares.
    let one = hosts[0].as_str();
    let (mut ours_one, mut ssh_one) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let mut a = bed.slicelab(&["exec", "demo_slice", "-i", &key, "--nodes", one]);
        a.args(["--", "true"]);
        ours_one.push(timed(a).map_err(|e| format!("slicelab exec --nodes {one}: {e}"))?);
        let mut b = bed.cmd("ssh");
        b.args(ssh_opts.split(' '))
            .arg(format!("demo_slice@{one}"))
            .arg("true");
        ssh_one.push(timed(b).map_err(|e| format!("ssh {one}: {e}"))?);
    }
    let (a1, b1) = (median(&mut ours_one), median(&mut ssh_one));
    let (a, b, c) = (median(&mut ours), median(&mut peer), median(&mut before));
    println!(
        "exec: `true` over {NODES} slivers, median of {ROUNDS}: slicelab exec {}; parallel-ssh {} \
         ({:.2}x faster; goal >= 3x); slicelab exec --openssh (one ssh per node, the previous \
         way) {} ({:.2}x)",
        ms(a),
        ms(b),
        b.as_secs_f64() / a.as_secs_f64(),
        ms(c),
        c.as_secs_f64() / a.as_secs_f64()
    );
    println!(
        "exec: `true` in one sliver, median of {ROUNDS}: slicelab exec {}; OpenSSH `ssh` {} \
         ({:.2}x faster)",
        ms(a1),
        ms(b1),
        b1.as_secs_f64() / a1.as_secs_f64()
    );
    Ok(())
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "exec: skipped (brings up a {NODES}-node testbed; run `cargo bench -p slicelab --bench exec` as root)"
        );
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        println!("exec: skipped (needs root: it brings up a testbed)");
        return;
    }
    if Command::new("parallel-ssh")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("exec: skipped (no parallel-ssh: apt-get install pssh, or scripts/deps.sh)");
        return;
    }
    if let Err(e) = run() {
        eprintln!("exec: {e}");
        std::process::exit(1);
    }
}

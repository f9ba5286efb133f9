//! The facility services on a real `slicelab up` testbed (two sites, a node each), as their
//! users meet them, with the real OpenSSH client and the real tcpdump:
//!
//! * `ssh site_admin@NODE`: a tech of site A gets the admin context on A's node and is refused
//!   on B's; there they list the slivers, read the node manager's log, stop a sliver (it stays
//!   stopped, and its slice's view says who stopped it), and restart it — each an event in the
//!   tech's name at central.
//! * `slicelab capture`: a person of the slice captures its sliver while it and another slice's
//!   sliver on the same node both ping: the file opens with `tcpdump -r` and holds exactly the
//!   slice's matching packets; the node's tech captures through site_admin (bounded by a packet
//!   count); an unrelated user is refused with central's 403; each capture is on the record.
//!
//! * `slicelab traffic`: 20 Mbit/s of UDP for 5 s from the demo sliver on node A to the one on
//!   node B reports a throughput within 3% of what `iperf3` measures between the same two slivers
//!   over the same path (out through A, in through a port forward of B), and no loss.
//!
//! Root only; says SKIPPED otherwise (CI runs it as root).

mod testbed;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testbed::{ssh, text, up_lock, Leftovers, Testbed, EXE};

const NODE_A: &str = "node1.demo.slicelab.test";
const NODE_B: &str = "node2.site2.slicelab.test";

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The accounts `up` printed: role → (email, password).
fn accounts(summary: &str) -> Vec<(String, String, String)> {
    summary
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w[..] {
                [role @ ("admin" | "pi" | "user"), email, "password", pw] => {
                    Some((role.to_string(), email.to_string(), pw.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{}", text(&o));
    key
}

/// `slicelab` as one person: a config file of their own.
struct Person<'a> {
    tb: &'a Testbed,
    config: PathBuf,
    key: Option<PathBuf>,
}

impl Person<'_> {
    fn cmd(&self) -> Command {
        let mut c = self.tb.cmd();
        c.env("SLICELAB_CONFIG", &self.config);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("running slicelab")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let o = self.run(&all);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o)))
    }
}

fn login<'a>(tb: &'a Testbed, state: &Value, email: &str, password: &str) -> Person<'a> {
    let config = tb.dir.path().join(format!("{email}.toml"));
    let p = Person {
        tb,
        config,
        key: None,
    };
    let mut c = p.cmd();
    c.args([
        "login",
        "--central",
        state["central_url"].as_str().expect("central_url"),
        "--ca-fingerprint",
        state["central_ca_fingerprint"]
            .as_str()
            .expect("fingerprint"),
        "--email",
        email,
        "--password-stdin",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("login");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("password");
    let o = child.wait_with_output().expect("login");
    assert!(o.status.success(), "login {email}: {}", text(&o));
    p
}

/// A new person (as the admin) with a password and an SSH key, logged in.
fn new_person<'a>(
    tb: &'a Testbed,
    state: &Value,
    admin: &Person,
    email: &str,
    role: &str,
    site: &str,
) -> Person<'a> {
    let mut c = admin.cmd();
    c.args([
        "person",
        "add",
        email,
        "--first",
        "T",
        "--last",
        "P",
        "--role",
        role,
        "--site",
        site,
        "--password-stdin",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("person add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"a-long-test-password\n")
        .expect("password");
    let o = child.wait_with_output().expect("person add");
    assert!(o.status.success(), "person add {email}: {}", text(&o));
    let key = keygen(tb.dir.path(), &email.replace(['@', '.'], "_"));
    let pubkey = PathBuf::from(format!("{}.pub", key.display()));
    let o = admin.run(&[
        "key",
        "add",
        pubkey.to_str().expect("utf-8"),
        "--person",
        email,
    ]);
    assert!(o.status.success(), "key add: {}", text(&o));
    let mut p = login(tb, state, email, "a-long-test-password");
    p.key = Some(key);
    p
}

/// Retries `f` until it returns `Some` or `timeout` passes.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn sliver(p: &Person, slice: &str, node: &str) -> Option<Value> {
    let d = p.json(&["slice", "show", slice]);
    d["slivers"]
        .as_array()?
        .iter()
        .find(|s| s["node"] == node)
        .cloned()
}

fn events(p: &Person, object: &str) -> Vec<Value> {
    let v = p.json(&["events", "--object", object]);
    v.get("items")
        .and_then(Value::as_array)
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default()
}

/// The sliver's address, as it sees it.
fn address(key: &Path, slice: &str, node: &str) -> String {
    let o = ssh(key, &format!("{slice}@{node}"), "ip -4 -o addr show eth0");
    assert!(o.status.success(), "{}", text(&o));
    let s = out(&o);
    let inet = s
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {s:?}"));
    inet.split('/').next().unwrap_or_default().to_string()
}

/// `tcpdump -r FILE -nn` (the real one): its lines.
fn tcpdump(file: &Path) -> Vec<String> {
    let o = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(file)
        .output()
        .expect("tcpdump is installed");
    assert!(o.status.success(), "tcpdump -r: {}", text(&o));
    out(&o).lines().map(String::from).collect()
}

#[test]
fn site_admin_and_capture_on_a_real_testbed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED site_admin_and_capture_on_a_real_testbed: needs root");
        return;
    }
    let _lock = up_lock();
    assert!(
        !Leftovers::other_testbed_running(),
        "a `slicelab up` testbed is running here"
    );
    let tb = Testbed::new("slicelab-facility-test");
    let dirp = tb.dir.path().to_path_buf();
    let o = tb.run(&[
        "up",
        "--nodes",
        "2",
        "--sites",
        "2",
        "--detach",
        "--no-debian-image",
        "--port",
        "18080",
    ]);
    assert!(o.status.success(), "up: {}", text(&o));
    let summary = out(&o) + &String::from_utf8_lossy(&o.stderr);
    let state: Value =
        serde_json::from_slice(&fs::read(dirp.join("testbed.json")).expect("testbed.json"))
            .expect("testbed.json");
    let accts = accounts(&summary);
    let acct = |role: &str| {
        accts
            .iter()
            .find(|a| a.0 == role)
            .cloned()
            .unwrap_or_else(|| panic!("no {role} in {summary}"))
    };
    let (_, admin_email, admin_pw) = acct("admin");
    let (_, user_email, user_pw) = acct("user");
    let user_key = PathBuf::from(state["user_key"].as_str().expect("user_key"));
    let admin = login(&tb, &state, &admin_email, &admin_pw);
    let mut user = login(&tb, &state, &user_email, &user_pw);
    user.key = Some(user_key.clone());
    let tech = new_person(
        &tb,
        &state,
        &admin,
        "tech@demo.slicelab.test",
        "tech",
        "demo",
    );
    let stranger = new_person(
        &tb,
        &state,
        &admin,
        "user@site2.slicelab.test",
        "user",
        "site2",
    );
    let tech_key = tech.key.clone().expect("key");
    let stranger_key = stranger.key.clone().expect("key");

    // A second slice on node A, to share it with the demo slice.
    let o = admin.run(&["slice", "add", "demo_other", "--description", "neighbour"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = admin.run(&["slice", "add-persons", "demo_other", &user_email]);
    assert!(o.status.success(), "{}", text(&o));
    let o = admin.run(&["slice", "add-nodes", "demo_other", NODE_A]);
    assert!(o.status.success(), "{}", text(&o));
    for slice in ["demo_slice", "demo_other"] {
        wait_for(
            &format!("{slice} running on {NODE_A}"),
            Duration::from_secs(60),
            || sliver(&user, slice, NODE_A).filter(|s| s["state"] == "running"),
        );
    }

    // --- site_admin: the tech of site A on A's node, refused on B's.
    let admin_ctx = wait_for("the tech's key on node A", Duration::from_secs(30), || {
        let o = ssh(&tech_key, &format!("site_admin@{NODE_A}"), "slivers");
        o.status.success().then(|| out(&o))
    });
    assert!(
        admin_ctx.contains("demo_slice") && admin_ctx.contains("demo_other"),
        "{admin_ctx}"
    );
    let o = ssh(&tech_key, &format!("site_admin@{NODE_B}"), "slivers");
    assert_eq!(
        o.status.code(),
        Some(255),
        "site B must refuse A's tech: {}",
        text(&o)
    );
    let o = ssh(&stranger_key, &format!("site_admin@{NODE_A}"), "slivers");
    assert_eq!(
        o.status.code(),
        Some(255),
        "a user is no staff: {}",
        text(&o)
    );
    // No way into a slice's files or processes.
    let o = ssh(&tech_key, &format!("demo_slice@{NODE_A}"), "true");
    assert_eq!(
        o.status.code(),
        Some(255),
        "staff keys do not open slices: {}",
        text(&o)
    );
    let o = ssh(
        &tech_key,
        &format!("site_admin@{NODE_A}"),
        "cat /etc/shadow",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // The node manager's log.
    let o = ssh(&tech_key, &format!("site_admin@{NODE_A}"), "log 200");
    assert!(o.status.success(), "{}", text(&o));
    assert!(out(&o).contains("node manager started"), "{}", text(&o));
    let o = ssh(&tech_key, &format!("site_admin@{NODE_A}"), "ps demo_slice");
    assert!(
        o.status.success() && out(&o).contains("PID"),
        "{}",
        text(&o)
    );

    // Stop: it stays stopped, and the slice's view says who did it and why.
    let o = ssh(
        &tech_key,
        &format!("site_admin@{NODE_A}"),
        "stop demo_other floods the uplink",
    );
    assert!(o.status.success(), "stop: {}", text(&o));
    let s = wait_for("the stop reported", Duration::from_secs(30), || {
        sliver(&user, "demo_other", NODE_A).filter(|s| s["state"] == "stopped")
    });
    let msg = s["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("tech@demo.slicelab.test") && msg.contains("floods the uplink"),
        "{s}"
    );
    let o = ssh(&user_key, &format!("demo_other@{NODE_A}"), "true");
    assert!(!o.status.success(), "a stopped sliver takes no logins");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        sliver(&user, "demo_other", NODE_A).map(|s| s["state"].clone()),
        Some(Value::from("stopped")),
        "the node manager must not start it again"
    );
    let stop = wait_for("the stop's event", Duration::from_secs(20), || {
        events(&admin, "demo_other")
            .into_iter()
            .find(|e| e["action"] == "sliver.admin_stop")
    });
    assert_eq!(stop["actor"], "person:tech@demo.slicelab.test", "{stop}");
    assert_eq!(stop["detail"]["node"], NODE_A, "{stop}");
    let o = ssh(
        &tech_key,
        &format!("site_admin@{NODE_A}"),
        "restart demo_other",
    );
    assert!(o.status.success(), "restart: {}", text(&o));
    wait_for("demo_other running again", Duration::from_secs(30), || {
        sliver(&user, "demo_other", NODE_A).filter(|s| s["state"] == "running")
    });
    wait_for("the restart's event", Duration::from_secs(20), || {
        events(&admin, "demo_other")
            .into_iter()
            .find(|e| e["action"] == "sliver.admin_restart")
    });

    // --- capture by a person of the slice, while both slivers on node A ping.
    let mine = address(&user_key, "demo_slice", NODE_A);
    let theirs = address(&user_key, "demo_other", NODE_A);
    assert_ne!(mine, theirs);
    let file = dirp.join("user.pcapng");
    let cap = user
        .cmd()
        .args([
            "capture",
            "demo_slice",
            "--node",
            NODE_A,
            "--filter",
            "icmp",
            "--duration",
            "8s",
            "-w",
            file.to_str().expect("utf-8"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("capture");
    std::thread::sleep(Duration::from_millis(2500));
    let ping_key = user_key.clone();
    let ping = move |slice: &str| {
        Command::new("/usr/bin/ssh")
            .arg("-i")
            .arg(&ping_key)
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
            .args([
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg(format!("{slice}@{NODE_A}"))
            .arg("ping -c 10 -i 0.2 10.99.0.1")
            .stdin(Stdio::null())
            .output()
            .expect("ping")
    };
    let ping2 = ping.clone();
    let other = std::thread::spawn(move || ping2("demo_other"));
    let o = ping("demo_slice");
    assert!(o.status.success(), "ping: {}", text(&o));
    assert!(other.join().expect("ping").status.success());
    let o = cap.wait_with_output().expect("capture");
    assert!(o.status.success(), "capture: {}", text(&o));
    let lines = tcpdump(&file);
    assert_eq!(
        lines.len(),
        20,
        "10 echo requests and 10 replies: {lines:#?}"
    );
    for l in &lines {
        assert!(l.contains("ICMP"), "{l}");
        assert!(
            l.contains(&format!(" {mine} ")) || l.contains(&format!(" {mine}:")),
            "{l}"
        );
        assert!(!l.contains(&theirs), "another slice's packet: {l}");
    }
    assert_eq!(
        lines.iter().filter(|l| l.contains("echo request")).count(),
        10
    );
    let captured = wait_for("the capture's event", Duration::from_secs(20), || {
        events(&admin, "demo_slice")
            .into_iter()
            .find(|e| e["action"] == "sliver.capture")
    });
    assert_eq!(
        captured["actor"],
        format!("person:{user_email}"),
        "{captured}"
    );
    assert_eq!(captured["detail"]["filter"], "icmp", "{captured}");
    assert_eq!(captured["detail"]["packets"], 20, "{captured}");

    // The node's tech, through site_admin, bounded by a packet count.
    let file = dirp.join("tech.pcapng");
    let cap = tech
        .cmd()
        .args([
            "capture",
            "demo_other",
            "--node",
            NODE_A,
            "--filter",
            "icmp[icmptype] = icmp-echo",
            "--packets",
            "3",
            "--duration",
            "20s",
            "--identity",
            tech_key.to_str().expect("utf-8"),
            "-w",
            file.to_str().expect("utf-8"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("capture");
    std::thread::sleep(Duration::from_millis(2500));
    let o = ping("demo_other");
    assert!(o.status.success(), "ping: {}", text(&o));
    let o = cap.wait_with_output().expect("capture");
    assert!(o.status.success(), "tech capture: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ended by packets"),
        "{}",
        text(&o)
    );
    let lines = tcpdump(&file);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines
        .iter()
        .all(|l| l.contains("echo request") && l.contains(&theirs)));

    // Anyone else: central's 403, and nothing captured.
    let file = dirp.join("stranger.pcapng");
    let o = stranger.run(&[
        "capture",
        "demo_slice",
        "--node",
        NODE_A,
        "-w",
        file.to_str().expect("utf-8"),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("only the slice's persons"), "{err}");
    assert!(!file.exists());

    traffic_matches_iperf3(&user, &admin);

    let o = tb.run(&["down"]);
    assert!(o.status.success(), "down: {}", text(&o));
    assert_eq!(Leftovers::take(&dirp), Leftovers::default());
    let _ = EXE;
}

/// The pid of a process of `slice`'s sliver on testbed node `index` (its cgroup names both).
fn sliver_pid(index: u8, slice: &str) -> i32 {
    let needle = format!("slicelab-up-n{index}/{slice}");
    let mut pids: Vec<i32> = fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .map(|c| c.lines().any(|l| l.ends_with(&needle)))
                .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    *pids
        .first()
        .unwrap_or_else(|| panic!("no process of {slice} on node {index}"))
}

fn in_sliver(pid: i32, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/proc/{pid}/ns/net")).args(args);
    c
}

fn traffic_matches_iperf3(user: &Person, admin: &Person) {
    let ours = user.json(&[
        "traffic",
        "demo_slice",
        "--from",
        NODE_A,
        "--to",
        NODE_B,
        "--udp",
        "--rate",
        "20mbit",
        "--duration",
        "5s",
        "--size",
        "1200",
    ]);
    let throughput = ours["throughput"].as_f64().expect("throughput");
    assert_eq!(
        ours["lost_packets"], 0,
        "an idle path loses nothing: {ours}"
    );
    assert!(ours["rtt_ms"]["p50"].as_f64().is_some(), "{ours}");
    assert!(ours["jitter_ms"]["p99"].as_f64().is_some(), "{ours}");

    // iperf3 between the same slivers: its server behind a port forward of node B.
    let o = admin.run(&[
        "slice",
        "tag",
        "set",
        "demo_slice",
        "ports",
        "8080/tcp,5201/tcp,5201/udp",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    std::thread::sleep(Duration::from_secs(2));
    let (a, b) = (sliver_pid(1, "demo_slice"), sliver_pid(2, "demo_slice"));
    let mut server = in_sliver(b, &["iperf3", "-s", "-1", "-p", "5201"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    std::thread::sleep(Duration::from_millis(500));
    let o = in_sliver(
        a,
        &[
            "iperf3",
            "-c",
            "10.99.0.12",
            "-p",
            "5201",
            "-u",
            "-b",
            "20M",
            "-t",
            "5",
            "-l",
            "1200",
            "-J",
        ],
    )
    .output()
    .expect("iperf3 -c");
    let _ = server.kill();
    let _ = server.wait();
    assert!(o.status.success(), "iperf3 -c: {}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("iperf3 JSON");
    let peer = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("end.sum_received.bits_per_second");
    let ratio = throughput / peer;
    eprintln!("slicelab traffic {throughput:.0} bit/s, iperf3 {peer:.0} bit/s, ratio {ratio:.4}");
    assert!(
        (0.97..=1.03).contains(&ratio),
        "{throughput} vs iperf3 {peer}: {ours}"
    );
}

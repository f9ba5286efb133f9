//! Federation end to end, as two operators would run it: authority `plc` (central on SQLite, a
//! real node manager) and authority `ple` (central on PostgreSQL) register each other with a
//! shared secret and pinned CAs. A `ple` slice takes a `plc` node: `plc`'s policy decides (its
//! quota for `ple` refuses the next sliver, naming the quota), its node manager runs the sliver,
//! which accepts `ssh` with the `ple` person's key. The sliver's state, usage and flows show at
//! `ple`; `plc`'s public lookup names the slice, its authority and its contact. `plc` suspends
//! `ple`: the sliver stops and `ple` sees why. With `ple`'s central stopped the sliver keeps
//! running; when it returns, a tag change made there reaches the sliver. Unsigned, wrongly
//! signed and replayed peer calls are refused. Root (a real node manager with its own names).

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod central_process;

const EXE: &str = env!("CARGO_BIN_EXE_slicelab");
const PASSWORD: &str = "federation-test-password";
const SECRET: &str = "federation-test-shared-secret-0123456789";
/// Fixed ports: each central must come back on the URL its peer registered.
const PORT_PLC: u16 = 18641;
const PORT_PLE: u16 = 18642;
const SSH_PORT: u16 = 18643;
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 79, 177, 1);
const NAMES: [&str; 8] = [
    "--gateway-if",
    "slfed0",
    "--nft-table",
    "slicelab_fed",
    "--cgroup-parent",
    "slicelab_fed",
    "--subnet",
    "10.79.177.0",
];
/// ple's node manager: its own names.
const NAMES_PLE: [&str; 8] = [
    "--gateway-if",
    "slfed1",
    "--nft-table",
    "slicelab_fed1",
    "--cgroup-parent",
    "slicelab_fed1",
    "--subnet",
    "10.79.178.0",
];
const SSH_PORT_PLE: u16 = 18645;
const PLE_NODE: &str = "n1.ple.test";
const PLC_SLICE: &str = "plcsite_rev";
const NODE: &str = "n1.plc.test";
const NODE2: &str = "n2.plc.test";
const SLICE: &str = "lab_exp";
/// The slice's name on `plc`'s nodes.
const FOREIGN: &str = "ple_lab_exp";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One authority: its central's directory, URL, CA and the CLI configured for its admin.
struct Authority {
    name: &'static str,
    dir: PathBuf,
    db: String,
    port: u16,
    url: String,
    fingerprint: String,
}

impl Authority {
    fn start(&mut self) -> Proc {
        let c = central_process::spawn(
            Command::new(EXE)
                .args(["central", "--listen", &format!("127.0.0.1:{}", self.port)])
                .args([
                    "--db",
                    &self.db,
                    "--authority",
                    self.name,
                    "--peer-sync",
                    "1",
                ])
                .arg("--tls-dir")
                .arg(self.dir.join("tls"))
                .env("SLICELAB_ADMIN_PASSWORD", PASSWORD)
                .env_remove("SLICELAB_DB")
                .env_remove("SLICELAB_TLS_DIR")
                .stderr(Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(self.dir.join("central.log"))
                        .expect("log"),
                )),
        );
        if !self.fingerprint.is_empty() {
            assert_eq!(
                self.fingerprint, c.fingerprint,
                "the same CA after a restart"
            );
        }
        self.url = c.url;
        self.fingerprint = c.fingerprint;
        Proc(c.child)
    }

    fn cli(&self, args: &[&str], stdin: &str) -> Output {
        let mut c = Command::new(EXE)
            .args(args)
            .env("SLICELAB_CONFIG", self.dir.join("config.toml"))
            .env_remove("SLICELAB_CENTRAL")
            .env_remove("SLICELAB_TOKEN")
            .env_remove("SLICELAB_CA")
            .env_remove("SLICELAB_CA_FINGERPRINT")
            .env_remove("SLICELAB_OUTPUT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn slicelab");
        let _ = c.stdin.take().expect("stdin").write_all(stdin.as_bytes());
        c.wait_with_output().expect("slicelab runs")
    }

    /// Runs a command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args, "");
        assert!(o.status.success(), "{}: {args:?}: {}", self.name, text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).expect("json output")
    }

    fn login(&self) {
        let o = self.cli(
            &[
                "login",
                "--central",
                &self.url,
                "--email",
                "admin@localhost",
                "--password-stdin",
                "--ca-fingerprint",
                &self.fingerprint,
            ],
            &format!("{PASSWORD}\n"),
        );
        assert!(o.status.success(), "login {}: {}", self.name, text(&o));
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Polls `f` until it returns `Some` or `secs` pass.
fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn ssh(key: &Path, cmd: &str) -> Output {
    ssh_to(key, SSH_PORT, FOREIGN, cmd)
}

fn ssh_to(key: &Path, port: u16, user: &str, cmd: &str) -> Output {
    Command::new("/usr/bin/ssh")
        .arg("-i")
        .arg(key)
        .args([
            "-p",
            &port.to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
            &format!("{user}@127.0.0.1"),
            cmd,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("running /usr/bin/ssh")
}

/// The state of the `ple` slice's sliver on the `plc` node, as `who` sees it.
fn sliver(who: &Authority, slice: &str) -> Option<(String, String)> {
    let v = who.json(&["slice", "slivers", slice]);
    v.as_array()?.iter().find(|s| s["node"] == NODE).map(|s| {
        (
            s["state"].as_str().unwrap_or("").to_string(),
            s["message"].as_str().unwrap_or("").to_string(),
        )
    })
}

/// A database of its own on the test's PostgreSQL server.
async fn pg_database(admin_url: &str, name: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.expect("pg");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.expect("pg ddl");
    }
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .expect("url");
    format!("{base}/{name}")
}

async fn drop_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

/// Sends a peer call signed as `caller` with `secret` (or unsigned), the same request `times`
/// times; returns each answer's status.
async fn raw_peer_call(
    url: &str,
    caller: &str,
    secret: Option<&str>,
    times: usize,
) -> Vec<(u16, String)> {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let path = "/peer/v1/registry";
    let time = slicelab_model::time::now();
    let nonce = format!("test-nonce-{}", std::process::id());
    let mut out = Vec::new();
    for _ in 0..times {
        let mut req = http.get(format!("{url}{path}"));
        if let Some(secret) = secret {
            let sig = slicelab_client::peer::sign(secret, "GET", path, time, &nonce, caller, b"");
            req = req
                .header("x-slicelab-peer", caller)
                .header("x-slicelab-time", time.to_string())
                .header("x-slicelab-nonce", &nonce)
                .header("x-slicelab-signature", sig);
        }
        let r = req.send().await.expect("peer call answered");
        let status = r.status().as_u16();
        out.push((status, r.text().await.unwrap_or_default()));
    }
    out
}

#[test]
fn two_authorities_share_a_node_each_keeping_control() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: federation_e2e runs a real node manager (needs root)");
        return;
    }
    let Ok(pg_admin) = std::env::var("SLICELAB_TEST_PG") else {
        assert!(std::env::var("CI").is_err(), "CI must set SLICELAB_TEST_PG");
        eprintln!("SKIPPED: set SLICELAB_TEST_PG (ple's central runs on PostgreSQL)");
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::Builder::new()
        .prefix("slicelab-fed")
        .tempdir()
        .expect("tmp");
    let root = tmp.path();
    let pg_name = format!("slicelab_fed_{}", std::process::id());
    let pg_url = rt.block_on(pg_database(&pg_admin, &pg_name));

    let mut plc = Authority {
        name: "plc",
        dir: root.join("plc"),
        db: format!("sqlite://{}/central.db", root.join("plc").display()),
        port: PORT_PLC,
        url: String::new(),
        fingerprint: String::new(),
    };
    let mut ple = Authority {
        name: "ple",
        dir: root.join("ple"),
        db: pg_url,
        port: PORT_PLE,
        url: String::new(),
        fingerprint: String::new(),
    };
    for a in [&plc, &ple] {
        std::fs::create_dir_all(&a.dir).expect("dir");
    }
    let state_dir = root.join("node-state");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scenario(&rt, &mut plc, &mut ple, &state_dir)
    }));
    // Cleanup whatever happened: the node's kernel objects, ple's database.
    let mut outputs = Vec::new();
    for (dir, names) in [
        (state_dir.join("plc"), NAMES),
        (state_dir.join("ple"), NAMES_PLE),
    ] {
        let o = Command::new(EXE)
            .args(["node", "cleanup", "--purge", "--state-dir"])
            .arg(&dir)
            .args(names)
            .output()
            .expect("cleanup");
        outputs.push(o);
    }
    rt.block_on(drop_database(&pg_admin, &pg_name));
    if let Err(e) = result {
        for a in [&plc, &ple] {
            let log = std::fs::read_to_string(a.dir.join("central.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- {} central log (last lines, newest first):\n{}",
                a.name,
                tail.join("\n")
            );
        }
        std::panic::resume_unwind(e);
    }
    for o in outputs {
        assert!(o.status.success(), "node cleanup: {}", text(&o));
    }
}

fn scenario(
    rt: &tokio::runtime::Runtime,
    plc: &mut Authority,
    ple: &mut Authority,
    state_dir: &Path,
) {
    let _plc_central = plc.start();
    let ple_central = ple.start();
    plc.login();
    ple.login();
    let secret = plc.dir.join("ple.secret");
    std::fs::write(&secret, SECRET).expect("secret");

    // Each admin registers the other, pinning its CA; plc gives ple a quota of one sliver.
    plc.ok(&[
        "peer",
        "add",
        "ple",
        &ple.url,
        "--ca-fingerprint",
        &ple.fingerprint,
        "--secret-file",
        secret.to_str().expect("utf-8"),
        "--max-slivers",
        "1",
    ]);
    ple.ok(&[
        "peer",
        "add",
        "plc",
        &plc.url,
        "--ca-fingerprint",
        &plc.fingerprint,
        "--secret-file",
        secret.to_str().expect("utf-8"),
    ]);

    // plc: a site with two nodes; the first runs a real node manager.
    plc.ok(&["site", "add", "plcsite", "--name", "PLC Site"]);
    let added = plc.json(&["node", "add", NODE, "--site", "plcsite"]);
    let key = added["node_key"].as_str().expect("node key").to_string();
    plc.ok(&["node", "add", NODE2, "--site", "plcsite"]);
    let _node = Proc(
        Command::new(EXE)
            .arg("node")
            .args(NAMES)
            .args(["--central", &plc.url, "--ca-fingerprint", &plc.fingerprint])
            .arg("--state-dir")
            .arg(state_dir.join("plc"))
            .args(["--ssh-listen", &format!("127.0.0.1:{SSH_PORT}")])
            .env("SLICELAB_NODE_KEY", &key)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(plc.dir.join("node.log")).expect("log"),
            ))
            .spawn()
            .expect("node manager starts"),
    );

    // ple: a site, a slice, its person's key.
    ple.ok(&["site", "add", "lab", "--name", "PLE Lab"]);
    ple.ok(&["slice", "add", SLICE]);
    let key_file = ple.dir.join("id_ed25519");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "admin@ple", "-f"])
        .arg(&key_file)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "ssh-keygen: {}", text(&o));
    ple.ok(&["key", "add", &format!("{}.pub", key_file.display())]);
    ple.ok(&["slice", "add-person", SLICE, "admin@localhost"]);

    // ple sees plc's nodes, read-only and marked with their authority.
    let nodes = wait_for("plc's nodes at ple", 30, || {
        let v = ple.json(&["node", "list"]);
        let list = v["items"].as_array().or(v.as_array())?.clone();
        list.iter()
            .any(|n| n["hostname"] == NODE && n["authority"] == "plc")
            .then_some(list)
    });
    assert!(nodes.iter().any(|n| n["hostname"] == NODE2), "{nodes:?}");
    let o = ple.cli(&["node", "update", NODE, "--region", "x"], "");
    assert!(
        !o.status.success(),
        "a peer's node is read-only: {}",
        text(&o)
    );

    // ple's slice takes plc's node: plc decides and runs it.
    ple.ok(&["slice", "add-nodes", SLICE, NODE]);
    // plc's quota for ple (one sliver) refuses the next one, naming the quota.
    let o = ple.cli(&["slice", "add-nodes", SLICE, NODE2], "");
    assert!(!o.status.success(), "over the quota: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("quota") && err.contains("1 sliver"), "{err}");
    let slice = ple.json(&["slice", "show", SLICE]);
    assert!(
        !slice.to_string().contains(NODE2),
        "nothing stored at ple after the refusal: {slice}"
    );

    // Guarantees: plc gave ple none by default, so a reservation is refused (ple's view of
    // the peer says why) until plc's admin gives ple a reservation quota.
    ple.ok(&["slice", "tag", "set", SLICE, "mem_reserve", "64M"]);
    let refused = wait_for("the reservation refused", 30, || {
        let p = ple.json(&["peer", "show", "plc"]);
        let e = p["last_error"].as_str().unwrap_or("").to_string();
        e.contains("may reserve").then_some(e)
    });
    assert!(refused.contains("quota"), "{refused}");
    plc.ok(&["peer", "update", "ple", "--max-mem-reserve", "128"]);
    wait_for("the reservation taken at plc", 30, || {
        let o = plc.cli(&["slice", "tag", "list", FOREIGN, "-o", "json"], "");
        String::from_utf8_lossy(&o.stdout)
            .contains("mem_reserve")
            .then_some(())
    });

    // The sliver runs on plc's node and accepts ssh with the ple person's key.
    let started = Instant::now();
    let hello = wait_for("ssh into the foreign sliver", 60, || {
        let o = ssh(&key_file, "echo hello-from-$(hostname)");
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    });
    assert!(hello.contains("hello-from"), "{hello}");
    eprintln!(
        "foreign sliver reachable by ssh {:?} after add-nodes",
        started.elapsed()
    );
    let plc_view = plc.json(&["slice", "show", FOREIGN]);
    assert_eq!(plc_view["authority"], "ple", "{plc_view}");

    // Traffic from the sliver: plc audits it; ple sees its usage and flows.
    let listener = TcpListener::bind((GATEWAY, 18644)).expect("listen on the node's gateway");
    listener.set_nonblocking(true).expect("nonblocking");
    // Takes connections and closes them, so the sliver's `nc` ends, until the flows arrived.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sink = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 16];
                        let _ = std::io::Read::read(&mut c, &mut buf);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })
    };
    let state = wait_for("the sliver's state at ple", 30, || {
        sliver(ple, SLICE).filter(|(s, _)| s == "running")
    });
    assert_eq!(state.0, "running");
    // Traffic from the sliver (again every few seconds, in case the sliver was restarting when
    // a tag change reached it), until its flow shows at ple.
    let mut round = 0;
    let seen = {
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            if round % 10 == 0 {
                let o = ssh(
                    &key_file,
                    &format!("echo ping | timeout 5 nc -w 2 {GATEWAY} 18644; true"),
                );
                eprintln!("traffic from the sliver: {}", o.status);
            }
            round += 1;
            let v = ple.json(&["flows", "--slice", SLICE]);
            let found = v.as_array().is_some_and(|list| {
                list.iter()
                    .any(|f| f["node"] == NODE && f["flow"]["dst"] == GATEWAY.to_string())
            });
            if found || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sink.join();
    if !seen {
        let at_plc = plc.ok(&["flows", "--slice", FOREIGN, "-o", "json"]);
        let peer = ple.ok(&["peer", "show", "plc", "-o", "json"]);
        panic!("the sliver's flows never showed at ple; plc has: {at_plc}; ple's peer: {peer}");
    }
    wait_for("the sliver's usage at ple", 60, || {
        let v = ple.json(&["usage", SLICE, "--since", "1h"]);
        let s = v.to_string();
        (s.contains("cpu_s") && !v["points"].as_array().is_some_and(|p| p.is_empty())).then_some(())
    });
    // plc's public lookup names the slice, its authority and ple's contact.
    let v = plc.json(&["lookup", "--node", NODE, "--remote", &GATEWAY.to_string()]);
    let m = &v["matches"][0];
    assert_eq!(m["slice"], FOREIGN, "{v}");
    assert_eq!(m["authority"], "ple", "{v}");
    assert!(m["contacts"].to_string().contains("admin@localhost"), "{v}");

    // The other way round, through the broker: ple's node (PostgreSQL's central decides) runs a
    // plc slice that `--select` placed there.
    let added = ple.json(&["node", "add", PLE_NODE, "--site", "lab"]);
    let ple_key = added["node_key"].as_str().expect("node key").to_string();
    let _ple_node = Proc(
        Command::new(EXE)
            .arg("node")
            .args(NAMES_PLE)
            .args(["--central", &ple.url, "--ca-fingerprint", &ple.fingerprint])
            .arg("--state-dir")
            .arg(state_dir.join("ple"))
            .args(["--ssh-listen", &format!("127.0.0.1:{SSH_PORT_PLE}")])
            .env("SLICELAB_NODE_KEY", &ple_key)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(ple.dir.join("node.log")).expect("log"),
            ))
            .spawn()
            .expect("ple's node manager starts"),
    );
    plc.ok(&["slice", "add", PLC_SLICE]);
    let plc_key = plc.dir.join("id_ed25519");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "admin@plc", "-f"])
        .arg(&plc_key)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "ssh-keygen: {}", text(&o));
    plc.ok(&["key", "add", &format!("{}.pub", plc_key.display())]);
    plc.ok(&["slice", "add-person", PLC_SLICE, "admin@localhost"]);
    wait_for("ple's node live at plc", 30, || {
        let o = plc.cli(&["node", "show", PLE_NODE, "-o", "json"], "");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        (v["status"] == "up" && v["authority"] == "ple").then_some(())
    });
    plc.ok(&[
        "slice",
        "add-nodes",
        PLC_SLICE,
        "--select",
        "count=1, site=ple",
    ]);
    let rev = wait_for("ssh into plc's sliver on ple's node", 60, || {
        let o = ssh_to(&plc_key, SSH_PORT_PLE, "plc_plcsite_rev", "echo reverse-ok");
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    });
    assert!(rev.contains("reverse-ok"), "{rev}");
    // ple's persons' key does not open plc's sliver, nor plc's key ple's.
    assert!(!ssh_to(&key_file, SSH_PORT_PLE, "plc_plcsite_rev", "true")
        .status
        .success());
    assert!(!ssh_to(&plc_key, SSH_PORT, FOREIGN, "true").status.success());

    // Mission control: plc suspends ple; the sliver stops and ple sees why.
    plc.ok(&["peer", "suspend", "ple", "--reason", "abuse report 42"]);
    wait_for("the sliver stopped at plc", 30, || {
        sliver(plc, FOREIGN).filter(|(s, _)| s != "running")
    });
    let why = wait_for("the reason at ple", 30, || {
        sliver(ple, SLICE).filter(|(s, m)| s != "running" && m.contains("abuse report 42"))
    });
    eprintln!("ple sees: {why:?}");
    let p = ple.json(&["peer", "show", "plc"]);
    assert!(
        p["remote_state"]
            .as_str()
            .unwrap_or("")
            .contains("abuse report 42"),
        "{p}"
    );
    plc.ok(&["peer", "resume", "ple"]);
    wait_for("ssh again after resume", 60, || {
        ssh(&key_file, "true").status.success().then_some(())
    });

    // The link is cut: ple's central stops; the sliver keeps running.
    drop(ple_central);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        ssh(&key_file, "true").status.success(),
        "runs without its home authority"
    );
    let p = plc.json(&["peer", "show", "ple"]);
    assert!(
        !p["last_error"].as_str().unwrap_or("").is_empty(),
        "plc noticed: {p}"
    );
    assert_eq!(
        sliver(plc, FOREIGN).map(|s| s.0).as_deref(),
        Some("running")
    );

    // ple returns; a tag change made there reaches the sliver.
    let _ple_central = ple.start();
    ple.ok(&[
        "slice",
        "tag",
        "set",
        SLICE,
        "initscript",
        "echo tag-reached > /tmp/fed-marker; exec sleep 100000",
    ]);
    let marker = wait_for("the new initscript in the sliver", 60, || {
        let o = ssh(&key_file, "cat /tmp/fed-marker");
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        s.contains("tag-reached").then_some(s)
    });
    assert!(marker.contains("tag-reached"));

    // Unsigned, wrongly signed and replayed peer calls are refused.
    let r = rt.block_on(raw_peer_call(&plc.url, "ple", None, 1));
    assert_eq!(r[0].0, 401, "unsigned: {r:?}");
    assert!(r[0].1.contains("unsigned"), "{r:?}");
    let r = rt.block_on(raw_peer_call(
        &plc.url,
        "ple",
        Some("another-secret-of-at-least-32-chars!!"),
        1,
    ));
    assert_eq!(r[0].0, 401, "wrong secret: {r:?}");
    let r = rt.block_on(raw_peer_call(&plc.url, "ple", Some(SECRET), 2));
    assert_eq!(r[0].0, 200, "a signed call: {r:?}");
    assert_eq!(r[1].0, 401, "its replay: {r:?}");
    assert!(r[1].1.contains("replayed"), "{r:?}");

    // Removing the peer destroys its slivers here, with an event each.
    plc.ok(&["peer", "remove", "ple"]);
    wait_for("the sliver destroyed", 30, || {
        (!ssh(&key_file, "true").status.success()).then_some(())
    });
    let ev = plc.json(&["events", "--since", "1h", "--limit", "1000"]);
    let events = ev["items"]
        .as_array()
        .or(ev.as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "sliver.delete" && e["object_name"] == FOREIGN),
        "{ev}"
    );
}

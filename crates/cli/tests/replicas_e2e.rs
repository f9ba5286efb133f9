//! Central replicas end to end, with the real binary and real node managers: two `slicelab
//! central` processes (A, B) on one PostgreSQL database, one blob directory and one CA (HTTPS on
//! a bridge this test makes), three node managers, each in a network namespace of this test's,
//! given both URLs — nodes 0 and 1 poll B first, node 2 polls A first — and the CLI given both.
//!
//! - a slice added through A runs on the nodes polling B (and the one polling A) in under a second;
//! - A is SIGKILLed in the middle of a stream of writes: every write A acknowledged is on B with
//!   exactly one event, the write in flight is there with its event or not at all;
//! - B takes the leadership within seconds and its liveness sweep marks a silent node down once;
//! - the node that polled A moves to B by itself: a slice added through B runs on all three; the
//!   CLI (still listing A first) and B's web pages carry on.
//!
//! PostgreSQL and root: skipped, saying so, outside CI without them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slicelab_client::{Client, Endpoint, Trust};
use slicelab_model::objects::{NodeWithKey, Page};
use slicelab_model::sliver::{Sliver, SliverState};
use slicelab_model::{Event, Node, NodeReport, NodeStatus};
use sqlx::Connection;

mod central_process;

const PASSWORD: &str = "replicas-test-password";
const EXE: &str = env!("CARGO_BIN_EXE_slicelab");
/// The bridge the centrals listen on, and the prefix of this test's namespaces and interfaces.
const BRIDGE: &str = "slrepbr0";
const HOST_ADDR: &str = "10.81.0.1";
const NODES: usize = 3;

fn sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn must(args: &[&str]) {
    let o = sh(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn netns(i: usize) -> String {
    format!("slrep-n{i}")
}

/// The bridge (centrals' address) and one namespace per node on it; removed on drop.
struct Network;

impl Network {
    fn create() -> Network {
        Network::remove();
        must(&["ip", "link", "add", BRIDGE, "type", "bridge"]);
        must(&[
            "ip",
            "addr",
            "add",
            &format!("{HOST_ADDR}/24"),
            "dev",
            BRIDGE,
        ]);
        must(&["ip", "link", "set", BRIDGE, "up"]);
        for i in 0..NODES {
            let (ns, host, inner) = (netns(i), format!("slrep-h{i}"), format!("slrep-c{i}"));
            must(&["ip", "netns", "add", &ns]);
            must(&[
                "ip", "link", "add", &host, "type", "veth", "peer", "name", &inner,
            ]);
            must(&["ip", "link", "set", &host, "master", BRIDGE, "up"]);
            must(&["ip", "link", "set", &inner, "netns", &ns]);
            let addr = format!("10.81.0.{}/24", 10 + i);
            for cmd in [
                vec!["addr", "add", &addr, "dev", &inner],
                vec!["link", "set", &inner, "up"],
                vec!["link", "set", "lo", "up"],
            ] {
                let mut a = vec!["ip", "-n", &ns];
                a.extend(cmd);
                must(&a);
            }
        }
        Network
    }

    fn remove() {
        for i in 0..NODES {
            let _ = sh(&["ip", "netns", "del", &netns(i)]);
            let _ = sh(&["ip", "link", "del", &format!("slrep-h{i}")]);
        }
        let _ = sh(&["ip", "link", "del", BRIDGE]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        Network::remove();
    }
}

/// A `slicelab central` replica on the bridge, killed on drop.
struct Central {
    child: Option<Child>,
    url: String,
    fingerprint: String,
}

impl Central {
    fn start(db: &str, dir: &Path) -> Central {
        let c = central_process::spawn(
            Command::new(EXE)
                .args(["central", "--db", db, "--listen", &format!("{HOST_ADDR}:0")])
                .args(["--tls-name", HOST_ADDR])
                .arg("--blob-dir")
                .arg(dir.join("blobs"))
                .arg("--tls-dir")
                .arg(dir.join("tls"))
                .env("SLICELAB_ADMIN_PASSWORD", PASSWORD)
                .env("SLICELAB_LOG", "warn")
                .stderr(Stdio::inherit()),
        );
        Central {
            child: Some(c.child),
            url: c.url,
            fingerprint: c.fingerprint,
        }
    }

    fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill");
            let status = child.wait().expect("wait");
            assert!(!status.success(), "central was killed, not exited");
        }
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A node manager in namespace `i`, stopped (SIGTERM) and cleaned up on drop.
struct NodeManager {
    child: Child,
    i: usize,
    state: PathBuf,
}

impl NodeManager {
    fn start(i: usize, urls: &str, fingerprint: &str, key: &str, dir: &Path) -> NodeManager {
        let state = dir.join(format!("node{i}"));
        let key_file = dir.join(format!("node{i}.key"));
        std::fs::write(&key_file, key).expect("key file");
        // nsenter, not `ip netns exec`: that remounts /sys and hides the cgroup hierarchies.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", netns(i)))
            .args([
                EXE,
                "node",
                "--central",
                urls,
                "--ca-fingerprint",
                fingerprint,
            ])
            .arg("--key-file")
            .arg(&key_file)
            .arg("--state-dir")
            .arg(&state)
            .args(["--cgroup-parent", &format!("slrep_n{i}")])
            .env_remove("SLICELAB_NODE_KEY")
            .env("SLICELAB_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node manager starts");
        NodeManager { child, i, state }
    }
}

impl Drop for NodeManager {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        let o = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", netns(self.i)))
            .args([EXE, "node", "cleanup", "--purge", "--cgroup-parent"])
            .arg(format!("slrep_n{}", self.i))
            .arg("--state-dir")
            .arg(&self.state)
            .output();
        if let Ok(o) = o {
            if !o.status.success() {
                eprintln!(
                    "cleanup of node {}: {}",
                    self.i,
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }
}

/// Runs the CLI with this test's login (both URLs).
fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .env("SLICELAB_CONFIG", config)
        .env_remove("SLICELAB_CENTRAL")
        .env_remove("SLICELAB_TOKEN")
        .env_remove("SLICELAB_CA_FINGERPRINT")
        .output()
        .expect("slicelab runs")
}

async fn metric(http: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until the slice's sliver runs on every node in `nodes` (as their reports say, read
/// through `c`); how long that took.
async fn runs_on(c: &Client, slice: &str, nodes: &[String], within: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let slivers: Vec<Sliver> = c
            .get(&format!("/slices/{slice}/slivers"))
            .await
            .unwrap_or_default();
        let running = |n: &String| {
            slivers
                .iter()
                .any(|s| &s.node == n && s.state == SliverState::Running)
        };
        if nodes.iter().all(running) {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < within,
            "{slice} not running on {nodes:?}: {slivers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_carry_on_when_one_is_killed_mid_write() {
    let Ok(admin_url) = std::env::var("SLICELAB_TEST_PG") else {
        assert!(std::env::var("CI").is_err(), "CI must set SLICELAB_TEST_PG");
        eprintln!("SKIPPED: set SLICELAB_TEST_PG to run the replicas test (PostgreSQL only)");
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var("CI").is_err(), "CI runs this as root");
        eprintln!("SKIPPED: the replicas test runs real node managers: needs root");
        return;
    }
    let name = format!("slicelab_replicas_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.expect("pg");
    for q in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(&q)
            .execute(&mut conn)
            .await
            .expect("test database");
    }
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).expect("url");
    let db = format!("{base}/{name}");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let _net = Network::create();
    // A first: it makes the CA B then serves too.
    let mut a = Central::start(&db, dir);
    let b = Central::start(&db, dir);
    assert_eq!(a.fingerprint, b.fingerprint, "replicas share one CA");
    let trust = Trust::fingerprint(&a.fingerprint).expect("fingerprint");
    let pem = std::fs::read(dir.join("tls/ca.pem")).expect("ca.pem");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http");

    // The CLI logs in with both URLs, A first, pinning the CA.
    let config = dir.join("config.toml");
    let both = format!("{},{}", a.url, b.url);
    let o = Command::new(EXE)
        .args(["login", "--central", &both, "--email", "admin@localhost"])
        .args(["--password-stdin", "--ca-fingerprint", &a.fingerprint])
        .env("SLICELAB_CONFIG", &config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(format!("{PASSWORD}\n").as_bytes())?;
            c.wait_with_output()
        })
        .expect("login");
    assert!(
        o.status.success(),
        "login: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let token = std::fs::read_to_string(&config)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("token")?.as_str().map(String::from))
        .expect("token saved");
    let only = |url: &str, token: Option<String>| {
        Client::connect(&Endpoint::new(url).trust(trust.clone()), token).expect("client")
    };
    let admin_a = only(&a.url, Some(token.clone()));
    let admin_b = only(&b.url, Some(token));

    let _: Value = admin_a
        .post(
            "/sites",
            &json!({"login_base": "rep", "name": "Replicas", "max_slices": 10}),
        )
        .await
        .expect("site");
    let mut keys = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..=NODES {
        let host = format!("n{i}.rep.test");
        let nk: NodeWithKey = admin_a
            .post("/nodes", &json!({"hostname": host, "site": "rep"}))
            .await
            .expect("node");
        keys.push(nk.node_key);
        hosts.push(host);
    }
    let nodes = &hosts[..NODES];
    // Nodes 0 and 1 poll B first, node 2 polls A first; node 3 reports once and falls silent.
    let b_first = format!("{},{}", b.url, a.url);
    let managers: Vec<NodeManager> = (0..NODES)
        .map(|i| {
            let urls = if i < 2 { &b_first } else { &both };
            NodeManager::start(i, urls, &a.fingerprint, &keys[i], dir)
        })
        .collect();
    only(&b.url, Some(keys[NODES].clone()))
        .report(&NodeReport {
            seq: 1,
            slivers: vec![],
            health: None,
            actions: Vec::new(),
        })
        .await
        .expect("the silent node's one report");

    // A first slice (the nodes' first sliver), then the measured one, both through A.
    let names = json!({"names": nodes});
    for slice in ["rep_warm", "rep_one"] {
        let _: Value = admin_a
            .post(
                "/slices",
                &json!({"name": slice, "description": "replicas"}),
            )
            .await
            .expect("slice");
        let added = Instant::now();
        let _: Value = admin_a
            .post(&format!("/slices/{slice}/nodes"), &names)
            .await
            .expect("add nodes");
        runs_on(&admin_b, slice, nodes, Duration::from_secs(60)).await;
        let took = added.elapsed();
        println!("{slice} added through A runs on the 3 nodes (2 polling B) in {took:?}");
        if slice == "rep_one" {
            assert!(took < Duration::from_secs(1), "{took:?}");
        }
    }

    // A leads, B does not; the silent node's last contact is made old.
    assert_eq!(
        metric(&http, &a.url, "slicelab_central_leader").await,
        Some(1.0)
    );
    assert_eq!(
        metric(&http, &b.url, "slicelab_central_leader").await,
        Some(0.0)
    );
    sqlx::query("UPDATE nodes SET last_contact = last_contact - 1000 WHERE hostname = $1")
        .bind(&hosts[NODES])
        .execute(&mut sqlx::PgConnection::connect(&db).await.expect("db"))
        .await
        .expect("age the silent node");

    // A stream of writes through A, and A killed in the middle of it.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let acked = acked.clone();
        let admin_a = admin_a.clone();
        tokio::spawn(async move {
            let mut i = 0usize;
            loop {
                let r: Result<Value, _> = admin_a
                    .post(
                        "/sites",
                        &json!({"login_base": format!("w{i}"), "name": "Written through A"}),
                    )
                    .await;
                match r {
                    Ok(_) => acked.lock().expect("acked").push(format!("w{i}")),
                    Err(_) => return i,
                }
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let killed = Instant::now();
    a.sigkill();
    let attempted = writer.await.expect("writer");
    let acked = acked.lock().expect("acked").clone();
    println!("A killed after {} acknowledged writes", acked.len());
    assert!(!acked.is_empty() && attempted == acked.len());

    // B holds every acknowledged write, each with one event; the write in flight with its
    // event, or neither.
    let ev: Page<Event> = admin_b
        .get("/events?object_type=site&limit=1000")
        .await
        .expect("the session made on A works on B");
    let mut per_site: HashMap<String, usize> = HashMap::new();
    for e in ev.items.iter().filter(|e| e.action == "site.create") {
        *per_site.entry(e.object_name.clone()).or_default() += 1;
    }
    for s in &acked {
        let _: Value = admin_b
            .get(&format!("/sites/{s}"))
            .await
            .unwrap_or_else(|e| panic!("acknowledged write {s} lost: {e}"));
        assert_eq!(per_site.get(s), Some(&1), "one event for {s}");
    }
    assert!(per_site.values().all(|n| *n == 1), "no event twice");
    let in_flight = format!("w{attempted}");
    let kept = admin_b
        .get::<Value>(&format!("/sites/{in_flight}"))
        .await
        .is_ok();
    assert_eq!(
        kept,
        per_site.contains_key(&in_flight),
        "in flight: both or neither"
    );

    // B leads within seconds; its sweep marks the silent node down, once.
    let t = Instant::now();
    while metric(&http, &b.url, "slicelab_central_leader").await != Some(1.0) {
        assert!(t.elapsed() < Duration::from_secs(10), "B takes the lead");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("B leads {:?} after A was killed", killed.elapsed());
    let t = Instant::now();
    loop {
        let n: Node = admin_b
            .get(&format!("/nodes/{}", hosts[NODES]))
            .await
            .expect("node");
        if n.status == NodeStatus::Down {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the silent node goes down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ev: Page<Event> = admin_b
        .get(&format!("/events?object={}&object_type=node", hosts[NODES]))
        .await
        .expect("events");
    let downs = ev.items.iter().filter(|e| e.action == "node.down").count();
    assert_eq!(downs, 1, "{:?}", ev.items);

    // The CLI, still listing A first, carries on through B: a slice added with it runs on all
    // three nodes — node 2 too, which polled A and moved to B by itself. No node went down.
    for args in [
        &["slice", "add", "rep_two", "--description", "after the kill"][..],
        &[
            "slice",
            "add-nodes",
            "rep_two",
            &nodes[0],
            &nodes[1],
            &nodes[2],
        ],
    ] {
        let o = cli(&config, args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let took = runs_on(&admin_b, "rep_two", nodes, Duration::from_secs(20)).await;
    println!("rep_two added through the CLI (A dead) runs on the 3 nodes in {took:?}");
    for h in nodes {
        let n: Node = admin_b.get(&format!("/nodes/{h}")).await.expect("node");
        assert_eq!(n.status, NodeStatus::Up, "{h}");
    }
    // The web on B: the login page over the same TLS.
    let page = http
        .get(format!("{}/login", b.url))
        .send()
        .await
        .expect("web on B");
    assert_eq!(page.status(), 200);

    drop(managers);
    drop(b);
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;
}

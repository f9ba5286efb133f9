//! End to end: a real central in this process (loopback, temporary SQLite), driven through the
//! built `slicelab` binary exactly as a person or a script would.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

const ADMIN: &str = "admin@localhost";
const ADMIN_PASSWORD: &str = "correct horse battery";

struct Env {
    central: String,
    config: PathBuf,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Env {
    /// Runs `slicelab ARGS` with `stdin`, the test's config file and no inherited SLICELAB_*.
    async fn run(&self, args: &[&str], stdin: Option<&str>, extra_env: &[(&str, &str)]) -> Out {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slicelab"));
        cmd.args(args)
            .env("SLICELAB_CONFIG", &self.config)
            .env_remove("SLICELAB_CENTRAL")
            .env_remove("SLICELAB_TOKEN")
            .env_remove("SLICELAB_OUTPUT")
            .env_remove("SLICELAB_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let stdin = stdin.map(str::to_string);
        let label = args.join(" ");
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().expect("spawn slicelab");
            if let Some(s) = stdin {
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(s.as_bytes())
                    .expect("write stdin");
            }
            drop(child.stdin.take());
            let o = child.wait_with_output().expect("wait");
            let out = Out {
                code: o.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            };
            eprintln!(
                "$ slicelab {label}\n-> {}\n{}{}",
                out.code, out.stdout, out.stderr
            );
            out
        })
        .await
        .expect("join")
    }

    /// Runs and expects success.
    async fn ok(&self, args: &[&str]) -> Out {
        let o = self.run(args, None, &[]).await;
        assert_eq!(o.code, 0, "slicelab {args:?} failed: {}", o.stderr);
        o
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        self.ok(&a).await.json()
    }

    async fn code(&self, args: &[&str]) -> (i32, String) {
        let o = self.run(args, None, &[]).await;
        (o.code, o.stderr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_against_a_real_central() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = slicelab_central::start(slicelab_central::Config {
        db_url: format!("sqlite://{}/c.db", dir.path().display()),
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_email: ADMIN.into(),
        admin_password: Some(ADMIN_PASSWORD.into()),
        tls: None,
    })
    .await
    .expect("central starts");
    assert!(running.addr.ip().is_loopback());
    let env = Env {
        central: format!("http://{}", running.addr),
        config: dir.path().join("cli").join("config.toml"),
    };

    // Not logged in yet.
    let (code, err) = env.code(&["site", "list"]).await;
    assert_eq!(code, 3, "{err}");

    // A wrong password is refused with the auth exit code.
    let o = env
        .run(
            &[
                "login",
                "--central",
                &env.central,
                "--email",
                ADMIN,
                "--password-stdin",
            ],
            Some("wrong password\n"),
            &[],
        )
        .await;
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stderr.starts_with("error: "), "{}", o.stderr);

    let o = env
        .run(
            &[
                "login",
                "--central",
                &env.central,
                "--email",
                ADMIN,
                "--password-stdin",
            ],
            Some(&format!("{ADMIN_PASSWORD}\n")),
            &[],
        )
        .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mode = std::fs::metadata(&env.config)
        .expect("config written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let cfg = std::fs::read_to_string(&env.config).expect("config");
    assert!(cfg.contains(&env.central) && cfg.contains("token"), "{cfg}");

    assert_eq!(env.json(&["whoami"]).await["email"], ADMIN);

    // Registry objects.
    let site = env
        .json(&[
            "site",
            "add",
            "princeton",
            "--name",
            "Princeton University",
            "--lat",
            "40.35",
            "--lon",
            "-74.65",
        ])
        .await;
    assert_eq!(site["login_base"], "princeton");
    assert_eq!(site["longitude"], -74.65);
    let (code, err) = env
        .code(&["site", "add", "princeton", "--name", "again"])
        .await;
    assert_eq!(code, 5, "duplicate: {err}");
    let (code, err) = env.code(&["site", "show", "nosuch"]).await;
    assert_eq!(code, 4, "{err}");

    let person = env
        .json(&[
            "person",
            "add",
            "alice@example.org",
            "--first",
            "Alice",
            "--last",
            "Smith",
            "--role",
            "pi",
            "--site",
            "princeton",
        ])
        .await;
    assert_eq!(person["roles"], serde_json::json!(["pi"]));
    assert_eq!(person["sites"], serde_json::json!(["princeton"]));

    let nk = env
        .json(&[
            "node",
            "add",
            "node1.princeton.edu",
            "--site",
            "princeton",
            "--cpu",
            "4",
            "--region",
            "us-east",
        ])
        .await;
    assert_eq!(nk["node"]["hostname"], "node1.princeton.edu");
    assert!(!nk["node_key"].as_str().unwrap_or_default().is_empty());
    // The human form prints the key and the exact command to run the node manager.
    let text = env
        .ok(&["node", "rekey", "node1.princeton.edu"])
        .await
        .stdout;
    assert!(
        text.contains(&format!("slicelab node --central {} --key ", env.central)),
        "{text}"
    );

    let slice = env
        .json(&["slice", "add", "princeton_demo", "--description", "a demo"])
        .await;
    assert_eq!(slice["site"], "princeton");
    env.ok(&[
        "slice",
        "add-nodes",
        "princeton_demo",
        "node1.princeton.edu",
    ])
    .await;
    env.ok(&["slice", "add-person", "princeton_demo", "alice@example.org"])
        .await;
    env.ok(&["slice", "tag", "set", "princeton_demo", "mem_max", "512M"])
        .await;
    env.ok(&[
        "slice",
        "tag",
        "set",
        "princeton_demo",
        "cpu_pct",
        "50",
        "--node",
        "node1.princeton.edu",
    ])
    .await;
    let (code, err) = env
        .code(&["slice", "tag", "set", "princeton_demo", "mem_max", "lots"])
        .await;
    assert_eq!(code, 5, "{err}");

    let show = env.json(&["slice", "show", "princeton_demo"]).await;
    assert_eq!(show["name"], "princeton_demo");
    assert_eq!(show["nodes"], serde_json::json!(["node1.princeton.edu"]));
    assert_eq!(show["persons"], serde_json::json!(["alice@example.org"]));
    let tags = show["tags"].as_array().expect("tags");
    assert!(tags
        .iter()
        .any(|t| t["name"] == "mem_max" && t["value"] == "512M" && t["node"].is_null()));
    assert!(tags
        .iter()
        .any(|t| t["name"] == "cpu_pct" && t["node"] == "node1.princeton.edu"));
    assert!(show["slivers"].as_array().is_some());

    let listed = env
        .json(&["slice", "list", "--node", "node1.princeton.edu"])
        .await;
    assert_eq!(listed["total"], 1);
    let human = env.ok(&["slice", "list"]).await.stdout;
    assert!(human.starts_with("ID  NAME"), "{human}");
    assert!(human.contains("princeton_demo"), "{human}");

    let renewed = env
        .json(&["slice", "renew", "princeton_demo", "--days", "14"])
        .await;
    let expires = renewed["expires"].as_i64().expect("expires");
    let now = slicelab::timefmt::now();
    assert!(
        (expires - (now + 14 * 86_400)).abs() < 120,
        "{expires} vs {now}"
    );

    // The audit log shows the changes.
    let events = env.json(&["events", "--all"]).await;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "site.create",
        "person.create",
        "node.create",
        "slice.create",
        "slice.add_nodes",
        "slice.tag_set",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let filtered = env
        .json(&[
            "events",
            "--object-type",
            "slice",
            "--object",
            "princeton_demo",
            "--since",
            "1h",
        ])
        .await;
    assert!(filtered["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|e| e["object_type"] == "slice"));

    // Removing things.
    env.ok(&[
        "slice",
        "remove-nodes",
        "princeton_demo",
        "node1.princeton.edu",
    ])
    .await;
    env.ok(&[
        "slice",
        "tag",
        "delete",
        "princeton_demo",
        "cpu_pct",
        "--node",
        "node1.princeton.edu",
    ])
    .await;
    let tags = env.json(&["slice", "tag", "list", "princeton_demo"]).await;
    assert_eq!(tags.as_array().map(Vec::len), Some(1));
    env.ok(&["slice", "delete", "princeton_demo"]).await;
    let (code, _) = env.code(&["slice", "show", "princeton_demo"]).await;
    assert_eq!(code, 4);

    // The default allocation: shown, set platform-wide and per node, refused for a non-limit, unset.
    let has = |d: &Value, list: &str, name: &str, value: &str| {
        d[list]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["name"] == name && t["value"] == value))
    };
    let d = env.json(&["defaults", "show"]).await;
    assert!(has(&d, "platform", "mem_max", "1G"), "{d}");
    env.ok(&["defaults", "set", "mem_max", "2G"]).await;
    env.ok(&[
        "defaults",
        "set",
        "pids_max",
        "4096",
        "--node",
        "node1.princeton.edu",
    ])
    .await;
    let d = env.json(&["defaults", "show"]).await;
    assert!(has(&d, "platform", "mem_max", "2G"), "{d}");
    assert!(has(&d, "nodes", "pids_max", "4096"), "{d}");
    let (code, err) = env.code(&["defaults", "set", "initscript", "echo"]).await;
    assert!(
        code != 0 && err.contains("cannot have a default"),
        "{code} {err}"
    );
    env.ok(&[
        "defaults",
        "unset",
        "pids_max",
        "--node",
        "node1.princeton.edu",
    ])
    .await;
    let d = env.json(&["defaults", "show"]).await;
    assert_eq!(d["nodes"].as_array().map(Vec::len), Some(0), "{d}");

    // Environment overrides: a bad token is refused; an unreachable central is exit 6.
    let o = env
        .run(&["whoami"], None, &[("SLICELAB_TOKEN", "bogus")])
        .await;
    assert_eq!(o.code, 3, "{}", o.stderr);
    let o = env
        .run(
            &["whoami"],
            None,
            &[("SLICELAB_CENTRAL", "http://127.0.0.1:1")],
        )
        .await;
    assert_eq!(o.code, 6, "{}", o.stderr);

    // Logging out forgets the token.
    env.ok(&["logout"]).await;
    let (code, _) = env.code(&["whoami"]).await;
    assert_eq!(code, 3);

    running.shutdown().await;
}

/// The broker, leases, usage and the public lookup, through the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_leases_usage_and_lookup_from_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = slicelab_central::start(slicelab_central::Config {
        db_url: format!("sqlite://{}/c.db", dir.path().display()),
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_email: ADMIN.into(),
        admin_password: Some(ADMIN_PASSWORD.into()),
        tls: None,
    })
    .await
    .expect("central starts");
    let env = Env {
        central: format!("http://{}", running.addr),
        config: dir.path().join("cli").join("config.toml"),
    };
    let o = env
        .run(
            &[
                "login",
                "--central",
                &env.central,
                "--email",
                ADMIN,
                "--password-stdin",
            ],
            Some(&format!("{ADMIN_PASSWORD}\n")),
            &[],
        )
        .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    env.ok(&["site", "add", "lab", "--name", "Lab"]).await;
    let mut keys = Vec::new();
    for (host, reservable) in [("a.lab.test", false), ("r.lab.test", true)] {
        let mut args = vec!["node", "add", host, "--site", "lab"];
        if reservable {
            args.push("--reservable");
        }
        let nk = env.json(&args).await;
        keys.push(nk["node_key"].as_str().expect("key").to_string());
    }
    env.ok(&["slice", "add", "lab_exp", "--description", "experiment"])
        .await;

    // The broker finds no live node yet and says why.
    let (code, err) = env
        .code(&["slice", "add-nodes", "lab_exp", "--select", "count=1"])
        .await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("live nodes (left 0)"), "{err}");
    // A node that reports becomes live; now the broker picks it.
    let node = slicelab_client::Client::new(&env.central, Some(keys[0].clone()));
    node.report(&slicelab_model::NodeReport {
        seq: 1,
        slivers: vec![],
        health: None,
        actions: Vec::new(),
    })
    .await
    .expect("report");
    let o = env
        .ok(&["slice", "add-nodes", "lab_exp", "--select", "count=1"])
        .await;
    assert!(o.stderr.contains("a.lab.test"), "{}", o.stderr);

    // Leases: one on the reservable node, an overlapping one refused.
    let l = env
        .json(&["lease", "add", "lab_exp", "r.lab.test", "--duration", "1h"])
        .await;
    assert_eq!(l["node"], "r.lab.test");
    let (code, err) = env
        .code(&["lease", "add", "lab_exp", "r.lab.test", "--duration", "10m"])
        .await;
    assert_eq!(code, 5, "{err}");
    let leases = env.json(&["lease", "list", "--node", "r.lab.test"]).await;
    assert_eq!(leases.as_array().map(Vec::len), Some(1));

    // Usage the node reported shows up in `slicelab usage`.
    let now = slicelab_model::time::now();
    let batch = slicelab_model::UsageBatch {
        seq: 1,
        samples: vec![slicelab_model::UsageSample {
            slice: Some("lab_exp".into()),
            time: now - 30,
            interval_s: 10,
            cpu_s: 4.5,
            mem_bytes: 1 << 20,
            disk_bytes: 0,
            tx_bytes: 123_456,
            rx_bytes: 1000,
            tx_pkts: 100,
            rx_pkts: 10,
            spoofed_pkts: 0,
        }],
    };
    let _: Value = node.post("/node/usage", &batch).await.expect("usage");
    let u = env.json(&["usage", "lab_exp", "--since", "1h"]).await;
    assert_eq!(u["total_tx_bytes"], 123_456);
    let top = env.json(&["usage", "--top", "--by", "tx"]).await;
    assert_eq!(top[0]["slice"], "lab_exp");
    let o = env.ok(&["usage", "lab_exp"]).await;
    assert!(o.stdout.contains("4.5 CPU-s"), "{}", o.stdout);

    // The public lookup needs no login.
    let o = env
        .run(
            &[
                "lookup",
                "--node",
                "a.lab.test",
                "--remote",
                "203.0.113.1",
                "--central",
                &env.central,
            ],
            None,
            &[("SLICELAB_CONFIG", "/nonexistent/config.toml")],
        )
        .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("No slice on a.lab.test"), "{}", o.stdout);
    let flows = env.json(&["flows", "--slice", "lab_exp"]).await;
    assert_eq!(flows.as_array().map(Vec::len), Some(0));
    running.shutdown().await;
}

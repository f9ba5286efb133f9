//! The local testbed end to end, as a user meets it: `slicelab up --nodes 4`, the real OpenSSH
//! client logs into slivers on two nodes, `slicelab exec` runs everywhere, `slicelab down`
//! leaves nothing behind (namespaces, veths, bridge, mounts, cgroups, nft tables, processes,
//! /etc/hosts lines). Root only; says SKIPPED otherwise.

mod testbed;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use testbed::{sh, ssh, text, up_lock, Leftovers, Testbed};

fn nft_tables() -> BTreeSet<String> {
    sh("nft list tables").lines().map(String::from).collect()
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
    if Leftovers::other_testbed_running() {
        eprintln!(
            "SKIPPED up_ssh_exec_down_leaves_nothing: a `slicelab up` testbed is running here"
        );
        return;
    }
    let tables_before = nft_tables();
    let tb = Testbed::new("slicelab-up-test");
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
    assert_eq!(Leftovers::take(&dirp), Leftovers::default());
    let new_tables: Vec<String> = nft_tables()
        .difference(&tables_before)
        // Tables of other test binaries' node instances, not ours.
        .filter(|t| !t.contains("test"))
        .cloned()
        .collect();
    assert!(new_tables.is_empty(), "nft tables left: {new_tables:?}");
    eprintln!("up → ssh → exec → down took {:?}", t0.elapsed());
}

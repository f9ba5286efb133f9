//! The packaging's files (`dist/`) agree with the command line: the env examples name every
//! variable the daemons read and none they do not, the units keep what slivers depend on, and
//! `slicelab-man` writes a page per subcommand. (The package itself: scripts/check-packaging.sh.)

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use clap::CommandFactory;

const NODE_ENV: &str = include_str!("../../../dist/etc/node.env.example");
const CENTRAL_ENV: &str = include_str!("../../../dist/etc/central.env.example");
const NODE_UNIT: &str = include_str!("../../../dist/systemd/slicelab-node.service");
const CENTRAL_UNIT: &str = include_str!("../../../dist/systemd/slicelab-central.service");

/// The environment variables of a subcommand's own flags (not the global `-o`).
fn clap_env(sub: &str) -> BTreeSet<String> {
    let root = slicelab::Cli::command();
    let cmd = root
        .find_subcommand(sub)
        .unwrap_or_else(|| panic!("no `slicelab {sub}`"));
    cmd.get_arguments()
        .filter(|a| !a.is_global_set())
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

/// Variables set (or shown commented out) in an env example: `VAR=` or `#VAR=` at a line's start.
fn example_vars(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.strip_prefix('#').unwrap_or(l))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| k.starts_with("SLICELAB_") && !k.contains(' '))
        .map(str::to_owned)
        .collect()
}

/// Read outside clap: the log filter (main.rs), flags without a variable (the node unit's
/// ExecStart), the admin's first password (central).
const EXTRA_NODE: &[&str] = &["SLICELAB_LOG", "SLICELAB_NODE_ARGS"];
const EXTRA_CENTRAL: &[&str] = &["SLICELAB_LOG", "SLICELAB_ADMIN_PASSWORD"];

fn assert_documents(example: &str, sub: &str, extra: &[&str]) {
    let flags = clap_env(sub);
    let named = example_vars(example);
    for v in &flags {
        assert!(named.contains(v), "{sub}.env.example does not name {v}");
    }
    for v in &named {
        assert!(
            flags.contains(v) || extra.contains(&v.as_str()),
            "{sub}.env.example names {v}, which `slicelab {sub}` does not read"
        );
    }
}

#[test]
fn node_env_example_names_every_variable_of_the_node_manager() {
    assert_documents(NODE_ENV, "node", EXTRA_NODE);
    for required in ["SLICELAB_CENTRAL=", "SLICELAB_NODE_KEY="] {
        assert!(
            NODE_ENV.lines().any(|l| l.starts_with(required)),
            "{required} is not set in node.env.example"
        );
    }
}

#[test]
fn central_env_example_names_every_variable_of_central() {
    assert_documents(CENTRAL_ENV, "central", EXTRA_CENTRAL);
}

/// The unit's lines, without comments.
fn settings(unit: &str) -> Vec<&str> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn node_unit_signals_only_the_daemon_and_reads_node_env() {
    let s = settings(NODE_UNIT);
    for want in [
        "KillMode=process",
        "EnvironmentFile=/etc/slicelab/node.env",
        "ExecStart=/usr/bin/slicelab node $SLICELAB_NODE_ARGS",
        "Restart=on-failure",
    ] {
        assert!(s.contains(&want), "slicelab-node.service lacks {want}");
    }
    // A private mount namespace would hide the slivers' mounts; these are inherited by slivers.
    for banned in [
        "ProtectSystem",
        "PrivateTmp",
        "ProtectHome",
        "NoNewPrivileges",
        "SystemCallFilter",
        "Delegate",
    ] {
        assert!(
            !s.iter().any(|l| l.starts_with(banned)),
            "slicelab-node.service sets {banned}: see dist/README.md"
        );
    }
}

#[test]
fn central_unit_runs_unprivileged_in_its_own_state_directory() {
    let s = settings(CENTRAL_UNIT);
    for want in [
        "ExecStart=/usr/bin/slicelab central",
        "User=slicelab",
        "StateDirectory=slicelab/central",
        "EnvironmentFile=-/etc/slicelab/central.env",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(s.contains(&want), "slicelab-central.service lacks {want}");
    }
    let db = s
        .iter()
        .find_map(|l| l.strip_prefix("Environment=SLICELAB_DB=sqlite://"))
        .expect("the unit sets SLICELAB_DB");
    assert!(
        db.starts_with("/var/lib/slicelab/central/"),
        "the database must be in the state directory: {db}"
    );
}

#[test]
fn slicelab_man_writes_a_page_per_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_slicelab-man"))
        .arg(dir.path())
        .output()
        .expect("run slicelab-man");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = |name: &str| {
        std::fs::read_to_string(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    assert!(
        page("slicelab.1").contains(".TH slicelab 1"),
        "slicelab.1 is not a man page"
    );
    let node = page("slicelab-node.1");
    for v in [
        "SLICELAB_CENTRAL",
        "SLICELAB_NODE_KEY",
        "SLICELAB_STATE_DIR",
    ] {
        assert!(node.contains(v), "slicelab-node.1 does not mention {v}");
    }
    for sub in [
        "slicelab-central.1",
        "slicelab-node-add.1",
        "slicelab-slice-tag-set.1",
    ] {
        assert!(Path::new(&dir.path().join(sub)).exists(), "{sub} missing");
    }
    let usage = Command::new(env!("CARGO_BIN_EXE_slicelab-man"))
        .output()
        .expect("run slicelab-man");
    assert!(!usage.status.success(), "no DIR must be a usage error");
}

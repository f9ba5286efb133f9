//! Command-line parsing: no central needed.

use clap::{CommandFactory, Parser};
use slicelab::cli::*;
use slicelab_model::{BootState, Role, TagName};

fn parse(args: &[&str]) -> Cli {
    let mut v = vec!["slicelab"];
    v.extend_from_slice(args);
    match Cli::try_parse_from(v) {
        Ok(c) => c,
        Err(e) => panic!("{args:?} should parse: {e}"),
    }
}

fn parse_err(args: &[&str]) -> clap::Error {
    let mut v = vec!["slicelab"];
    v.extend_from_slice(args);
    Cli::try_parse_from(v).expect_err("should not parse")
}

#[test]
fn clap_tree_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn node_daemon_flags_without_subcommand() {
    let cli = parse(&[
        "node",
        "--central",
        "http://127.0.0.1:8080",
        "--key",
        "K",
        "--state-dir",
        "/tmp/n",
    ]);
    let Command::Node(n) = cli.command else {
        panic!("not node")
    };
    assert!(n.command.is_none());
    assert_eq!(n.daemon.central.as_deref(), Some("http://127.0.0.1:8080"));
    assert_eq!(n.daemon.key.as_deref(), Some("K"));
    assert_eq!(n.daemon.state_dir, std::path::PathBuf::from("/tmp/n"));
    assert!(parse(&["node", "--central", "http://x", "--key", "K"])
        .command
        .is_daemon());
}

#[test]
fn node_daemon_key_file() {
    let cli = parse(&[
        "node",
        "--central",
        "http://x",
        "--key-file",
        "/etc/slicelab/key",
    ]);
    let Command::Node(n) = cli.command else {
        panic!("not node")
    };
    assert_eq!(
        n.daemon.key_file.as_deref(),
        Some(std::path::Path::new("/etc/slicelab/key"))
    );
    // --key and --key-file together are ambiguous.
    parse_err(&[
        "node",
        "--central",
        "http://x",
        "--key",
        "K",
        "--key-file",
        "f",
    ]);
}

#[test]
fn node_registry_subcommands() {
    let cli = parse(&[
        "node",
        "add",
        "h1.example.org",
        "--site",
        "s",
        "--cpu",
        "4",
        "--boot-state",
        "safeboot",
    ]);
    let Command::Node(n) = cli.command else {
        panic!("not node")
    };
    match n.command {
        Some(NodeSub::Add {
            hostname,
            site,
            cpu,
            boot_state,
            ..
        }) => {
            assert_eq!(hostname, "h1.example.org");
            assert_eq!(site, "s");
            assert_eq!(cpu, Some(4));
            assert_eq!(boot_state, Some(BootState::Safeboot));
        }
        other => panic!("{other:?}"),
    }
    assert!(!parse(&["node", "list", "--site", "s"]).command.is_daemon());
    parse(&["node", "show", "h1"]);
    parse(&["node", "update", "h1", "--boot-state", "disabled"]);
    parse(&["node", "rekey", "h1"]);
    parse(&["node", "slivers", "h1"]);
    parse(&["node", "delete", "h1"]);
    parse(&["node", "cleanup", "--state-dir", "/tmp/x"]);
    parse_err(&["node", "update", "h1", "--boot-state", "sleeping"]);
}

#[test]
fn node_daemon_flags_and_subcommand_conflict() {
    parse_err(&["node", "--central", "http://x", "list"]);
    // Without a subcommand the daemon needs its flags.
    std::env::remove_var("SLICELAB_CENTRAL");
    std::env::remove_var("SLICELAB_NODE_KEY");
    parse_err(&["node", "--state-dir", "/tmp"]);
}

#[test]
fn node_help_explains_both_uses() {
    let mut cmd = Cli::command();
    let node = cmd.find_subcommand_mut("node").expect("node");
    let help = node.render_long_help().to_string();
    assert!(help.contains("--central"), "{help}");
    assert!(help.contains("add"), "{help}");
    assert!(help.contains("node manager"), "{help}");
    assert!(help.contains("Registry commands"), "{help}");
}

#[test]
fn output_flag_is_global() {
    assert_eq!(parse(&["site", "list", "-o", "json"]).output, Output::Json);
    assert_eq!(
        parse(&["-o", "json", "slice", "show", "x_y"]).output,
        Output::Json
    );
    assert_eq!(
        parse(&["events", "--output", "table"]).output,
        Output::Table
    );
    parse_err(&["site", "list", "-o", "yaml"]);
}

#[test]
fn person_roles_and_sites_repeat() {
    let cli = parse(&[
        "person", "add", "a@b.org", "--first", "A", "--last", "B", "--role", "pi", "--role",
        "user", "--site", "s1", "--site", "s2",
    ]);
    match cli.command {
        Command::Person(PersonCmd::Add { roles, sites, .. }) => {
            assert_eq!(roles, vec![Role::Pi, Role::User]);
            assert_eq!(sites, vec!["s1", "s2"]);
        }
        other => panic!("{other:?}"),
    }
    // A role is required and must be known.
    parse_err(&["person", "add", "a@b.org", "--first", "A", "--last", "B"]);
    parse_err(&[
        "person", "add", "a@b.org", "--first", "A", "--last", "B", "--role", "king",
    ]);
}

#[test]
fn site_add_with_negative_coordinates() {
    let cli = parse(&[
        "site",
        "add",
        "uct",
        "--name",
        "Cape Town",
        "--lat",
        "-33.96",
        "--lon",
        "18.46",
    ]);
    match cli.command {
        Command::Site(SiteCmd::Add { lat, lon, .. }) => {
            assert_eq!(lat, Some(-33.96));
            assert_eq!(lon, Some(18.46));
        }
        other => panic!("{other:?}"),
    }
    parse_err(&["site", "add", "uct", "--name", "x", "--lat", "1"]); // --lat needs --lon
    parse_err(&["site", "update", "uct", "--enable", "--disable"]);
}

#[test]
fn node_update_sets_or_clears_the_bwlimit() {
    let bw = |args: &[&str]| match parse(args).command {
        Command::Node(NodeCmd {
            command: Some(NodeSub::Update { bwlimit, .. }),
            ..
        }) => bwlimit,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        bw(&["node", "update", "h1", "--bwlimit", "30mbit"]),
        Some(Bwlimit(Some(30_000_000)))
    );
    assert_eq!(
        bw(&["node", "update", "h1", "--bwlimit", "none"]),
        Some(Bwlimit(None))
    );
    assert_eq!(bw(&["node", "update", "h1", "--region", "eu"]), None);
    parse_err(&["node", "update", "h1", "--bwlimit", "fast"]);
    parse_err(&["node", "update", "h1", "--bwlimit", "10kbit"]);
    match parse(&[
        "node",
        "--central",
        "http://c",
        "--key",
        "k",
        "--uplink",
        "eth1",
    ])
    .command
    {
        Command::Node(NodeCmd { daemon, .. }) => assert_eq!(daemon.uplink.as_deref(), Some("eth1")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn site_update_sets_the_image_quota_in_mib() {
    match parse(&["site", "update", "pl", "--image-quota-mb", "512"]).command {
        Command::Site(SiteCmd::Update {
            site,
            image_quota_mb,
            max_slices,
            ..
        }) => {
            assert_eq!(site, "pl");
            assert_eq!(image_quota_mb, Some(512));
            assert_eq!(max_slices, None);
        }
        other => panic!("{other:?}"),
    }
    match parse(&["site", "update", "pl", "--max-slices", "3"]).command {
        Command::Site(SiteCmd::Update { image_quota_mb, .. }) => {
            assert_eq!(image_quota_mb, None)
        }
        other => panic!("{other:?}"),
    }
    parse_err(&["site", "update", "pl", "--image-quota-mb", "lots"]);
    parse_err(&["site", "update", "pl", "--image-quota-mb"]);
    // Sites are created with the default quota; only an update changes it.
    parse_err(&["site", "add", "pl", "--name", "x", "--image-quota-mb", "1"]);
}

#[test]
fn slice_commands() {
    parse(&["slice", "add", "s_demo", "--description", "d"]);
    match parse(&["slice", "add-nodes", "s_demo", "n1", "n2"]).command {
        Command::Slice(SliceCmd::AddNodes {
            slice,
            nodes,
            select,
        }) => {
            assert_eq!(slice, "s_demo");
            assert_eq!(nodes, vec!["n1", "n2"]);
            assert_eq!(select, None);
        }
        other => panic!("{other:?}"),
    }
    parse_err(&["slice", "add-nodes", "s_demo"]);
    match parse(&[
        "slice",
        "add-nodes",
        "s_demo",
        "--select",
        "count=2, distinct=site",
    ])
    .command
    {
        Command::Slice(SliceCmd::AddNodes { nodes, select, .. }) => {
            assert!(nodes.is_empty());
            assert_eq!(select.as_deref(), Some("count=2, distinct=site"));
        }
        other => panic!("{other:?}"),
    }
    parse_err(&["slice", "add-nodes", "s_demo", "n1", "--select", "count=1"]);
    parse(&["slice", "remove-nodes", "s_demo", "n1"]);
    parse(&["slice", "add-person", "s_demo", "a@b.org"]);
    parse(&["slice", "remove-person", "s_demo", "a@b.org"]);
    parse(&["slice", "renew", "s_demo", "--days", "14"]);
    parse(&[
        "slice",
        "renew",
        "s_demo",
        "--expires",
        "2026-11-26T04:13:00Z",
    ]);
    parse_err(&["slice", "renew", "s_demo"]);
    parse_err(&["slice", "renew", "s_demo", "--days", "1", "--expires", "1"]);
    match parse(&[
        "slice", "tag", "set", "s_demo", "mem_max", "512M", "--node", "n1",
    ])
    .command
    {
        Command::Slice(SliceCmd::Tag(SliceTagCmd::Set {
            tag, value, node, ..
        })) => {
            assert_eq!(tag, TagName::MemMax);
            assert_eq!(value, "512M");
            assert_eq!(node.as_deref(), Some("n1"));
        }
        other => panic!("{other:?}"),
    }
    parse_err(&["slice", "tag", "set", "s_demo", "colour", "blue"]);
    parse(&["slice", "tag", "list", "s_demo"]);
    parse(&["slice", "tag", "delete", "s_demo", "image"]);
    parse(&["slice", "slivers", "s_demo"]);
    parse(&[
        "slice", "list", "--site", "s", "--person", "a@b.org", "--node", "n1", "--all",
    ]);
    parse_err(&["slice", "list", "--all", "--limit", "5"]);
}

#[test]
fn misc_commands() {
    parse(&[
        "login",
        "--central",
        "http://127.0.0.1:1",
        "--email",
        "a@b.org",
        "--password-stdin",
    ]);
    parse(&["logout"]);
    parse(&["whoami", "-o", "json"]);
    parse(&["token", "create", "ci", "--days", "30"]);
    parse(&["token", "list"]);
    parse(&["token", "delete", "3"]);
    parse(&["key", "add", "--person", "a@b.org", "-"]);
    parse(&["key", "list"]);
    parse(&["key", "delete", "7"]);
    parse(&[
        "events",
        "--object-type",
        "slice",
        "--object",
        "s_demo",
        "--actor",
        "system",
        "--since",
        "2h",
        "--limit",
        "5",
    ]);
    parse(&["completions", "bash"]);
    let cli = parse(&[
        "central",
        "--db",
        "sqlite:///tmp/c.db",
        "--listen",
        "127.0.0.1:0",
        "--admin-email",
        "root@x.org",
        "--blob-dir",
        "/srv/blobs",
    ]);
    assert!(cli.command.is_daemon());
    match cli.command {
        Command::Central(a) => {
            assert_eq!(a.db.as_deref(), Some("sqlite:///tmp/c.db"));
            assert_eq!(a.listen.port(), 0);
            assert_eq!(a.admin_email, "root@x.org");
            assert_eq!(a.blob_dir, Some(std::path::PathBuf::from("/srv/blobs")));
        }
        other => panic!("{other:?}"),
    }
    parse_err(&["central", "--listen", "not-an-address"]);
}

#[test]
fn completions_generate_for_every_shell() {
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "slicelab", &mut buf);
        let text = String::from_utf8(buf).expect("utf-8");
        assert!(text.contains("add-nodes"), "{shell:?}");
    }
}

#[test]
fn node_manager_advanced_names() {
    let cli = parse(&[
        "node",
        "--central",
        "http://x",
        "--key",
        "K",
        "--gateway-if",
        "slgw1",
        "--subnet",
        "10.78.1.0",
        "--nft-table",
        "sl1",
        "--cgroup-parent",
        "slicelab/n1",
    ]);
    let Command::Node(n) = cli.command else {
        panic!("not node")
    };
    let names = slicelab::commands::node_names(&n.daemon.names);
    assert_eq!(names.gateway_if, "slgw1");
    assert_eq!(names.subnet, std::net::Ipv4Addr::new(10, 78, 1, 0));
    assert_eq!(names.nft_table, "sl1");
    assert_eq!(names.cgroup_parent, "slicelab/n1");
    // Unset flags keep the node manager's defaults.
    let cli = parse(&["node", "cleanup", "--purge"]);
    let Command::Node(n) = cli.command else {
        panic!("not node")
    };
    let Some(NodeSub::Cleanup(c)) = n.command else {
        panic!("not cleanup")
    };
    assert!(c.purge);
    assert_eq!(
        slicelab::commands::node_names(&c.names),
        slicelab_node::NodeNames::default()
    );
}

#[test]
fn image_import_pull_build_publish_at_central() {
    let cli = parse(&["image", "import", "debian", "/srv/rootfs.tar.zst"]);
    assert!(!cli.command.is_daemon());
    match cli.command {
        Command::Image(ImageCmd::Import {
            name,
            file,
            publish,
        }) => {
            assert_eq!(name, "debian");
            assert_eq!(file, std::path::PathBuf::from("/srv/rootfs.tar.zst"));
            assert_eq!(publish.visibility, VisibilityArg::Site);
            assert_eq!(publish.site, None);
        }
        other => panic!("{other:?}"),
    }
    parse_err(&["image", "import", "debian"]);
    match parse(&[
        "image",
        "pull",
        "bb",
        "127.0.0.1:5000/bb:v1",
        "--insecure",
        "--visibility",
        "platform",
    ])
    .command
    {
        Command::Image(ImageCmd::Pull {
            reference,
            insecure,
            user,
            publish,
            ..
        }) => {
            assert_eq!(reference, "127.0.0.1:5000/bb:v1");
            assert!(insecure);
            assert_eq!(user, None);
            assert_eq!(publish.visibility, VisibilityArg::Platform);
        }
        other => panic!("{other:?}"),
    }
    // A user needs a password on stdin, and the other way round.
    parse_err(&["image", "pull", "bb", "bb:1", "--user", "me"]);
    parse_err(&["image", "pull", "bb", "bb:1", "--password-stdin"]);
    match parse(&[
        "image",
        "build",
        "py",
        "--debian",
        "bookworm",
        "--include",
        "python3,iproute2",
        "--site",
        "pl",
    ])
    .command
    {
        Command::Image(ImageCmd::Build {
            debian,
            include,
            publish,
            ..
        }) => {
            assert_eq!(debian, "bookworm");
            assert_eq!(include, ["python3", "iproute2"]);
            assert_eq!(publish.site.as_deref(), Some("pl"));
        }
        other => panic!("{other:?}"),
    }
    parse_err(&["image", "build", "py"]);
}

#[test]
fn image_list_show_delete_talk_to_central() {
    let cli = parse(&["-o", "json", "image", "list"]);
    assert_eq!(cli.output, Output::Json);
    assert!(!cli.command.is_daemon());
    assert!(matches!(cli.command, Command::Image(ImageCmd::List)));
    assert!(matches!(
        parse(&["image", "ls"]).command,
        Command::Image(ImageCmd::List)
    ));
    match parse(&["image", "show", "debian-12"]).command {
        Command::Image(ImageCmd::Show { name }) => assert_eq!(name, "debian-12"),
        other => panic!("{other:?}"),
    }
    match parse(&["image", "rm", "debian-12"]).command {
        Command::Image(ImageCmd::Delete { name }) => assert_eq!(name, "debian-12"),
        other => panic!("{other:?}"),
    }
    parse_err(&["image", "show"]);
    parse_err(&["image", "delete"]);
}

#[test]
fn traffic_flags() {
    let cli = parse(&[
        "traffic",
        "demo",
        "--from",
        "n1",
        "--to",
        "n2",
        "--rate",
        "20mbit",
        "--duration",
        "5s",
        "--pattern",
        "on-off",
        "--size",
        "1000",
        "-o",
        "json",
    ]);
    assert_eq!(cli.output, Output::Json);
    match cli.command {
        Command::Traffic(a) => {
            assert_eq!(
                (a.slice.as_str(), a.from.as_str(), a.to.as_str()),
                ("demo", "n1", "n2")
            );
            assert_eq!((a.rate, a.duration, a.size), (20_000_000, 5, Some(1000)));
            assert_eq!(a.pattern, PatternArg::OnOff);
            assert!(!a.tcp);
            assert_eq!(a.port, 22);
        }
        other => panic!("{other:?}"),
    }
    match parse(&["traffic", "demo", "--from", "a", "--to", "b", "--tcp"]).command {
        Command::Traffic(a) => {
            assert!(a.tcp);
            assert_eq!((a.rate, a.duration, a.size), (10_000_000, 10, None));
            assert_eq!(a.pattern, PatternArg::Constant);
        }
        other => panic!("{other:?}"),
    }
    parse_err(&[
        "traffic", "demo", "--from", "a", "--to", "b", "--tcp", "--udp",
    ]);
    parse_err(&["traffic", "demo", "--from", "a"]);
    parse_err(&[
        "traffic", "demo", "--from", "a", "--to", "b", "--rate", "fast",
    ]);
    parse_err(&[
        "traffic",
        "demo",
        "--from",
        "a",
        "--to",
        "b",
        "--pattern",
        "bursty",
    ]);
}

#[test]
fn peer_add_needs_a_secret_file_and_suspend_a_reason() {
    let cli = parse(&[
        "peer",
        "add",
        "ple",
        "https://ple.example.org",
        "--ca-fingerprint",
        "sha256:00",
        "--secret-file",
        "/etc/slicelab/ple.secret",
        "--max-slivers",
        "100",
    ]);
    match cli.command {
        Command::Peer(PeerCmd::Add {
            name,
            max_slivers,
            secret_file,
            ..
        }) => {
            assert_eq!(name, "ple");
            assert_eq!(max_slivers, Some(100));
            assert_eq!(secret_file.to_str(), Some("/etc/slicelab/ple.secret"));
        }
        other => panic!("{other:?}"),
    }
    parse_err(&["peer", "add", "ple", "https://ple.example.org"]);
    parse_err(&["peer", "suspend", "ple"]);
    let cli = parse(&["central", "--authority", "plc", "--peer-sync", "2"]);
    match cli.command {
        Command::Central(a) => {
            assert_eq!(a.authority.as_deref(), Some("plc"));
            assert_eq!(a.peer_sync, 2);
        }
        other => panic!("{other:?}"),
    }
    parse_err(&["central", "--peer-sync", "0"]);
}

#[test]
fn exec_runs_in_process_unless_asked_for_openssh() {
    let Command::Exec(a) = parse(&["exec", "demo_slice", "--", "true"]).command else {
        panic!("not exec")
    };
    assert!(!a.openssh);
    let Command::Exec(a) = parse(&[
        "exec",
        "demo_slice",
        "--openssh",
        "--parallel",
        "50",
        "--",
        "true",
    ])
    .command
    else {
        panic!("not exec")
    };
    assert!(a.openssh);
    assert_eq!(a.parallel, 50);
}

#[test]
fn up_takes_up_to_fifty_nodes() {
    let Command::Up(a) = parse(&["up", "--nodes", "50"]).command else {
        panic!("not up")
    };
    assert_eq!(a.nodes, 50);
    parse_err(&["up", "--nodes", "51"]);
}

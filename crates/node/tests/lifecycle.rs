//! Root integration tests of the sliver lifecycle: restart of the node manager, SIGKILL
//! mid-reconcile, destroy and cleanup leaving nothing behind.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use slicelab_model::objects::BootState;
use slicelab_model::{DesiredSlivers, SliverSpec};
use slicelab_node::{LinuxRuntime, Runtime};

#[test]
fn node_manager_restart_finds_slivers_and_keeps_writable_layer() {
    let Some(()) = root_or_skip("node_manager_restart_finds_slivers_and_keeps_writable_layer")
    else {
        return;
    };
    let mut node = TestNode::new(5);
    let empty_node = node.counts();
    node.start(&spec("pl_keep", Some("echo ready; exec sleep 100000")));
    node.wait_console("pl_keep", "ready", Duration::from_secs(10));
    node.sh_ok("pl_keep", "echo precious > /root/data");
    let init = node.rt().init_of("pl_keep").expect("running");

    // A new node manager (same state dir) finds the running sliver by name.
    node.rt = Some(LinuxRuntime::new(node.cfg.clone()).unwrap());
    let seen = node.rt().list().unwrap();
    assert!(seen.iter().any(|o| o.slice_name == "pl_keep" && o.running));
    assert_eq!(node.rt().init_of("pl_keep"), Some(init));
    // Starting again is a no-op, not a second sliver.
    node.rt().start("pl_keep").unwrap();
    assert_eq!(node.rt().init_of("pl_keep"), Some(init));

    // As after a machine reboot: the sliver is gone, its writable layer is not.
    node.rt().stop("pl_keep").unwrap();
    assert!(node.rt().init_of("pl_keep").is_none());
    node.rt().start("pl_keep").unwrap();
    assert_ne!(node.rt().init_of("pl_keep"), Some(init));
    assert_eq!(node.sh_ok("pl_keep", "cat /root/data").trim(), "precious");

    // A crashed init is noticed (observed not running) and the planner restarts it.
    let pid = node.rt().init_of("pl_keep").unwrap().pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the crash to be observed", Duration::from_secs(5), || {
        node.rt().list().unwrap().iter().all(|o| !o.running)
    });
    let d = desired(vec![spec("pl_keep", Some("echo ready; exec sleep 100000"))]);
    slicelab_node::reconcile(node.rt(), &d, 0).unwrap();
    assert!(node.rt().init_of("pl_keep").is_some());

    node.rt().destroy("pl_keep").unwrap();
    assert!(!node.dir.path().join("slivers/pl_keep").exists());
    // The dead sliver's veth goes with its netns, which the kernel tears down asynchronously
    // (destroy does not wait for it): gone shortly, not at once.
    wait_until(
        "destroy to leave no kernel objects",
        Duration::from_secs(10),
        || node.counts() == empty_node,
    );
    assert_eq!(node.counts(), empty_node, "destroy leaked kernel objects");
    node.assert_no_leaks_after_cleanup();
}

fn desired(slivers: Vec<SliverSpec>) -> DesiredSlivers {
    DesiredSlivers {
        node_id: 1,
        hostname: "test".into(),
        boot_state: BootState::Boot,
        revision: "r".into(),
        bwlimit: None,
        slivers,
        staff: Vec::new(),
    }
}

struct Reconciler(Child);

impl Reconciler {
    fn spawn(node: &TestNode, desired_file: &Path) -> Reconciler {
        let n = node.names();
        let child = Command::new(INIT_EXE)
            .arg("reconcile-file")
            .arg(node.dir.path())
            .arg(desired_file)
            .args([
                &n.gateway_if,
                &n.subnet.to_string(),
                &n.nft_table,
                &n.cgroup_parent,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn reconciler");
        Reconciler(child)
    }

    fn sigkill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Reconciler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_desired(path: &Path, d: &DesiredSlivers) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec(d).unwrap()).unwrap();
    fs::rename(tmp, path).unwrap();
}

#[test]
fn sigkill_mid_reconcile_then_restart_converges_without_leaks() {
    let Some(()) = root_or_skip("sigkill_mid_reconcile_then_restart_converges_without_leaks")
    else {
        return;
    };
    let node = TestNode::new(6);
    let empty_node = node.counts();
    let file = node.dir.path().join("desired.json");
    let names = ["pl_k1", "pl_k2", "pl_k3", "pl_k4"];
    let want = desired(
        names
            .iter()
            .map(|n| spec(n, Some("echo ready; exec sleep 100000")))
            .collect(),
    );
    write_desired(&file, &want);

    // Kill the reconciler at several points of its work, restarting it each time.
    for delay_ms in [30u64, 120, 250, 400] {
        let r = Reconciler::spawn(&node, &file);
        std::thread::sleep(Duration::from_millis(delay_ms));
        r.sigkill();
    }
    let r = Reconciler::spawn(&node, &file);
    wait_until("all slivers running", Duration::from_secs(30), || {
        let seen = node.rt().list().unwrap();
        seen.len() == names.len() && seen.iter().all(|o| o.running)
    });
    for n in names {
        assert_eq!(node.sh_ok(n, "hostname").trim(), n);
        // Exactly one init per sliver: no duplicate from an interrupted start.
        assert_eq!(
            node.sh_ok(n, "ps -o comm | grep -c sleep").trim(),
            "1",
            "{n}"
        );
    }

    // Kill it again in the middle of destroying everything.
    write_desired(&file, &desired(vec![]));
    std::thread::sleep(Duration::from_millis(150));
    r.sigkill();
    let r = Reconciler::spawn(&node, &file);
    wait_until("all slivers destroyed", Duration::from_secs(30), || {
        node.rt().list().unwrap().is_empty()
    });
    r.sigkill();
    assert_eq!(node.counts(), empty_node, "leaked kernel objects");
    node.assert_no_leaks_after_cleanup();
}

#[test]
fn cleanup_removes_every_leftover_of_a_crashed_node() {
    let Some(()) = root_or_skip("cleanup_removes_every_leftover_of_a_crashed_node") else {
        return;
    };
    let mut node = TestNode::new(7);
    let mut a = spec("pl_c1", Some("echo ready; exec sleep 100000"));
    a.resources.ports = vec![slicelab_model::tags::PortForward {
        node_port: 18090,
        sliver_port: 80,
        protocol: slicelab_model::tags::Protocol::Tcp,
    }];
    node.start(&a);
    node.start(&spec("pl_c2", None));
    node.wait_console("pl_c1", "ready", Duration::from_secs(10));
    let before = node.counts();
    assert!(before.processes >= 3 && before.nft_rules > 0 && before.cgroups > 0);
    // The node manager "crashes": nothing is stopped; cleanup must find it all by name.
    node.rt = None;
    let report = slicelab_node::cleanup(node.dir.path(), node.names(), true).unwrap();
    assert_eq!(report.sliver_dirs, 2);
    assert!(report.processes >= 3 && report.gateway_if && report.nft_table);
    assert_eq!(
        Counts::take(node.names()),
        node.baseline,
        "cleanup left kernel objects"
    );
    node.assert_no_leaks_after_cleanup();
}

/// A node upgraded from root-mapped slivers (no user namespace, files owned by host ids
/// 0..65535) to user-namespaced ones keeps each sliver's files: the new node manager stops the
/// root-mapped sliver, and its next start shifts the layer into the slice's range.
#[test]
fn upgrade_from_root_mapped_slivers_keeps_their_files() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(()) = root_or_skip("upgrade_from_root_mapped_slivers_keeps_their_files") else {
        return;
    };
    let mut node = TestNode::new(27);
    let s = spec("pl_old", Some("echo ready; exec sleep 100000"));
    node.rt().create(&s).unwrap();
    // Make it look like a sliver of the previous release: no uid range in its record, a layer
    // written by host root and host uid 1000, and a running init in the host's user namespace.
    let dir = node.dir.path().join("slivers/pl_old");
    let upper = dir.join("upper");
    fs::create_dir_all(upper.join("home/user")).unwrap();
    fs::write(upper.join("home/user/notes"), "user data\n").unwrap();
    std::os::unix::fs::chown(upper.join("home/user"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(upper.join("home/user/notes"), Some(1000), Some(1000)).unwrap();
    fs::create_dir_all(upper.join("usr/local/bin")).unwrap();
    fs::write(upper.join("usr/local/bin/suidtool"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(
        upper.join("usr/local/bin/suidtool"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    fs::write(upper.join("precious"), "root data\n").unwrap();
    let mut old_init: Child = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut rec = slicelab_node::state::load(node.dir.path(), "pl_old")
        .unwrap()
        .unwrap();
    rec.idmap = None;
    rec.layer_owner = None;
    rec.init = slicelab_node::state::ProcId::of(old_init.id() as i32);
    slicelab_node::state::save(node.dir.path(), &rec).unwrap();

    // The upgraded node manager opens the same state dir.
    node.rt = Some(LinuxRuntime::new(node.cfg.clone()).unwrap());
    // (The runtime reaps it: it is the node manager's child here.)
    let _ = old_init.try_wait();
    assert!(
        !rec.init.expect("old init").is_alive(),
        "the root-mapped init was not stopped"
    );
    let d = desired(vec![s.clone()]);
    slicelab_node::reconcile(node.rt(), &d, 0).unwrap();
    node.wait_console("pl_old", "ready", Duration::from_secs(10));
    let (uid, _) = node.rt().root_ids("pl_old").expect("range given at start");
    assert_ne!(uid, 0);

    assert_eq!(node.sh_ok("pl_old", "cat /precious").trim(), "root data");
    assert_eq!(
        node.sh_ok("pl_old", "cat /home/user/notes; stat -c '%u:%g %a' /home/user/notes /usr/local/bin/suidtool /precious"),
        "user data\n1000:1000 644\n0:0 4755\n0:0 644\n"
    );
    let md = fs::metadata(upper.join("home/user/notes")).unwrap();
    assert_eq!((md.uid(), md.gid()), (uid + 1000, uid + 1000));
    // Restarting again shifts nothing twice.
    node.rt().stop("pl_old").unwrap();
    node.rt().start("pl_old").unwrap();
    assert_eq!(
        node.sh_ok("pl_old", "stat -c '%u:%g' /home/user/notes")
            .trim(),
        "1000:1000"
    );
    node.rt().destroy("pl_old").unwrap();
    node.assert_no_leaks_after_cleanup();
}

//! Root integration tests of the sliver runtime (no central needed). Skipped when not root.

mod common;

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use slicelab_node::Runtime;

const KEPT_CAPS: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 7)
    | (1 << 8)
    | (1 << 10)
    | (1 << 13)
    | (1 << 18)
    | (1 << 29)
    | (1 << 31);

fn denied(node: &TestNode, slice: &str, script: &str) -> String {
    let o = node.sh(slice, script);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "`{script}` should fail in a sliver but succeeded"
    );
    err
}

#[test]
fn sliver_is_isolated_and_confined() {
    let Some(()) = root_or_skip("sliver_is_isolated_and_confined") else {
        return;
    };
    let node = TestNode::new(1);
    let marker = format!("/var/tmp/slicelab-host-marker-{}", std::process::id());
    fs::write(&marker, "host secret").unwrap();
    let _rm = Guard(marker.clone());
    node.start(&spec("pl_one", Some("echo ready; exec sleep 100000")));
    node.wait_console("pl_one", "ready", Duration::from_secs(10));

    assert_eq!(node.sh_ok("pl_one", "hostname").trim(), "pl_one");
    // Only its own processes: its init, the initscript's sleep, and ps itself.
    let ps = node.sh_ok("pl_one", "ps -o pid,comm");
    let pids: Vec<u32> = ps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        pids.contains(&1) && pids.len() <= 4,
        "unexpected processes:\n{ps}"
    );
    assert!(
        !ps.contains("cargo") && !ps.contains("sliver-"),
        "host processes visible:\n{ps}"
    );

    // The host's files outside the image are invisible; the image is what `/` shows.
    node.sh_ok("pl_one", &format!("test ! -e {marker}"));
    node.sh_ok(
        "pl_one",
        &format!("test ! -e {}", node.dir.path().display()),
    );
    assert!(node
        .sh_ok("pl_one", "cat /etc/os-release")
        .contains("slicelab-base"));

    // Writes land in the writable layer only; the shared image is untouched.
    node.sh_ok("pl_one", "echo mine > /etc/newfile");
    let upper = node.dir.path().join("slivers/pl_one/upper/etc/newfile");
    assert_eq!(fs::read_to_string(upper).unwrap().trim(), "mine");
    assert!(!node.dir.path().join("images/base/etc/newfile").exists());
    // …and kernel state is not writable at all.
    denied(&node, "pl_one", "echo evil > /proc/sys/kernel/hostname");
    denied(&node, "pl_one", "touch /sys/evil");

    // Kernel-level calls fail: mount, module loading, clock setting, hostname, new namespaces.
    let e = denied(&node, "pl_one", "mkdir -p /mnt && mount -t tmpfs none /mnt");
    assert!(
        e.contains("not permitted") || e.contains("denied"),
        "mount: {e}"
    );
    let e = denied(&node, "pl_one", "echo junk > /tmp/x.ko && insmod /tmp/x.ko");
    assert!(e.contains("not permitted"), "insmod: {e}");
    // busybox `date -s` reports the failure but exits 0: check its message and the clock.
    let o = node.sh("pl_one", "date -s '2001-01-01 00:00:00'");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not permitted"),
        "date -s: {o:?}"
    );
    assert_ne!(
        node.sh_ok("pl_one", "date +%Y").trim(),
        "2001",
        "clock was set"
    );
    denied(&node, "pl_one", "hostname evil");
    denied(&node, "pl_one", "unshare -n true");
    assert_eq!(node.sh_ok("pl_one", "hostname").trim(), "pl_one");

    // The confinement itself: capabilities, no_new_privs, seccomp filter mode.
    let status = node.sh_ok("pl_one", "cat /proc/self/status");
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        u64::from_str_radix(&field("CapEff:"), 16).unwrap(),
        KEPT_CAPS
    );
    assert_eq!(
        u64::from_str_radix(&field("CapBnd:"), 16).unwrap(),
        KEPT_CAPS
    );
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");
    // The init (PID 1) runs under the same confinement.
    let init_status = node.sh_ok("pl_one", "cat /proc/1/status");
    assert!(init_status
        .lines()
        .any(|l| l.starts_with("Seccomp:") && l.ends_with('2')));

    node.rt().destroy("pl_one").unwrap();
    node.assert_no_leaks_after_cleanup();
}

struct Guard(String);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn two_slivers_cannot_see_each_other() {
    let Some(()) = root_or_skip("two_slivers_cannot_see_each_other") else {
        return;
    };
    let node = TestNode::new(2);
    node.start(&spec(
        "pl_a",
        Some("echo ready; exec nc -ll -p 7000 -e /bin/echo from-a"),
    ));
    node.start(&spec("pl_b", Some("echo ready; exec sleep 4343")));
    node.wait_console("pl_a", "ready", Duration::from_secs(10));
    node.wait_console("pl_b", "ready", Duration::from_secs(10));

    node.sh_ok("pl_a", "echo a-secret > /root/secret");
    node.sh_ok("pl_b", "test ! -e /root/secret");
    let ps_b = node.sh_ok("pl_b", "ps -o args");
    assert!(
        !ps_b.contains("nc -ll"),
        "pl_b sees pl_a's processes:\n{ps_b}"
    );
    let ps_a = node.sh_ok("pl_a", "ps -o args");
    assert!(
        !ps_a.contains("4343"),
        "pl_a sees pl_b's processes:\n{ps_a}"
    );

    // The host (gateway) reaches pl_a's service, so the listener is up…
    let a = node.address("pl_a");
    let mut got = String::new();
    let mut s =
        TcpStream::connect_timeout(&(a, 7000).into(), Duration::from_secs(3)).expect("host → pl_a");
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = s.read_to_string(&mut got);
    assert_eq!(got.trim(), "from-a");
    // …but pl_b reaches neither the service nor the address of pl_a; it does reach the gateway.
    let gw = node.names().gateway();
    node.sh_ok("pl_b", &format!("ping -c1 -W2 {gw}"));
    denied(&node, "pl_b", &format!("ping -c1 -W1 {a}"));
    let out = node.sh("pl_b", &format!("echo | nc -w 2 {a} 7000"));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("from-a"),
        "pl_b reached pl_a"
    );

    for s in ["pl_a", "pl_b"] {
        node.rt().destroy(s).unwrap();
    }
    node.assert_no_leaks_after_cleanup();
}

fn read_cg(dir: &std::path::Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap_or_default()
}

fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn memory_is_oom_killed_inside_and_fork_bomb_stops_at_pids_max() {
    let Some(()) = root_or_skip("memory_is_oom_killed_inside_and_fork_bomb_stops_at_pids_max")
    else {
        return;
    };
    let node = TestNode::new(3);
    let mut s = spec("pl_lim", Some("echo ready; exec sleep 100000"));
    s.resources.mem_max = Some(32 << 20);
    s.resources.pids_max = Some(40);
    s.resources.cpu_share = Some(4);
    node.start(&s);
    node.wait_console("pl_lim", "ready", Duration::from_secs(10));
    let cg = node.rt().cgroups().clone();

    // Memory: a shell holding 200 MB is killed; the sliver and the host carry on.
    let out = node.sh(
        "pl_lim",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("survived"),
        "no OOM kill above mem_max"
    );
    let mem = cg.memory_dir("pl_lim").unwrap();
    let kills = if mem.join("memory.events").exists() {
        counter(&read_cg(&mem, "memory.events"), "oom_kill ")
    } else {
        counter(&read_cg(&mem, "memory.oom_control"), "oom_kill ")
    };
    assert!(kills >= 1, "no OOM kill recorded in the sliver's cgroup");
    assert_eq!(
        node.sh_ok("pl_lim", "hostname").trim(),
        "pl_lim",
        "sliver died with the OOM kill"
    );

    // Fork bomb: tasks stop at pids_max.
    let pids = cg.pids_dir("pl_lim").unwrap();
    let mut bomb = node
        .rt()
        .exec_command(
            "pl_lim",
            &[
                "/bin/sh".into(),
                "-c".into(),
                "while true; do sleep 1000 & done".into(),
            ],
        )
        .unwrap()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    wait_until(
        "the fork bomb to hit pids_max",
        Duration::from_secs(10),
        || {
            let cur: u64 = read_cg(&pids, "pids.current").trim().parse().unwrap_or(0);
            peak = peak.max(cur);
            counter(&read_cg(&pids, "pids.events"), "max ") > 0
        },
    );
    for _ in 0..20 {
        let cur: u64 = read_cg(&pids, "pids.current").trim().parse().unwrap_or(0);
        peak = peak.max(cur);
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(peak <= 40, "pids.current reached {peak} > pids_max");
    // The host can still fork.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());

    node.rt().stop("pl_lim").unwrap();
    let _ = bomb.wait();
    node.rt().destroy("pl_lim").unwrap();
    node.assert_no_leaks_after_cleanup();
}

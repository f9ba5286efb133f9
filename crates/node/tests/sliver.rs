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
    assert_isolated_and_confined(&node, "pl_one", &marker);
    node.rt().destroy("pl_one").unwrap();
    node.assert_no_leaks_after_cleanup();
}

/// What every sliver is, checked from inside running sliver `slice`: its own hostname, processes
/// and files (not the host's `marker`), a writable layer of its own over the shared image, and
/// the confinement (no kernel-level calls, capabilities, `no_new_privs`, seccomp).
fn assert_isolated_and_confined(node: &TestNode, slice: &str, marker: &str) {
    assert_eq!(node.sh_ok(slice, "hostname").trim(), slice);
    // Only its own processes: its init, the initscript's sleep, and ps itself.
    let ps = node.sh_ok(slice, "ps -o pid,comm");
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
    node.sh_ok(slice, &format!("test ! -e {marker}"));
    node.sh_ok(slice, &format!("test ! -e {}", node.dir.path().display()));
    assert!(node
        .sh_ok(slice, "cat /etc/os-release")
        .contains("slicelab-base"));

    // Writes land in the writable layer only; the shared image is untouched.
    node.sh_ok(slice, "echo mine > /etc/newfile");
    let upper = node
        .dir
        .path()
        .join(format!("slivers/{slice}/upper/etc/newfile"));
    assert_eq!(fs::read_to_string(upper).unwrap().trim(), "mine");
    assert!(!node.dir.path().join("images/base/etc/newfile").exists());
    // …and kernel state is not writable at all.
    denied(node, slice, "echo evil > /proc/sys/kernel/hostname");
    denied(node, slice, "touch /sys/evil");

    // Kernel-level calls fail: mount, module loading, clock setting, hostname, new namespaces.
    let e = denied(node, slice, "mkdir -p /mnt && mount -t tmpfs none /mnt");
    assert!(
        e.contains("not permitted") || e.contains("denied"),
        "mount: {e}"
    );
    let e = denied(node, slice, "echo junk > /tmp/x.ko && insmod /tmp/x.ko");
    assert!(e.contains("not permitted"), "insmod: {e}");
    // busybox `date -s` reports the failure but exits 0: check its message and the clock.
    let o = node.sh(slice, "date -s '2001-01-01 00:00:00'");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not permitted"),
        "date -s: {o:?}"
    );
    assert_ne!(
        node.sh_ok(slice, "date +%Y").trim(),
        "2001",
        "clock was set"
    );
    denied(node, slice, "hostname evil");
    // Nothing of a sliver is exempt from the OOM killer, nor can make itself so.
    assert_eq!(
        node.sh_ok(slice, "cat /proc/self/oom_score_adj").trim(),
        "0"
    );
    denied(node, slice, "echo -1 > /proc/self/oom_score_adj");
    denied(node, slice, "unshare -n true");
    assert_eq!(node.sh_ok(slice, "hostname").trim(), slice);

    // The confinement itself: capabilities, no_new_privs, seccomp filter mode.
    let status = node.sh_ok(slice, "cat /proc/self/status");
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
    let init_status = node.sh_ok(slice, "cat /proc/1/status");
    assert!(init_status
        .lines()
        .any(|l| l.starts_with("Seccomp:") && l.ends_with('2')));
}

/// Host-side fields of process `pid`: nice (field 19 of `stat`) and `oom_score_adj`.
fn nice_and_oom(pid: i32) -> (i64, i64) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let nice = after_comm
        .split_whitespace()
        .nth(16)
        .unwrap()
        .parse()
        .unwrap();
    let oom = fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (nice, oom)
}

/// Whether this process has CAP_SYS_RESOURCE (bit 24 of its effective set).
fn has_sys_resource() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    eff & (1 << 24) != 0
}

/// The host pid of the process of sliver `slice` whose command line contains `needle`.
fn pid_of(node: &TestNode, slice: &str, needle: &str) -> i32 {
    node.rt()
        .cgroups()
        .pids(slice)
        .into_iter()
        .find(|p| {
            fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .unwrap_or_else(|| panic!("no process of {slice} runs {needle:?}"))
}

#[test]
fn a_sliver_built_ahead_is_as_isolated_confined_and_limited() {
    let Some(()) = root_or_skip("a_sliver_built_ahead_is_as_isolated_confined_and_limited") else {
        return;
    };
    let node = TestNode::new(17);
    // The node manager is exempt from the OOM killer (-1000), as the daemon makes itself where
    // it may (CAP_SYS_RESOURCE, which this test's VM denies even root); no sliver inherits that.
    if has_sys_resource() {
        fs::write("/proc/self/oom_score_adj", "-1000").unwrap();
    }
    let marker = format!("/var/tmp/slicelab-host-marker-w{}", std::process::id());
    fs::write(&marker, "host secret").unwrap();
    let _rm = Guard(marker.clone());
    // A runtime's first start is cold; after it, the next sliver of its kind is built ahead.
    node.start(&spec("pl_first", Some("echo ready; exec sleep 100000")));
    assert!(node.rt().wait_built_ahead(Duration::from_secs(30)));
    let taken = node.rt().warm_slivers_taken();
    let mut warm = spec("pl_warm", Some("echo ready; exec sleep 100001"));
    warm.resources.pids_max = Some(64);
    warm.resources.mem_max = Some(96 << 20);
    node.start(&warm);
    assert_eq!(
        node.rt().warm_slivers_taken(),
        taken + 1,
        "pl_warm was not made from a sliver built ahead"
    );
    node.wait_console("pl_warm", "ready", Duration::from_secs(10));
    assert_isolated_and_confined(&node, "pl_warm", &marker);

    // Its own uid range, the one its record holds, not pl_first's.
    let init = node.rt().init_of("pl_warm").expect("running").pid;
    let (root_uid, _) = node.rt().root_ids("pl_warm").expect("uid range");
    let map = fs::read_to_string(format!("/proc/{init}/uid_map")).unwrap();
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", root_uid.to_string().as_str(), "65536"]
    );
    assert_ne!(
        node.rt().root_ids("pl_first"),
        node.rt().root_ids("pl_warm")
    );

    // Its init and initscript are in the slice's cgroups, under the slice's limits, and nowhere
    // else (not in the cgroups it was built in).
    let sleep = pid_of(&node, "pl_warm", "100001");
    let cg = node.rt().cgroups();
    let pids = cg.pids("pl_warm");
    assert!(pids.contains(&init) && pids.contains(&sleep), "{pids:?}");
    let pids_dir = cg.pids_dir("pl_warm").expect("pids controller");
    assert_eq!(read_cg(&pids_dir, "pids.max").trim(), "64");
    let parent = &node.names().cgroup_parent;
    for p in [init, sleep] {
        let lines = fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
        for l in lines.lines().filter(|l| l.contains(parent.as_str())) {
            assert!(l.ends_with(&format!("/{parent}/pl_warm")), "{p}: {l}");
        }
    }
    // The pids limit holds from inside.
    let o = node.sh("pl_warm", "for i in $(seq 80); do sleep 2 & done; wait");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("fork")
            || String::from_utf8_lossy(&o.stderr).contains("Resource temporarily"),
        "80 processes in a sliver limited to 64: {o:?}"
    );
    // It was built at idle priority; it runs at the node manager's, with the OOM killer's
    // default score (not the node manager's exemption), as a cold start's processes.
    let cold = node.rt().init_of("pl_first").expect("running").pid;
    let cold_sleep = pid_of(&node, "pl_first", "100000");
    for p in [cold, cold_sleep, init, sleep] {
        assert_eq!(nice_and_oom(p), (0, 0), "process {p}");
    }
    // Its `/` is its root's, as a cold start's: root makes what it likes there.
    assert_eq!(node.sh_ok("pl_warm", "stat -c %u:%g /").trim(), "0:0");
    node.sh_ok("pl_warm", "mkdir /data && chmod 700 /data");

    // Plugged in: its address on eth0, the host end named after the slice, the gateway
    // reachable and nothing else of the node's.
    let a = node.address("pl_warm");
    assert!(node
        .sh_ok("pl_warm", "ip -4 addr show eth0")
        .contains(&format!("{a}/32")));
    let gw = node.names().gateway();
    node.sh_ok("pl_warm", &format!("ping -c1 -W2 {gw}"));
    let veth = slicelab_node::names::veth_name("pl_warm");
    assert!(std::process::Command::new("ip")
        .args(["link", "show", &veth, "up"])
        .output()
        .unwrap()
        .status
        .success());
    let first = node.address("pl_first");
    denied(&node, "pl_warm", &format!("ping -c1 -W1 {first}"));

    // A sliver of another kind (a disk quota) is not made from one built for this kind; the
    // next of that kind is, with its quota filesystem built ahead and holding.
    assert!(node.rt().wait_built_ahead(Duration::from_secs(30)));
    let taken = node.rt().warm_slivers_taken();
    let mut quota = spec("pl_quota", Some("echo ready; exec sleep 100002"));
    quota.resources.disk_max = Some(32 << 20);
    node.start(&quota);
    assert_eq!(
        node.rt().warm_slivers_taken(),
        taken,
        "a kind it was not built for"
    );
    assert!(node.rt().wait_built_ahead(Duration::from_secs(60)));
    let mut quota2 = spec("pl_quota2", Some("echo ready; exec sleep 100003"));
    quota2.resources.disk_max = Some(32 << 20);
    node.start(&quota2);
    assert_eq!(node.rt().warm_slivers_taken(), taken + 1);
    node.wait_console("pl_quota2", "ready", Duration::from_secs(10));
    let dir = node.dir.path().join("slivers/pl_quota2");
    assert!(slicelab_node::disk::is_mounted(&dir), "quota filesystem");
    let o = node.sh("pl_quota2", "dd if=/dev/zero of=/root/big bs=1M count=48");
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("space"),
        "48 MiB written under a 32 MiB quota: {o:?}"
    );

    for s in ["pl_first", "pl_warm", "pl_quota", "pl_quota2"] {
        node.rt().destroy(s).unwrap();
    }
    if has_sys_resource() {
        fs::write("/proc/self/oom_score_adj", "0").unwrap();
    }
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

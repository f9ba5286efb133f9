//! The node's SSH gateway against a real sliver, a real central (in-process, SQLite) and the real
//! OpenSSH client: login runs in the sliver, exit status and pty come through, files copy, a key
//! not in the slice is refused, and removing a person from the slice revokes access in seconds.
//! Files copied in belong to the sliver's uid range, and symlinks planted in the sliver cannot
//! make scp/sftp read or write outside it.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use slicelab_client::Client;
use slicelab_model::objects::{KeyCreate, NodeWithKey, PersonCreate, Role, SliceCreate};

const SLICE: &str = "pl_ssh";

fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    (path, public.trim().to_string())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The gateway tells a refused client why through keyboard-interactive, which BatchMode disables.
const TELL_WHY: &[&str] = &["-o", "BatchMode=no"];

/// `ssh` with `key` as `user` at 127.0.0.1:`port`, non-interactive, no host key bookkeeping.
/// OpenSSH client options of every ssh and scp here: only the given key, no prompts, no
/// known-hosts file.
const CLIENT_OPTS: &[&str] = &[
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
];

fn ssh(port: u16, key: &Path, user: &str, extra: &[&str], cmd: &[&str]) -> Output {
    // `extra` first: for options given twice, ssh keeps the first value.
    Command::new("ssh")
        .args(extra)
        .args(["-p", &port.to_string(), "-i"])
        .arg(key)
        .args(CLIENT_OPTS)
        // Not LogLevel=ERROR: the gateway's refusal text comes as a disconnect message, which
        // ssh prints at the default level only.
        .args(["-o", "ConnectTimeout=10"])
        .arg(format!("{user}@127.0.0.1"))
        .args(cmd)
        .output()
        .expect("running ssh")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn scp(port: u16, key: &Path, from: &str, to: &str) -> Output {
    Command::new("scp")
        .args(["-P", &port.to_string(), "-i"])
        .arg(key)
        .args(CLIENT_OPTS)
        .args(["-o", "LogLevel=ERROR", from, to])
        .output()
        .expect("scp")
}

/// scp/sftp through symlinks planted in the sliver cannot read or write outside it: every link
/// (absolute, climbing, through /proc, a symlinked parent directory) resolves inside the sliver.
fn symlink_attacks(port: u16, key: &Path, local: &Path, scratch: &Path) {
    let dir = format!("/var/tmp/slicelab-sftp-attack-{}", std::process::id());
    std::fs::create_dir_all(&dir).expect("host dir");
    let secret = format!("{dir}/secret");
    std::fs::write(&secret, "host secret\n").expect("host secret");
    let plant = format!(
        "ln -s {secret} /root/abs && ln -s ../../../../../../..{secret} /root/climb && \
         ln -s /proc/1/root{secret} /root/viaproc && ln -s {dir} /root/dirlink && \
         ln -s {dir}/written /root/wlink"
    );
    let o = ssh(port, key, SLICE, &[], &[&plant]);
    assert!(o.status.success(), "planting links: {}", text(&o));
    for link in ["abs", "climb", "viaproc", "dirlink/secret"] {
        let out = scratch.join("stolen");
        let _ = std::fs::remove_file(&out);
        let o = scp(
            port,
            key,
            &format!("{SLICE}@127.0.0.1:/root/{link}"),
            &out.to_string_lossy(),
        );
        let got = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(
            !got.contains("host secret"),
            "read the host's file through /root/{link}: {}",
            text(&o)
        );
    }
    for target in ["/root/wlink", "/root/dirlink/written"] {
        let _ = scp(
            port,
            key,
            &local.to_string_lossy(),
            &format!("{SLICE}@127.0.0.1:{target}"),
        );
    }
    let mut host_files: Vec<String> = std::fs::read_dir(&dir)
        .expect("host dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    host_files.sort();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(host_files, vec!["secret"], "scp wrote outside the sliver");
}

/// The exec spawners among `parent`'s children (processes started with SLICELAB_EXEC_SPAWNER).
fn spawners_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse::<u32>().ok());
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let marked = env
            .split(|b| *b == 0)
            .any(|kv| kv.starts_with(b"SLICELAB_EXEC_SPAWNER="));
        if ppid == Some(parent) && marked {
            found.push(pid);
        }
    }
    found
}

fn have_ssh() -> bool {
    Command::new("ssh").arg("-V").output().is_ok()
        && Command::new("ssh-keygen").arg("--help").output().is_ok()
}

#[test]
fn ssh_into_sliver_with_slice_keys_only() {
    let Some(()) = root_or_skip("ssh_into_sliver_with_slice_keys_only") else {
        return;
    };
    if !have_ssh() {
        eprintln!(
            "SKIPPED ssh_into_sliver_with_slice_keys_only: the OpenSSH client is not installed"
        );
        return;
    }
    let node = TestNode::new(9);
    let empty_node = node.counts();
    let keys = tempfile::tempdir().expect("tempdir");
    let (alice_key, alice_pub) = keygen(keys.path(), "alice");
    let (bob_key, bob_pub) = keygen(keys.path(), "bob");
    let port = free_port();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let db = tempfile::tempdir().expect("tempdir");
    tokio_rt.block_on(async {
        let central = slicelab_central::start(slicelab_central::Config {
            db_url: format!("sqlite://{}/central.db", db.path().display()),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_email: "admin@ssh.test".into(),
            admin_password: Some("admin-password-1".into()),
            tls: None,
        })
        .await
        .expect("central");
        let base = format!("http://{}", central.addr);
        let anon = Client::new(&base, None);
        let admin = anon.with_token(
            anon.login("admin@ssh.test", "admin-password-1")
                .await
                .expect("login")
                .token,
        );
        let _: serde_json::Value = admin
            .post(
                "/sites",
                &serde_json::json!({"login_base": "pl", "name": "PL", "max_slices": 3}),
            )
            .await
            .expect("site");
        for (email, key) in [("alice@pl.test", &alice_pub), ("bob@pl.test", &bob_pub)] {
            admin
                .create_person(&PersonCreate {
                    email: email.into(),
                    first_name: "A".into(),
                    last_name: "B".into(),
                    password: None,
                    roles: vec![Role::User],
                    sites: vec!["pl".into()],
                })
                .await
                .expect("person");
            admin
                .add_key(email, &KeyCreate { key: key.clone() })
                .await
                .expect("key");
        }
        let nk: NodeWithKey = admin
            .post(
                "/nodes",
                &serde_json::json!({"hostname": "node1.pl.test", "site": "pl"}),
            )
            .await
            .expect("node");
        admin
            .create_slice(&SliceCreate {
                name: SLICE.into(),
                description: String::new(),
                url: String::new(),
            })
            .await
            .expect("slice");
        admin
            .add_slice_persons(SLICE, &["alice@pl.test".into()])
            .await
            .expect("persons");
        admin
            .add_slice_nodes(SLICE, &["node1.pl.test".into()])
            .await
            .expect("nodes");

        let cfg = slicelab_node::Config {
            central: base.clone(),
            key: nk.node_key.clone(),
            state_dir: node.dir.path().to_path_buf(),
            names: node.names().clone(),
            init_exe: Some(INIT_EXE.into()),
            reconcile_every: Duration::from_secs(1),
            ssh_listen: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            ssh_host_key: None,
            ..Default::default()
        };
        let daemon = tokio::spawn(slicelab_node::run(cfg));
        let t0 = Instant::now();
        while node.rt().init_of(SLICE).is_none() {
            assert!(t0.elapsed() < Duration::from_secs(20), "sliver never ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let rt_ids = node.rt().root_ids(SLICE);
        // The writable layer: on the quota filesystem (the default allocation has `disk_max`).
        let sliver_dir = node.dir.path().join("slivers").join(SLICE);
        let layer = slicelab_node::disk::layer_dirs(
            &sliver_dir,
            slicelab_node::disk::is_mounted(&sliver_dir),
        )
        .0;
        let checks = tokio::task::spawn_blocking(move || {
            // A login runs in the sliver: its hostname is the slice name.
            let o = ssh(port, &alice_key, SLICE, &[], &["hostname"]);
            assert!(o.status.success(), "{}", text(&o));
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), SLICE);
            // A session's program starts with no signal ignored or blocked (the node manager's
            // runtime ignores SIGPIPE; `yes | head` in a sliver must end by SIGPIPE).
            let o = ssh(
                port,
                &alice_key,
                SLICE,
                &[],
                &["exec grep -E '^Sig(Ign|Blk)' /proc/self/status"],
            );
            assert!(o.status.success(), "{}", text(&o));
            let masks = String::from_utf8_lossy(&o.stdout).into_owned();
            assert_eq!(masks.matches("\t0000000000000000").count(), 2, "{masks}");
            // The session's command is confined as the init is: the same capabilities (those of
            // root over its own network only), no new privileges, the seccomp filter; its pid one
            // of the sliver's, its parent (the helper) outside the sliver's PID namespace, so the
            // sliver never sees a process of the node's. It may be chosen by the OOM killer (the
            // helper exempts itself; what it runs must not stay exempt).
            let o = ssh(
                port,
                &alice_key,
                SLICE,
                &[],
                &["exec grep -E '^(Pid|PPid|CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status /proc/1/status"],
            );
            assert!(o.status.success(), "{}", text(&o));
            let status = String::from_utf8_lossy(&o.stdout).into_owned();
            let field = |of: &str, name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("/proc/{of}/status:{name}:")))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_else(|| panic!("no {name} of {of} in {status}"))
            };
            for name in ["CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"] {
                assert_eq!(field("self", name), field("1", name), "{name}: {status}");
            }
            assert_eq!(field("self", "Seccomp"), "2", "{status}");
            assert_eq!(field("self", "CapEff").len(), 16, "{status}");
            assert_ne!(field("self", "CapEff"), "000001ffffffffff", "{status}");
            assert_eq!(field("self", "PPid"), "0", "{status}");
            let pid: u32 = field("self", "Pid").parse().expect("a pid");
            assert!(pid < 1000, "pid {pid} is not one of the sliver's: {status}");
            let o = ssh(port, &alice_key, SLICE, &[], &["exec cat /proc/self/oom_score_adj"]);
            assert!(o.status.success(), "{}", text(&o));
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0", "oom_score_adj");
            // A command killed by a signal ends the session with 128 + the signal, as before.
            let o = ssh(port, &alice_key, SLICE, &[], &["kill -9 $$"]);
            assert_eq!(o.status.code(), Some(137), "{}", text(&o));
            // The exec spawner (the node's child that forks each session's helper) killed: the
            // next session starts it again.
            let spawners = spawners_of(std::process::id());
            assert_eq!(spawners.len(), 1, "one exec spawner: {spawners:?}");
            let _ = Command::new("kill")
                .args(["-9", &spawners[0].to_string()])
                .status();
            let t0 = Instant::now();
            // Dead (a zombie until the node reaps it at the next session).
            let dead = |pid: u32| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| {
                        s.rsplit(')')
                            .next()
                            .unwrap_or("")
                            .trim_start()
                            .starts_with('Z')
                    })
                    .unwrap_or(true)
            };
            while !dead(spawners[0]) && t0.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let o = ssh(port, &alice_key, SLICE, &[], &["hostname"]);
            assert!(o.status.success(), "after the spawner died: {}", text(&o));
            let again = spawners_of(std::process::id());
            assert!(
                again.len() == 1 && again[0] != spawners[0],
                "a new spawner: {again:?}"
            );
            // Exit status comes back.
            let o = ssh(port, &alice_key, SLICE, &[], &["exit 7"]);
            assert_eq!(o.status.code(), Some(7), "{}", text(&o));
            // With a pty (-tt): stdin is a terminal and TERM comes from the client.
            let o = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "TERM=vt100 ssh -tt -p {port} -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
                     -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
                     {SLICE}@127.0.0.1 'test -t 0 && echo tty:$TERM' </dev/null",
                    alice_key.display()
                ))
                .output()
                .expect("ssh -tt");
            assert!(o.status.success(), "{}", text(&o));
            assert!(
                String::from_utf8_lossy(&o.stdout).contains("tty:vt100"),
                "{}",
                text(&o)
            );
            // Files copy into the sliver's root (scp speaks sftp with OpenSSH >= 9).
            let local = keys.path().join("hello.txt");
            std::fs::write(&local, "hello sliver\n").expect("write");
            let o = scp(
                port,
                &alice_key,
                &local.to_string_lossy(),
                &format!("{SLICE}@127.0.0.1:/root/hello.txt"),
            );
            assert!(o.status.success(), "scp: {}", text(&o));
            let o = ssh(port, &alice_key, SLICE, &[], &["cat /root/hello.txt"]);
            assert_eq!(
                String::from_utf8_lossy(&o.stdout),
                "hello sliver\n",
                "{}",
                text(&o)
            );
            // Copied in as the sliver's root would have written it: its range, not host root.
            let (uid, gid) = rt_ids.expect("uid range");
            let copied = std::fs::metadata(layer.join("root/hello.txt")).expect("in the layer");
            assert_eq!((copied.uid(), copied.gid()), (uid, gid));
            symlink_attacks(port, &alice_key, &local, keys.path());
            // Bob's key is registered, but Bob is not in the slice.
            let o = ssh(port, &bob_key, SLICE, TELL_WHY, &["hostname"]);
            assert!(!o.status.success(), "{}", text(&o));
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("key not authorized"),
                "{}",
                text(&o)
            );
            // A slice without a sliver here.
            let o = ssh(port, &alice_key, "pl_nope", &[], &["hostname"]);
            assert!(!o.status.success(), "{}", text(&o));
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("no sliver"),
                "{}",
                text(&o)
            );
            alice_key
        })
        .await;
        let alice_key = match checks {
            Ok(k) => k,
            Err(e) => {
                daemon.abort();
                central.shutdown().await;
                std::panic::resume_unwind(e.into_panic());
            }
        };

        // Removing Alice from the slice revokes her access once the node has the new state.
        admin
            .remove_slice_person(SLICE, "alice@pl.test")
            .await
            .expect("remove person");
        let t0 = Instant::now();
        let revoked = loop {
            let k = alice_key.clone();
            let o = tokio::task::spawn_blocking(move || ssh(port, &k, SLICE, TELL_WHY, &["true"]))
                .await
                .expect("ssh task");
            if !o.status.success() {
                break Some((t0.elapsed(), o));
            }
            if t0.elapsed() > Duration::from_secs(10) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        daemon.abort();
        let _ = daemon.await;
        central.shutdown().await;
        let (took, o) = revoked.expect("access still granted 10 s after the person was removed");
        eprintln!("person removed → login refused after {took:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("key not authorized"),
            "{}",
            text(&o)
        );
    });
    drop(tokio_rt);
    // Stop the sliver so the leak check compares against an empty node.
    let _ = slicelab_node::Runtime::destroy(node.rt(), SLICE);
    assert_eq!(
        node.counts(),
        empty_node,
        "ssh sessions leaked kernel objects"
    );
    node.assert_no_leaks_after_cleanup();
}

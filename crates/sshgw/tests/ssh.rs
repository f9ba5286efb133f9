//! The gateway driven by the real OpenSSH client over loopback.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_returns_stdout_and_exit_status() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let out = output(h.ssh("pl_demo", &k, &["echo hello; pwd; exit 3"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("hello\n"), "{stdout}");
    assert!(stdout.trim_end().ends_with("pl_demo"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_is_separate_from_stdout() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let out = output(h.ssh("pl_demo", &k, &["echo to-out; echo to-err >&2"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "to-out\n");
    assert!(
        text(&out.stderr).contains("to-err\n"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("to-out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_is_passed_through_and_eof_ends_it() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let out = output_with_stdin(h.ssh("pl_demo", &k, &["cat"]), b"hi\n".to_vec()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");

    // Several MiB both ways: flow control in both directions, nothing lost or reordered.
    let big: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let out = output_with_stdin(h.ssh("pl_demo", &k, &["cat"]), big.clone()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), big.len());
    assert!(out.stdout == big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_session_has_a_terminal_and_default_size() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let out = output(h.ssh_opts(
        "pl_demo",
        &k,
        &["-tt", "-o", "RequestTTY=force"],
        &["tty; stty size; echo TERM=$TERM; exit 4"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("/dev/pts/"), "{stdout}");
    // ssh's own stdin is no terminal, so it asks for 0x0, which the gateway makes 80x24.
    assert!(stdout.contains("24 80"), "{stdout}");
    // Over a pty, output lines end in \r\n.
    assert!(stdout.contains("\r\n"), "{stdout:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_shell_over_a_pty() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let out = output_with_stdin(
        h.ssh_opts("pl_demo", &k, &["-tt"], &[]),
        b"echo sum=$((6*7)); tty\nexit 5\n".to_vec(),
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("sum=42"), "{stdout}");
    assert!(stdout.contains("/dev/pts/"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_slice_is_refused_with_a_message() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let out = output(h.ssh("pl_nothere", &k, &["true"])).await;
    assert_eq!(out.status.code(), Some(255));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("slice \"pl_nothere\" has no sliver on this node"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused_with_a_message() {
    let h = Harness::start().await;
    let alice = h.key("alice");
    let mallory = h.key("mallory");
    h.access
        .set_keys("pl_demo", vec![alice.public_line.clone()]);
    let out = output(h.ssh_opts("pl_demo", &mallory, &["-o", "BatchMode=no"], &["true"])).await;
    assert_eq!(out.status.code(), Some(255));
    let stderr = text(&out.stderr);
    eprintln!("{stderr}");
    assert!(
        stderr.contains("key not authorized for slice \"pl_demo\""),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_in_batch_mode_is_refused() {
    let h = Harness::start().await;
    let alice = h.key("alice");
    let mallory = h.key("mallory");
    h.access
        .set_keys("pl_demo", vec![alice.public_line.clone()]);
    let out = output(h.ssh("pl_demo", &mallory, &["true"])).await;
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_key_revokes_the_next_login() {
    let h = Harness::start().await;
    let alice = h.key("alice");
    let bob = h.key("bob");
    h.access.set_keys(
        "pl_demo",
        vec![alice.public_line.clone(), bob.public_line.clone()],
    );
    let out = output(h.ssh("pl_demo", &alice, &["echo in"])).await;
    assert_eq!(text(&out.stdout), "in\n", "{}", text(&out.stderr));
    // alice leaves the slice: her key goes from the desired state.
    h.access.set_keys("pl_demo", vec![bob.public_line.clone()]);
    let out = output(h.ssh("pl_demo", &alice, &["echo in"])).await;
    assert_eq!(out.status.code(), Some(255));
    assert!(out.stdout.is_empty());
    let out = output(h.ssh("pl_demo", &bob, &["echo in"])).await;
    assert_eq!(text(&out.stdout), "in\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_sessions() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let c = h.ssh(
                "pl_demo",
                &k,
                &[&format!("sleep 0.2; echo run-{i}; exit {i}")],
            );
            tokio::spawn(output(c))
        })
        .collect();
    for (i, r) in runs.into_iter().enumerate() {
        let out = r.await.unwrap();
        assert_eq!(out.status.code(), Some(i as i32), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("run-{i}\n"));
    }
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purpose (its parent, the gateway, reaps it).
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

async fn wait_dead(pid: i32) {
    for _ in 0..100 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("process {pid} still alive 5 s after its session ended");
}

/// Starts `ssh … CMD` where CMD prints PIDs and then blocks; returns the ssh child and the PIDs.
async fn start_blocking_session(
    h: &Harness,
    k: &Key,
    cmd: &str,
    n: usize,
) -> (tokio::process::Child, Vec<i32>) {
    use tokio::io::AsyncBufReadExt;
    let mut c = h.ssh("pl_demo", k, &[cmd]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut pids = Vec::new();
    while pids.len() < n {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        pids.push(line.trim().parse::<i32>().unwrap());
    }
    (child, pids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_going_away_kills_the_session_processes() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let (mut ssh, pids) =
        start_blocking_session(&h, &k, "sleep 300 & echo $!; echo $$; wait", 2).await;
    assert!(pids.iter().all(|p| alive(*p)));
    ssh.kill().await.unwrap();
    for p in pids {
        wait_dead(p).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_shutdown_kills_sessions_and_stops_listening() {
    let mut h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let (mut ssh, pids) = start_blocking_session(&h, &k, "echo $$; sleep 300", 1).await;
    let gw = h.gw.take().unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), gw.shutdown())
        .await
        .unwrap();
    wait_dead(pids[0]).await;
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), ssh.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(255));
    assert!(std::net::TcpStream::connect(("127.0.0.1", h.port)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_by_a_signal_is_reported() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let out = output(h.ssh("pl_demo", &k, &["kill -TERM $$"])).await;
    // OpenSSH's client exits 255 when the remote command was killed by a signal.
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_env_subset_is_passed() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let mut c = h.ssh_opts(
        "pl_demo",
        &k,
        &["-o", "SendEnv=LC_SLICELAB_TEST LD_PRELOAD"],
        &["echo lc=$LC_SLICELAB_TEST ld=$LD_PRELOAD"],
    );
    c.env("LC_SLICELAB_TEST", "yes").env("LD_PRELOAD", "");
    let out = output(c).await;
    assert_eq!(text(&out.stdout), "lc=yes ld=\n", "{}", text(&out.stderr));
}

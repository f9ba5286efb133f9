//! The node's services through the gateway, driven with the real OpenSSH client: the
//! `site_admin` context (its own keys, commands and shell, no sftp, no way into a sliver) and
//! the subsystems offered to a slice's persons.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_admin_runs_the_admin_context_with_the_persons_name() {
    let h = Harness::start().await;
    let staff = h.key("tech");
    h.access
        .set_keys("site_admin", vec![staff.public_line.clone()]);
    let out = output(h.ssh("site_admin", &staff, &["slivers", "--all"])).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "admin tech@test: slivers --all\n");

    let out = output(h.ssh("site_admin", &staff, &["fail"])).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(text(&out.stderr).contains("failed as asked"), "{out:?}");

    let out = output(h.ssh("site_admin", &staff, &["refuse"])).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("refused as asked"), "{out:?}");

    let out = output_with_stdin(
        h.ssh_opts("site_admin", &staff, &["-T"], &[]),
        b"one\ntwo\nexit\nnever\n".to_vec(),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "got one\ngot two\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_admin_refuses_other_keys_and_has_no_sftp() {
    let h = Harness::start().await;
    let staff = h.key("tech");
    let user = h.key("user");
    h.access.set_keys("pl_a", vec![user.public_line.clone()]);

    // No admin context on this node at all.
    let out = output(h.ssh("site_admin", &staff, &["slivers"])).await;
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        text(&out.stderr).contains("offers no site_admin context"),
        "{out:?}"
    );

    h.access
        .set_keys("site_admin", vec![staff.public_line.clone()]);
    let out = output(h.ssh_opts("site_admin", &user, &["-o", "BatchMode=no"], &["slivers"])).await;
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        text(&out.stderr).contains("not a key of a PI or tech of this node's site"),
        "{out:?}"
    );
    // Staff keys do not open slices.
    let out = output(h.ssh("pl_a", &staff, &["true"])).await;
    assert_eq!(out.status.code(), Some(255), "{out:?}");

    let mut sftp = tokio::process::Command::new("sftp");
    sftp.args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes", "-i"])
        .arg(&staff.private)
        .args(["-P", &h.port.to_string(), "-b", "-", "site_admin@127.0.0.1"])
        .kill_on_drop(true);
    let out = output_with_stdin(sftp, b"ls /\n".to_vec()).await;
    assert!(!out.status.success(), "sftp must be refused: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slice_subsystems_are_only_those_offered() {
    let h = Harness::start().await;
    let user = h.key("user");
    h.access.set_keys("pl_a", vec![user.public_line.clone()]);
    let out = output_with_stdin(
        h.ssh_opts("pl_a", &user, &["-s"], &["slicelab-upper"]),
        b"hello\n".to_vec(),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "HELLO\n");

    let out = output_with_stdin(
        h.ssh_opts("pl_a", &user, &["-s"], &["slicelab-nothing"]),
        b"hello\n".to_vec(),
    )
    .await;
    assert!(!out.status.success(), "{out:?}");
    assert!(
        text(&out.stderr).contains("subsystem request failed"),
        "{out:?}"
    );
}

//! File copy with the real `scp` (SFTP protocol, OpenSSH ≥ 9) and `sftp` clients.

mod common;

use common::*;

fn client(h: &Harness, prog: &str, k: &Key) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(prog);
    c.args(["-F", "/dev/null"])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes"])
        .arg("-i")
        .arg(&k.private)
        .arg("-P")
        .arg(h.port.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_round_trip() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let local = h.tmp.path().join("up.bin");
    std::fs::write(&local, &data).unwrap();

    let mut up = client(&h, "/usr/bin/scp", &k);
    up.arg(&local).arg("pl_demo@127.0.0.1:/data.bin");
    let out = output(up).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::read(h.access.dir("pl_demo").join("data.bin")).unwrap() == data);

    let back = h.tmp.path().join("back.bin");
    let mut down = client(&h, "/usr/bin/scp", &k);
    down.arg("pl_demo@127.0.0.1:data.bin").arg(&back);
    let out = output(down).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::read(&back).unwrap() == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_batch_mkdir_put_ls_rename_get_rm() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    let local = h.tmp.path().join("hello.txt");
    std::fs::write(&local, "hello sliver\n").unwrap();
    let got = h.tmp.path().join("got.txt");
    let batch = h.tmp.path().join("batch");
    std::fs::write(
        &batch,
        format!(
            "mkdir /d\nput {} /d/a.txt\nls -l /d\nrename /d/a.txt /d/b.txt\nget /d/b.txt {}\nrm /d/b.txt\nrmdir /d\n",
            local.display(),
            got.display()
        ),
    )
    .unwrap();
    let mut c = client(&h, "/usr/bin/sftp", &k);
    c.arg("-b").arg(&batch).arg("pl_demo@127.0.0.1");
    let out = output(c).await;
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("a.txt"), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "hello sliver\n");
    assert!(!h.access.dir("pl_demo").join("d").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_cannot_leave_the_sliver_root() {
    let h = Harness::start().await;
    let k = h.key("alice");
    h.access.set_keys("pl_demo", vec![k.public_line.clone()]);
    // A host file outside the sliver, and symlinks in the sliver that point at it.
    let secret = h.tmp.path().join("secret.txt");
    std::fs::write(&secret, "host secret\n").unwrap();
    let root = h.access.dir("pl_demo");
    std::os::unix::fs::symlink(&secret, root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../secret.txt", root.join("rel")).unwrap();
    std::os::unix::fs::symlink(h.tmp.path(), root.join("dirlink")).unwrap();

    for remote in ["/abs", "/rel", "../../secret.txt", "/dirlink/secret.txt"] {
        let dest = h.tmp.path().join("stolen");
        let _ = std::fs::remove_file(&dest);
        let mut c = client(&h, "/usr/bin/scp", &k);
        c.arg(format!("pl_demo@127.0.0.1:{remote}")).arg(&dest);
        let out = output(c).await;
        assert!(!out.status.success(), "{remote} was copied");
        let got = std::fs::read_to_string(&dest).unwrap_or_default();
        assert!(
            !got.contains("host secret"),
            "{remote} leaked the host file"
        );
    }
    // Writing through a symlink lands inside the root, never on the host file.
    let local = h.tmp.path().join("evil.txt");
    std::fs::write(&local, "overwritten\n").unwrap();
    let mut c = client(&h, "/usr/bin/scp", &k);
    c.arg(&local).arg("pl_demo@127.0.0.1:/rel");
    let _ = output(c).await;
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret\n");
}

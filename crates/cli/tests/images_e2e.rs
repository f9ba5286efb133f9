//! Images end to end on a `slicelab up` testbed, as researchers use them (root only):
//! - the Debian image (mmdebstrap, cached in $SLICELAB_IMAGE_CACHE across CI steps) published by
//!   `up` and imported again by `slicelab image import`; two slices on two nodes run `python3 -c`;
//! - an image pushed by `skopeo copy` into Debian's `docker-registry` on loopback, then
//!   `slicelab image pull`: a sliver runs it;
//! - deleting an image a slice uses is refused with the slice named;
//! - a blob corrupted at central is refused by the node, and the sliver says why;
//! - `slicelab down` leaves nothing behind.

mod testbed;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testbed::{text, up_lock, Leftovers, Testbed};

/// `slicelab exec SLICE -- ARGV` until every node answers `want` (images are fetched lazily).
fn wait_exec(tb: &Testbed, slice: &str, argv: &[&str], want: &str, nodes: usize) {
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < Duration::from_secs(180) {
        let mut args = vec!["exec", slice, "--"];
        args.extend_from_slice(argv);
        let o = tb.run(&args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let ok = out
            .lines()
            .filter(|l| l.ends_with(&format!(" | {want}")))
            .count();
        if o.status.success() && ok == nodes {
            eprintln!(
                "{slice}: {argv:?} answered on {nodes} nodes after {:?}",
                t0.elapsed()
            );
            return;
        }
        last = text(&o);
        std::thread::sleep(Duration::from_millis(500));
    }
    let slivers = tb.run(&["slice", "slivers", slice, "-o", "json"]);
    panic!(
        "{slice}: {argv:?} never answered {want:?} on {nodes} nodes:\n{last}\n{}",
        text(&slivers)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Debian's `docker-registry` on 127.0.0.1, killed on drop.
struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    addr: String,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (apt install docker-registry)");
        let addr = format!("127.0.0.1:{port}");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "registry did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            _dir: dir,
            addr,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A header owned by root, dated 0 (`Header::new_gnu` leaves those fields blank).
fn header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// A root-filesystem tarball: the host's static busybox as /bin/sh, plus a marker file.
fn busybox_rootfs(path: &Path, marker: &str) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    let mut dir = |p: &str| {
        let mut h = header();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, p, &[][..]).unwrap();
    };
    for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev"] {
        dir(d);
    }
    let bb = fs::read("/bin/busybox").expect("busybox-static");
    let mut h = header();
    h.set_mode(0o755);
    h.set_size(bb.len() as u64);
    h.set_cksum();
    b.append_data(&mut h, "bin/busybox", &bb[..]).unwrap();
    let mut h = header();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_cksum();
    b.append_link(&mut h, "bin/sh", "busybox").unwrap();
    let mut h = header();
    h.set_mode(0o644);
    h.set_size(marker.len() as u64);
    h.set_cksum();
    b.append_data(&mut h, "etc/marker", marker.as_bytes())
        .unwrap();
    b.into_inner().unwrap().flush().unwrap();
}

fn blob_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.parent().is_some_and(|q| q.ends_with("blobs/sha256")) {
                v.push(p);
            }
        }
    }
    v
}

#[test]
fn images_imported_pulled_and_verified_on_a_testbed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED images_imported_pulled_and_verified_on_a_testbed: needs root");
        return;
    }
    let _lock = up_lock();
    assert!(
        !Leftovers::other_testbed_running(),
        "a `slicelab up` testbed is running here; stop it first"
    );
    let tb = Testbed::new("slicelab-img-test");
    let dirp = tb.dir.path().to_path_buf();
    let o = tb.run(&["up", "--nodes", "2", "--detach", "--port", "18082"]);
    assert!(o.status.success(), "up: {}", text(&o));
    let summary = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        summary.contains("slice tag set demo_slice image debian"),
        "up offers the Debian image: {}",
        text(&o)
    );
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(dirp.join("testbed.json")).unwrap()).unwrap();
    let hosts: Vec<String> = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["hostname"].as_str().map(String::from))
        .collect();
    assert_eq!(hosts.len(), 2);

    // The same mmdebstrap tarball `up` published, imported by hand under another name: its
    // layer is already at central, so nothing is uploaded twice.
    let cache = std::env::var_os("SLICELAB_IMAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/slicelab/images"));
    let tarball = cache.join(format!(
        "debian-bookworm-python3.{}",
        slicelab_image::build::TARBALL_EXTENSION
    ));
    let o = tb.run(&["image", "import", "pydeb", tarball.to_str().unwrap()]);
    assert!(o.status.success(), "image import: {}", text(&o));
    assert!(text(&o).contains("already at central"), "{}", text(&o));

    // Two slices on two nodes run python3 from it.
    let o = tb.run(&["slice", "add", "demo_py"]);
    assert!(o.status.success(), "slice add: {}", text(&o));
    // The demo user's key is the one `exec` uses.
    let o = tb.run(&["slice", "add-person", "demo_py", "user@demo.slicelab.test"]);
    assert!(o.status.success(), "add-person: {}", text(&o));
    let mut add = vec!["slice", "add-nodes", "demo_py"];
    add.extend(hosts.iter().map(String::as_str));
    let o = tb.run(&add);
    assert!(o.status.success(), "add-nodes: {}", text(&o));
    for (slice, image) in [("demo_slice", "debian"), ("demo_py", "pydeb")] {
        let o = tb.run(&["slice", "tag", "set", slice, "image", image]);
        assert!(o.status.success(), "tag set: {}", text(&o));
    }
    for slice in ["demo_slice", "demo_py"] {
        // One argument: `exec`, like ssh, hands the command line to the sliver's shell.
        wait_exec(&tb, slice, &["python3 -c 'print(6*7)'"], "42", 2);
    }

    // An image a slice uses cannot be deleted; the refusal names the slice.
    let o = tb.run(&["image", "delete", "pydeb"]);
    assert!(!o.status.success(), "delete of a used image: {}", text(&o));
    assert!(text(&o).contains("demo_py"), "{}", text(&o));

    // skopeo → docker-registry on loopback → `slicelab image pull` → a sliver runs it.
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs.tar");
    busybox_rootfs(&rootfs, "pulled\n");
    let layout = work.path().join("layout");
    let src = slicelab_image::archive::open(&rootfs).expect("rootfs tarball");
    slicelab_image::archive::write_oci_layout(&src, &layout, "v1").expect("OCI layout");
    let o = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker://{}/bb:v1", reg.addr))
        .output()
        .expect("skopeo (apt install skopeo)");
    assert!(o.status.success(), "skopeo copy: {}", text(&o));
    let reference = format!("{}/bb:v1", reg.addr);
    let o = tb.run(&["image", "pull", "bb", &reference, "--insecure"]);
    assert!(o.status.success(), "image pull: {}", text(&o));
    let o = tb.run(&["slice", "tag", "set", "demo_py", "image", "bb"]);
    assert!(o.status.success(), "tag set: {}", text(&o));
    wait_exec(&tb, "demo_py", &["cat", "/etc/marker"], "pulled", 2);
    // Now unused, pydeb can go.
    let o = tb.run(&["image", "delete", "pydeb"]);
    assert!(o.status.success(), "delete: {}", text(&o));

    // A bad archive (blank owner fields a node could not read) is refused at import, by name,
    // and nothing is stored.
    let blank = work.path().join("blank.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&blank).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(3);
        h.set_cksum();
        b.append_data(&mut h, "etc/motd", &b"hi\n"[..]).unwrap();
        b.into_inner().unwrap().flush().unwrap();
    }
    let blobs_before = blob_files(&dirp);
    let o = tb.run(&["image", "import", "blank", blank.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "a bad archive was accepted: {}",
        text(&o)
    );
    assert!(text(&o).contains("etc/motd"), "{}", text(&o));
    assert_eq!(blob_files(&dirp), blobs_before, "nothing stored");
    let o = tb.run(&["image", "show", "blank"]);
    assert!(!o.status.success(), "no image: {}", text(&o));

    // A blob corrupted at central: the node refuses it and the sliver says why.
    let bad = work.path().join("bad.tar");
    busybox_rootfs(&bad, "never runs\n");
    let before = blob_files(&dirp);
    let o = tb.run(&["image", "import", "broken", bad.to_str().unwrap()]);
    assert!(o.status.success(), "import: {}", text(&o));
    let new: Vec<PathBuf> = blob_files(&dirp)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(new.len(), 1, "one new blob at central: {new:?}");
    let len = fs::metadata(&new[0]).unwrap().len() as usize;
    fs::write(&new[0], vec![b'x'; len]).unwrap();
    let o = tb.run(&["slice", "tag", "set", "demo_py", "image", "broken"]);
    assert!(o.status.success(), "tag set: {}", text(&o));
    let t0 = Instant::now();
    loop {
        let o = tb.run(&["slice", "slivers", "demo_py", "-o", "json"]);
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        let slivers: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
        let refused = slivers.as_array().is_some_and(|a| {
            a.len() == 2
                && a.iter().all(|v| {
                    v["state"] == "failed"
                        && v["message"].as_str().is_some_and(|m| m.contains("refused"))
                })
        });
        if refused {
            eprintln!("corrupt blob refused: {s}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "slivers never said the blob was refused: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let o = tb.run(&["down"]);
    assert!(o.status.success(), "down: {}", text(&o));
    assert_eq!(Leftovers::take(&dirp), Leftovers::default());
}

//! Published images in real slivers (root): layers unpacked by `slicelab_image::unpack` into the
//! node's store and stacked as idmapped overlay lowers — whiteouts and opaque directories hide
//! what they must, the image's Env/WorkingDir/User/Cmd run as the service, a setuid file belongs
//! to the slice's range on the host, two slivers share one copy of the layers, and GC removes
//! only what no sliver uses.

mod common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use slicelab_model::image::{Compression, ImageConfig, ImageManifest, LayerRef, LAYER_TAR};
use slicelab_node::image::store::{sha256, ImageStore};
use slicelab_node::Runtime;

/// A tar entry for a layer built by hand.
enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a str, u32, u32),
}

fn layer_tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        match e {
            E::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                h.set_uid(0);
                h.set_gid(0);
                h.set_cksum();
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::File(p, body, mode, uid) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(body.len() as u64);
                h.set_uid(u64::from(*uid));
                h.set_gid(u64::from(*uid));
                h.set_cksum();
                b.append_data(&mut h, p, body.as_bytes()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// The built-in busybox tree as a layer tar.
fn base_tar(state: &Path) -> Vec<u8> {
    let dir = slicelab_node::image::ensure_image(state, "base").expect("busybox image");
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &dir).unwrap();
    b.into_inner().unwrap()
}

/// Unpacks `tars` (bottom first) into the store as one image with `config`; its digest.
fn install(store: &ImageStore, scratch: &Path, tars: &[Vec<u8>], config: ImageConfig) -> String {
    let mut layers = Vec::new();
    for t in tars {
        let digest = sha256(t);
        if !store.has_layer(&digest) {
            let blob = scratch.join(digest.replace(':', "-"));
            fs::write(&blob, t).unwrap();
            let staged = store.staging_dir(&digest).unwrap();
            let r = slicelab_image::unpack::unpack_layer(&blob, Compression::None, &staged)
                .expect("unpack");
            store
                .install_layer(&digest, LAYER_TAR, &staged, r.bytes)
                .unwrap();
        }
        layers.push(LayerRef {
            digest,
            size: t.len() as u64,
            media_type: LAYER_TAR.into(),
        });
    }
    let m = ImageManifest { config, layers };
    let bytes = m.to_canonical_json();
    let digest = sha256(&bytes);
    store.save_manifest(&digest, &bytes).unwrap();
    digest
}

fn layer_dirs(state: &Path) -> usize {
    fs::read_dir(state.join("store/layers"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .count()
}

#[test]
fn published_image_runs_its_command_with_layers_stacked_and_shared() {
    let Some(()) = root_or_skip("published_image_runs_its_command_with_layers_stacked_and_shared")
    else {
        return;
    };
    let node = TestNode::new(12);
    let empty = node.counts();
    let state = node.dir.path();
    let scratch = tempfile::tempdir().unwrap();
    let store = ImageStore::open(state).unwrap();
    let l1 = base_tar(state);
    let l2 = layer_tar(&[
        E::Dir("srv", 0o777),
        E::Dir("opt", 0o755),
        E::File("opt/old.txt", "old\n", 0o644, 0),
        E::File("bin/suid-tool", "#!/bin/sh\necho suid\n", 0o4755, 0),
        E::File("etc/motd", "from layer 2\n", 0o644, 0),
    ]);
    let l3 = layer_tar(&[
        E::File("etc/.wh.os-release", "", 0o644, 0),
        E::File("opt/.wh..wh..opq", "", 0o644, 0),
        E::File("opt/new.txt", "new\n", 0o644, 0),
    ]);
    let config = ImageConfig {
        env: vec![
            "GREETING=hello from the image".into(),
            "PATH=/bin:/usr/bin:/sbin".into(),
        ],
        cmd: vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo \"$GREETING\" > out.txt; id -u >> out.txt; pwd >> out.txt; exec sleep 1000000"
                .into(),
        ],
        working_dir: Some("/srv".into()),
        user: Some("65534:65534".into()),
        ..Default::default()
    };
    let digest = install(&store, scratch.path(), &[l1, l2, l3], config);
    assert_eq!(layer_dirs(state), 3);

    let mut a = spec("pl_img_a", None);
    a.image_digest = Some(digest.clone());
    node.start(&a);
    // The image's command runs as the service: its Env, WorkingDir and User.
    let t0 = Instant::now();
    let out = loop {
        let o = node.sh("pl_img_a", "cat /srv/out.txt");
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        if s.lines().count() >= 3 {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the image's command did not run: {s:?}\n{}",
            node.console("pl_img_a")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(out, "hello from the image\n65534\n/srv\n");
    // Sessions get the image's Env too.
    assert_eq!(
        node.sh_ok("pl_img_a", "echo $GREETING").trim(),
        "hello from the image"
    );
    // Whiteouts and opaque directories of the upper layers hide what lies below.
    assert_eq!(node.sh_ok("pl_img_a", "cat /etc/motd"), "from layer 2\n");
    assert!(!node
        .sh("pl_img_a", "test -e /etc/os-release")
        .status
        .success());
    assert_eq!(node.sh_ok("pl_img_a", "ls /opt").trim(), "new.txt");
    // A setuid file of the image: root's inside, the slice's range's on the host.
    assert_eq!(
        node.sh_ok("pl_img_a", "stat -c '%u %a' /bin/suid-tool")
            .trim(),
        "0 4755"
    );
    let (root_uid, _) = node.rt().root_ids("pl_img_a").expect("uid range");
    assert!(root_uid >= 1 << 16, "mapped into a range, not host root");
    let init = node.rt().init_of("pl_img_a").expect("running");
    let host_view = fs::metadata(format!("/proc/{}/root/bin/suid-tool", init.pid)).unwrap();
    assert_eq!(
        host_view.uid(),
        root_uid,
        "host sees the range's root as owner"
    );
    // The store's copy is only root's to reach.
    let store_mode = fs::metadata(state.join("store")).unwrap().mode() & 0o777;
    assert_eq!(store_mode, 0o700);

    // A second slice shares the same layers: nothing new in the store.
    let mut b = spec("pl_img_b", None);
    b.image_digest = Some(digest.clone());
    node.start(&b);
    assert_eq!(node.sh_ok("pl_img_b", "cat /opt/new.txt"), "new\n");
    assert_eq!(layer_dirs(state), 3);
    // Writes stay in each sliver's own layer.
    node.sh_ok("pl_img_a", "echo mine > /opt/new.txt");
    assert_eq!(node.sh_ok("pl_img_b", "cat /opt/new.txt"), "new\n");

    // GC keeps what slivers use, even at budget 0 ...
    let in_use = HashSet::from([digest.clone()]);
    assert!(store.gc(&in_use, 0).unwrap().images.is_empty());
    assert_eq!(layer_dirs(state), 3);
    node.rt().destroy("pl_img_a").unwrap();
    node.rt().destroy("pl_img_b").unwrap();
    // ... and removes it once none does.
    let r = store.gc(&HashSet::new(), 0).unwrap();
    assert_eq!(r.images, vec![digest.clone()]);
    assert_eq!(layer_dirs(state), 0);
    assert!(!store.is_ready(&digest));
    assert_eq!(node.counts(), empty, "slivers leaked kernel objects");
    node.assert_no_leaks_after_cleanup();
}

/// A real central (SQLite in `db`, blobs beside it) with site `pl`, node `node1.pl.test`, the
/// one-layer image `bb` made of `blob`, and slice `pl_fetch` whose `image` tag names it (not yet
/// on the node). Returns central, the admin's client and the node's key.
async fn central_with_image(
    db: &Path,
    blob: &Path,
    digest: &str,
    size: u64,
) -> (slicelab_central::Running, slicelab_client::Client, String) {
    use serde_json::{json, Value};
    use slicelab_model::image::{NewImage, Visibility};
    use slicelab_model::objects::{NodeWithKey, SliceTagSet};
    use slicelab_model::TagName;
    let central = start_central(db, std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let admin = admin_client(&format!("http://{}", central.addr)).await;
    let site: slicelab_model::objects::Site = admin
        .post(
            "/sites",
            &json!({"login_base": "pl", "name": "PL", "max_slices": 3}),
        )
        .await
        .unwrap();
    let n: NodeWithKey = admin
        .post(
            "/nodes",
            &json!({"hostname": "node1.pl.test", "site": "pl"}),
        )
        .await
        .unwrap();
    admin.put_blob(digest, blob).await.unwrap();
    let manifest = ImageManifest {
        config: ImageConfig::default(),
        layers: vec![LayerRef {
            digest: digest.to_string(),
            size,
            media_type: LAYER_TAR.into(),
        }],
    };
    admin
        .create_image(&NewImage {
            name: "bb".into(),
            visibility: Visibility::Site,
            site_id: Some(site.id),
            manifest,
        })
        .await
        .unwrap();
    let _: Value = admin
        .post("/slices", &json!({"name": "pl_fetch"}))
        .await
        .unwrap();
    admin
        .set_slice_tag(
            "pl_fetch",
            TagName::Image,
            &SliceTagSet {
                value: "bb".into(),
                node: None,
            },
        )
        .await
        .unwrap();
    (central, admin, n.node_key)
}

fn node_config(
    node: &TestNode,
    central: &slicelab_central::Running,
    key: String,
    mirrors: Vec<String>,
) -> slicelab_node::Config {
    slicelab_node::Config {
        central: format!("http://{}", central.addr),
        key,
        state_dir: node.dir.path().to_path_buf(),
        names: node.names().clone(),
        init_exe: Some(INIT_EXE.into()),
        reconcile_every: Duration::from_secs(1),
        audit_flows: false,
        image_mirrors: mirrors,
        ..Default::default()
    }
}

/// The node fetches a published image from a real central: a download it finds half done is
/// resumed (here a planted half of garbage, so the resumed blob's digest is wrong), refused with
/// the reason in the sliver's report, then fetched afresh after the back-off and run.
#[test]
fn fetch_resumes_verifies_reports_and_retries() {
    use serde_json::{json, Value};
    use slicelab_model::sliver::Sliver;
    use slicelab_model::SliverState;

    let Some(()) = root_or_skip("fetch_resumes_verifies_reports_and_retries") else {
        return;
    };
    let node = TestNode::new(13);
    let state = node.dir.path().to_path_buf();
    let scratch = tempfile::tempdir().unwrap();
    let blob = scratch.path().join("layer.tar");
    let layer = base_tar(&state);
    fs::write(&blob, &layer).unwrap();
    let digest = sha256(&layer);
    let store = ImageStore::open(&state).unwrap();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = tempfile::tempdir().unwrap();
    tokio_rt.block_on(async {
        let (central, admin, key) =
            central_with_image(db.path(), &blob, &digest, layer.len() as u64).await;
        // A download cut off halfway, as a node finds it after a restart: the manifest (saved
        // before any blob) and half the blob's length, all garbage — a resumed download keeps it
        // and gets the rest. (A partial blob without its manifest is garbage to the GC.)
        let image: Value = admin.get("/images/bb").await.unwrap();
        let image_digest = image["digest"].as_str().unwrap().to_string();
        let manifest =
            slicelab_client::Client::new(&format!("http://{}", central.addr), Some(key.clone()))
                .manifest(&image_digest)
                .await
                .unwrap();
        store.save_manifest(&image_digest, &manifest).unwrap();
        fs::write(
            store.partial_blob(&digest).unwrap(),
            vec![b'x'; layer.len() / 2],
        )
        .unwrap();
        let cfg = slicelab_node::Config {
            // Keep no image no sliver uses: the daemon's GC removes it once the slice goes.
            image_budget: 0,
            ..node_config(&node, &central, key, vec![])
        };
        // The slice is on the node before the daemon starts: its first desired state names
        // the image, so no GC round finds the download unwanted.
        let _: Value = admin
            .post(
                "/slices/pl_fetch/nodes",
                &json!({"names": ["node1.pl.test"]}),
            )
            .await
            .unwrap();
        let daemon = tokio::spawn(slicelab_node::run(cfg));
        // First the resumed, wrong blob: refused, and the sliver says why.
        let t0 = Instant::now();
        let refused = loop {
            let s: Vec<Sliver> = admin.get("/slices/pl_fetch/slivers").await.unwrap();
            if let Some(s) = s.iter().find(|s| s.state == SliverState::Failed) {
                break s.message.clone();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "never refused: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            refused.contains(&digest) && refused.contains("refused"),
            "{refused}"
        );
        // Then, after the back-off, a fresh download: the sliver runs the image.
        let t0 = Instant::now();
        while node.rt().init_of("pl_fetch").is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "never ran after the retry"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(store.is_ready(&store.images()[0]));
        assert!(
            !store.partial_blob(&digest).unwrap().exists(),
            "download removed once unpacked"
        );
        assert_eq!(node.sh_ok("pl_fetch", "echo ok").trim(), "ok");
        // Used, it stays at budget 0; once the slice leaves the node, the daemon's GC removes it.
        assert_eq!(store.images().len(), 1);
        let _: Value = admin
            .delete("/slices/pl_fetch/nodes/node1.pl.test")
            .await
            .unwrap();
        let t0 = Instant::now();
        while !store.images().is_empty() || layer_dirs(&state) > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the unused image was never collected"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(node.rt().init_of("pl_fetch").is_none());
        daemon.abort();
        let _ = daemon.await;
        central.shutdown().await;
    });
}

/// A static web server (`python3 -m http.server`) on 127.0.0.1 serving `dir`; killed on drop.
struct Mirror(std::process::Child, String);

impl Mirror {
    fn serve(dir: &Path) -> Mirror {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let addr = format!("127.0.0.1:{port}");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mirror did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Mirror(child, format!("http://{addr}"))
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Mirrors come first and are untrusted: a mirror with the right blob serves it even when
/// central cannot (its copy is gone); a mirror serving wrong bytes is passed over for central.
#[test]
fn mirrors_serve_blobs_and_a_lying_mirror_is_passed_over() {
    use serde_json::{json, Value};

    let Some(()) = root_or_skip("mirrors_serve_blobs_and_a_lying_mirror_is_passed_over") else {
        return;
    };
    let node = TestNode::new(14);
    let state = node.dir.path().to_path_buf();
    let scratch = tempfile::tempdir().unwrap();
    let blob = scratch.path().join("layer.tar");
    let layer = base_tar(&state);
    fs::write(&blob, &layer).unwrap();
    let digest = sha256(&layer);
    let hex = digest.trim_start_matches("sha256:").to_string();
    let good = tempfile::tempdir().unwrap();
    fs::create_dir_all(good.path().join("blobs/sha256")).unwrap();
    fs::write(good.path().join("blobs/sha256").join(&hex), &layer).unwrap();
    let lying = tempfile::tempdir().unwrap();
    fs::create_dir_all(lying.path().join("blobs/sha256")).unwrap();
    fs::write(
        lying.path().join("blobs/sha256").join(&hex),
        vec![b'x'; layer.len()],
    )
    .unwrap();
    let (good_m, lying_m) = (Mirror::serve(good.path()), Mirror::serve(lying.path()));
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = tempfile::tempdir().unwrap();
    tokio_rt.block_on(async {
        let (central, admin, key) =
            central_with_image(db.path(), &blob, &digest, layer.len() as u64).await;
        // Central's own copy is gone: only the good mirror has the blob.
        let at_central = db.path().join("blobs/sha256").join(&hex);
        let kept = fs::read(&at_central).expect("central's blob file");
        fs::remove_file(&at_central).unwrap();
        let cfg = node_config(&node, &central, key.clone(), vec![good_m.1.clone()]);
        let daemon = tokio::spawn(slicelab_node::run(cfg));
        let _: Value = admin
            .post(
                "/slices/pl_fetch/nodes",
                &json!({"names": ["node1.pl.test"]}),
            )
            .await
            .unwrap();
        let t0 = Instant::now();
        while node.rt().init_of("pl_fetch").is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "never ran from the mirror"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        daemon.abort();
        let _ = daemon.await;

        // Now the lying mirror only, central's copy back, the image gone from the node.
        node.rt().destroy("pl_fetch").unwrap();
        let store = ImageStore::open(&state).unwrap();
        store.gc(&HashSet::new(), 0).unwrap();
        assert!(!store.has_layer(&digest));
        fs::write(&at_central, kept).unwrap();
        let cfg = node_config(&node, &central, key, vec![lying_m.1.clone()]);
        let daemon = tokio::spawn(slicelab_node::run(cfg));
        let t0 = Instant::now();
        while node.rt().init_of("pl_fetch").is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "a lying mirror kept the image from running"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(node.sh_ok("pl_fetch", "echo ok").trim(), "ok");
        daemon.abort();
        let _ = daemon.await;
        central.shutdown().await;
    });
}

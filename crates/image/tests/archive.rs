//! `archive::open` on every form it accepts (OCI layout, its tar, docker save old and new,
//! plain rootfs tarballs) and refusing broken ones; `write_oci_layout` read back by us and by
//! skopeo.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use slicelab_image::archive::{open, write_oci_layout};
use slicelab_image::digest::sha256_file;
use slicelab_image::{unpack_layer, ImageError};
use slicelab_model::image::{
    layer_compression, Compression, LAYER_TAR, LAYER_TAR_GZIP, LAYER_TAR_ZSTD,
};

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn bad(r: Result<slicelab_image::ImageSource, ImageError>, needle: &str) {
    match r {
        Err(ImageError::BadArchive(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        other => panic!("expected BadArchive({needle:?}), got {other:?}"),
    }
}

/// A layout in `dir` from the small rootfs (gzip), with a command.
fn layout(dir: &Path) -> PathBuf {
    let tarball = common::small_rootfs().write_gzip(&dir.join("rootfs.tar.gz"));
    let mut src = open(&tarball).unwrap();
    src.config.cmd = vec!["/bin/hello".into()];
    src.config.working_dir = Some("/etc".into());
    let out = dir.join("layout");
    write_oci_layout(&src, &out, "v1").unwrap();
    out
}

#[test]
fn plain_rootfs_tarballs_are_one_layer() {
    let dir = tempfile::tempdir().unwrap();
    let t = common::small_rootfs();
    let plain = t.write(&dir.path().join("a-name-that-says-nothing"));
    let gz = t.write_gzip(&dir.path().join("r.tar.gz"));
    let zst = dir.path().join("r.tar.zst");
    std::fs::write(&zst, zstd::encode_all(&t.bytes()[..], 3).unwrap()).unwrap();
    for (p, mt) in [
        (&plain, LAYER_TAR),
        (&gz, LAYER_TAR_GZIP),
        (&zst, LAYER_TAR_ZSTD),
    ] {
        let src = open(p).unwrap();
        assert_eq!(src.config.env, [PATH_ENV]);
        assert!(src.config.command().is_empty());
        assert_eq!(src.layers.len(), 1);
        let l = &src.layers[0];
        assert_eq!(&l.path, p, "the blob is the file as given");
        assert_eq!(l.layer.media_type, mt);
        assert_eq!(l.layer.digest, sha256_file(p).unwrap());
        assert_eq!(l.layer.size, std::fs::metadata(p).unwrap().len());
        assert!(src.manifest().validate().is_ok());
    }
}

#[test]
fn oci_layouts_round_trip_through_skopeo() {
    common::require("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let out = layout(dir.path());
    let src = open(&out).unwrap();
    assert_eq!(src.config.cmd, ["/bin/hello"]);
    assert_eq!(src.config.working_dir.as_deref(), Some("/etc"));
    let gz = dir.path().join("rootfs.tar.gz");
    assert_eq!(src.layers[0].layer.digest, sha256_file(&gz).unwrap());
    assert_eq!(src.layers[0].layer.media_type, LAYER_TAR_GZIP);

    // skopeo reads our layout and writes an oci-archive and a docker-archive of it.
    let inspect =
        common::run(Command::new("skopeo").args(["inspect", &format!("oci:{}:v1", out.display())]));
    let v: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Architecture"], "amd64");
    let oci_tar = dir.path().join("img.oci.tar");
    let docker_tar = dir.path().join("img.docker.tar");
    for dest in [
        format!("oci-archive:{}:v1", oci_tar.display()),
        format!("docker-archive:{}:demo:v1", docker_tar.display()),
    ] {
        common::run(Command::new("skopeo").args([
            "--insecure-policy",
            "copy",
            "-q",
            &format!("oci:{}:v1", out.display()),
            &dest,
        ]));
    }
    let from_oci = open(&oci_tar).unwrap();
    assert_eq!(from_oci.manifest(), src.manifest());
    // docker-archive stores layers uncompressed: the blob is the original's diff_id.
    let from_docker = open(&docker_tar).unwrap();
    assert_eq!(from_docker.config, src.config);
    let unpacked = dir.path().join("u");
    let report = unpack_layer(&gz, Compression::Gzip, &unpacked).unwrap();
    assert_eq!(from_docker.layers[0].layer.digest, report.diff_id);
    assert_eq!(from_docker.layers[0].layer.media_type, LAYER_TAR);
    let again = dir.path().join("u2");
    let l = &from_docker.layers[0];
    let c = layer_compression(&l.layer.media_type).unwrap();
    unpack_layer(&l.path, c, &again).unwrap();
    assert_eq!(common::list(&again), common::list(&unpacked));
}

/// Reads and rewrites the (only) manifest of a layout: `edit` changes its JSON.
fn edit_manifest(layout: &Path, edit: impl FnOnce(&mut Value)) {
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let old = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = |d: &str| layout.join("blobs/sha256").join(&d[7..]);
    let mut m: Value = serde_json::from_slice(&std::fs::read(blob(&old)).unwrap()).unwrap();
    edit(&mut m);
    let bytes = serde_json::to_vec(&m).unwrap();
    let new = sha(&bytes);
    std::fs::write(blob(&new), &bytes).unwrap();
    index["manifests"][0]["digest"] = json!(new);
    index["manifests"][0]["size"] = json!(bytes.len());
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

fn layer_blob(layout: &Path) -> PathBuf {
    let src = open(layout).unwrap();
    src.layers[0].path.clone()
}

#[test]
fn broken_archives_name_their_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let junk = d.join("junk");
    std::fs::write(&junk, vec![b'x'; 3000]).unwrap();
    bad(open(&junk), "not a tar");
    let empty = d.join("empty.tar");
    std::fs::write(&empty, [0u8; 1024]).unwrap();
    bad(open(&empty), "no entries");

    // Truncated: a tar of a layout cut in the middle of a blob.
    let l = layout(d);
    let tar = d.join("layout.tar");
    common::run(
        Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&l)
            .arg("."),
    );
    let mut bytes = std::fs::read(&tar).unwrap();
    assert!(open(&tar).is_ok());
    bytes.truncate(bytes.len() / 2 + 100);
    let cut = d.join("cut.tar");
    std::fs::write(&cut, &bytes).unwrap();
    bad(open(&cut), "truncated");

    // A directory that is not a layout.
    bad(open(d), "no oci-layout");

    // Missing blob.
    let blob = layer_blob(&l);
    let saved = std::fs::read(&blob).unwrap();
    std::fs::remove_file(&blob).unwrap();
    bad(open(&l), "missing blob");
    // Wrong digest (same size).
    let mut flipped = saved.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    std::fs::write(&blob, &flipped).unwrap();
    match open(&l) {
        Err(ImageError::DigestMismatch { what, .. }) => assert!(what.contains("layer 0"), "{what}"),
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    std::fs::write(&blob, &saved).unwrap();
    assert!(open(&l).is_ok());

    // Unknown layer media type; no layers.
    let l2 = d.join("l2");
    common::run(Command::new("cp").arg("-a").arg(&l).arg(&l2));
    edit_manifest(&l2, |m| {
        m["layers"][0]["mediaType"] = json!("application/x-squashfs")
    });
    bad(open(&l2), "application/x-squashfs");
    let l3 = d.join("l3");
    common::run(Command::new("cp").arg("-a").arg(&l).arg(&l3));
    edit_manifest(&l3, |m| m["layers"] = json!([]));
    bad(open(&l3), "no layers");
    // A member escaping the archive.
    let mut evil = common::RawTar::default();
    evil.file("oci-layout", b"{}")
        .file("index.json", b"{}")
        .file("blobs/../../x", b"x");
    bad(open(&evil.write(&d.join("evil.tar"))), "..");
}

/// Old `docker save`: `<id>/layer.tar` (a second, identical layer as a symlink to the first),
/// `<hex>.json` config, `manifest.json`; and the new one with `blobs/sha256` and a gzip layer.
#[test]
fn docker_save_archives_old_and_new() {
    let dir = tempfile::tempdir().unwrap();
    let layer = common::small_rootfs().bytes();
    let diff = sha(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Entrypoint": ["/bin/hello"], "User": "1000"},
        "rootfs": {"type": "layers", "diff_ids": [diff, diff]},
    }))
    .unwrap();
    let chex = &sha(&config)[7..];
    let (id1, id2) = ("1".repeat(64), "2".repeat(64));
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{chex}.json"), "RepoTags": ["demo:v1"],
        "Layers": [format!("{id1}/layer.tar"), format!("{id2}/layer.tar")],
    }]))
    .unwrap();
    let mut t = common::RawTar::default();
    t.dir(&format!("{id1}/"))
        .file(&format!("{id1}/layer.tar"), &layer)
        .file(&format!("{id1}/VERSION"), b"1.0")
        .dir(&format!("{id2}/"))
        .symlink(&format!("{id2}/layer.tar"), &format!("../{id1}/layer.tar"))
        .file(&format!("{chex}.json"), &config)
        .file("manifest.json", &manifest)
        .file("repositories", b"{}");
    let old = t.write(&dir.path().join("old.tar"));
    let src = open(&old).unwrap();
    assert_eq!(src.config.command(), ["/bin/hello"]);
    assert_eq!(src.config.user.as_deref(), Some("1000"));
    assert_eq!(src.layers.len(), 2);
    for l in &src.layers {
        assert_eq!(l.layer.digest, diff);
        assert_eq!(l.layer.media_type, LAYER_TAR);
    }
    // Compressed outer archive (`docker save | gzip`) too.
    let gz = t.write_gzip(&dir.path().join("old.tar.gz"));
    assert_eq!(open(&gz).unwrap().manifest(), src.manifest());

    // New format, gzip layer.
    let mut gzl = Vec::new();
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(&mut gzl, flate2::Compression::fast());
        e.write_all(&layer).unwrap();
        e.finish().unwrap();
    }
    let config1 = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff]},
    }))
    .unwrap();
    let (lhex, c1hex) = (sha(&gzl)[7..].to_string(), sha(&config1)[7..].to_string());
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("blobs/sha256/{c1hex}"),
        "Layers": [format!("blobs/sha256/{lhex}")],
    }]))
    .unwrap();
    let mut t = common::RawTar::default();
    t.file(&format!("blobs/sha256/{lhex}"), &gzl)
        .file(&format!("blobs/sha256/{c1hex}"), &config1)
        .file("manifest.json", &manifest)
        .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", br#"{"schemaVersion":2,"manifests":[]}"#);
    let new = t.write(&dir.path().join("new.tar"));
    let src = open(&new).unwrap();
    assert_eq!(src.config.cmd, ["sh"]);
    assert_eq!(src.layers[0].layer.digest, sha(&gzl));
    assert_eq!(src.layers[0].layer.media_type, LAYER_TAR_GZIP);

    // A config whose rootfs disagrees with the layer.
    let wrong = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(b"other")]},
    }))
    .unwrap();
    let whex = &sha(&wrong)[7..];
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{whex}.json"), "Layers": [format!("{id1}/layer.tar")],
    }]))
    .unwrap();
    let mut t = common::RawTar::default();
    t.file(&format!("{id1}/layer.tar"), &layer)
        .file(&format!("{whex}.json"), &wrong)
        .file("manifest.json", &manifest);
    match open(&t.write(&dir.path().join("wrong.tar"))) {
        Err(ImageError::DigestMismatch { what, .. }) => assert!(what.contains("diff_id"), "{what}"),
        other => panic!("expected a diff_id mismatch, got {other:?}"),
    }
}

//! Whiteouts and opaque directories unpacked by `unpack_layer` really work: two layers mounted
//! as an overlay (as the node mounts an image) hide what the upper one deletes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::RawTar;
use slicelab_image::unpack_layer;
use slicelab_model::image::Compression;

/// Unmounts at the end of the test, even a failing one.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn layer(dir: &Path, name: &str, tar: &RawTar) -> PathBuf {
    let blob = tar.write_gzip(&dir.join(format!("{name}.tar.gz")));
    let dest = dir.join(name);
    unpack_layer(&blob, Compression::Gzip, &dest).unwrap();
    dest
}

#[test]
fn whiteouts_hide_lower_files_in_a_real_overlay() {
    common::require("mount");
    let dir = tempfile::tempdir().unwrap();
    let mut base = RawTar::default();
    base.file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .file("etc/shadow", b"secret")
        .file("var/cache/a", b"a")
        .file("var/cache/b", b"b")
        .file("keep", b"k");
    let mut top = RawTar::default();
    top.file("etc/.wh.shadow", b"")
        .file("var/cache/.wh..wh..opq", b"")
        .file("var/cache/c", b"c");
    let lower = layer(dir.path(), "l1", &base);
    let upper = layer(dir.path(), "l2", &top);

    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let opts = format!("lowerdir={}:{}", upper.display(), lower.display());
    common::run(
        Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&mnt),
    );
    let _guard = Mounted(mnt.clone());

    assert!(mnt.join("etc/passwd").exists());
    assert!(!mnt.join("etc/shadow").exists(), "whiteout hides the file");
    assert!(std::fs::symlink_metadata(mnt.join("etc/shadow")).is_err());
    let cache: Vec<_> = std::fs::read_dir(mnt.join("var/cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        cache,
        ["c"],
        "the opaque directory hides the lower one's entries"
    );
    assert_eq!(std::fs::read(mnt.join("keep")).unwrap(), b"k");
}

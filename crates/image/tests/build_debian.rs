//! Builds bookworm minbase with python3 (mmdebstrap, from the Debian mirror), opens it as an
//! image, unpacks it and runs its python3. With `SLICELAB_IMAGE_CACHE` set (CI sets it) the
//! tarball is kept there and reused by later runs and tests.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use slicelab_image::archive::open;
use slicelab_image::build::{debian, TARBALL_EXTENSION};
use slicelab_image::unpack_layer;
use slicelab_model::image::{layer_compression, LAYER_TAR_GZIP, LAYER_TAR_ZSTD};

const NAME: &str = "debian-bookworm-python3";

/// The cached tarball (either compression), or a fresh build (into the cache if set).
fn tarball(scratch: &std::path::Path) -> PathBuf {
    let cache = std::env::var_os("SLICELAB_IMAGE_CACHE").map(PathBuf::from);
    if let Some(dir) = &cache {
        for ext in [TARBALL_EXTENSION, "tar.gz"] {
            let p = dir.join(format!("{NAME}.{ext}"));
            if p.is_file() {
                eprintln!("reusing {}", p.display());
                return p;
            }
        }
        std::fs::create_dir_all(dir).unwrap();
    }
    common::require("mmdebstrap");
    let out = cache
        .unwrap_or_else(|| scratch.to_path_buf())
        .join(format!("{NAME}.{TARBALL_EXTENSION}"));
    let mut lines = Vec::new();
    let started = Instant::now();
    debian("bookworm", &["python3".into()], None, &out, &mut |l| {
        eprintln!("{l}");
        lines.push(l.to_string());
    })
    .unwrap();
    eprintln!("built {} in {:?}", out.display(), started.elapsed());
    assert!(
        lines.iter().any(|l| l.starts_with("I: ")),
        "progress lines were streamed"
    );
    out
}

#[test]
fn bookworm_with_python3_builds_opens_unpacks_and_runs() {
    let scratch = tempfile::tempdir().unwrap();
    let tarball = tarball(scratch.path());
    let src = open(&tarball).unwrap();
    assert_eq!(src.layers.len(), 1);
    let layer = &src.layers[0];
    assert!(
        [LAYER_TAR_ZSTD, LAYER_TAR_GZIP].contains(&layer.layer.media_type.as_str()),
        "{}",
        layer.layer.media_type
    );
    assert!(src.manifest().validate().is_ok());

    let root = scratch.path().join("root");
    let started = Instant::now();
    let c = layer_compression(&layer.layer.media_type).unwrap();
    let report = unpack_layer(&layer.path, c, &root).unwrap();
    eprintln!(
        "unpacked {} bytes of blob: {report:?} in {:?}",
        layer.layer.size,
        started.elapsed()
    );
    assert!(report.entries > 5000, "{report:?}");
    assert_eq!(report.clamped_ids, 0);
    let py = std::fs::symlink_metadata(root.join("usr/bin/python3")).unwrap();
    assert!(py.file_type().is_symlink() || py.is_file());
    // The tree works: its own python3 runs in it.
    let out = common::run(Command::new("chroot").arg(&root).args([
        "/usr/bin/python3",
        "-c",
        "print(6 * 7)",
    ]));
    assert_eq!(out.trim(), "42");
}

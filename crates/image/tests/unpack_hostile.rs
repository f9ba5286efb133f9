//! The unpacker against hostile and tricky layers (runs as root, like the node manager): what
//! is refused or neutralised, and that nothing is ever written outside the destination.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::{RawTar, Sandbox, Spec};
use slicelab_image::{unpack_layer, ImageError, UnpackReport};
use slicelab_model::image::Compression;
use tar::EntryType;

/// Unpacks `tar` into the sandbox's `dest`; checks nothing appeared outside it.
fn unpack(sb: &Sandbox, tar: &RawTar) -> Result<UnpackReport, ImageError> {
    std::fs::create_dir_all(sb.path().join("blobs")).unwrap();
    let blob = tar.write(&sb.path().join("blobs/layer.tar"));
    let before = sb.outside();
    let r = unpack_layer(&blob, Compression::None, &sb.dest);
    assert_eq!(sb.outside(), before, "something was written outside dest");
    if r.is_err() {
        assert!(!sb.dest.exists(), "dest must be removed after an error");
    }
    r
}

fn refused(r: Result<UnpackReport, ImageError>, needles: &[&str]) {
    match r {
        Err(ImageError::BadArchive(m)) => {
            for n in needles {
                assert!(m.contains(n), "{m:?} should mention {n:?}");
            }
        }
        other => panic!("expected BadArchive mentioning {needles:?}, got {other:?}"),
    }
}

#[test]
fn dotdot_refuses_the_whole_layer() {
    let sb = Sandbox::new();
    let mut t = RawTar::default();
    t.file("ok", b"fine").file("../escape", b"x");
    refused(unpack(&sb, &t), &["../escape", ".."]);
    let mut t = RawTar::default();
    t.file("a/../../../outside/escape", b"x");
    refused(unpack(&sb, &t), &["outside/escape"]);
}

#[test]
fn absolute_paths_land_in_the_layer_root() {
    let sb = Sandbox::new();
    let mut t = RawTar::default();
    let abs = format!("{}/outside/abs", sb.path().display());
    t.file("/abs/file", b"a").file(&abs, b"b");
    let r = unpack(&sb, &t).unwrap();
    assert_eq!(std::fs::read(sb.dest.join("abs/file")).unwrap(), b"a");
    let inside = sb.dest.join(abs.trim_start_matches('/'));
    assert_eq!(std::fs::read(inside).unwrap(), b"b");
    assert_eq!(r.entries, 2);
}

#[test]
fn absolute_symlink_parents_resolve_inside() {
    let sb = Sandbox::new();
    let target = format!("{}/outside", sb.path().display());
    let mut t = RawTar::default();
    t.symlink("evil", &target)
        .file("evil/file", b"x")
        .symlink("t2", "/tmp/slicelab-image-test-X")
        .file("t2/file", b"y");
    unpack(&sb, &t).unwrap();
    let evil = std::fs::symlink_metadata(sb.dest.join("evil")).unwrap();
    assert!(evil.file_type().is_symlink(), "the symlink stays, verbatim");
    assert_eq!(
        std::fs::read_link(sb.dest.join("evil")).unwrap(),
        Path::new(&target)
    );
    let landed = sb.dest.join(target.trim_start_matches('/')).join("file");
    assert_eq!(std::fs::read(landed).unwrap(), b"x");
    assert!(!Path::new("/tmp/slicelab-image-test-X").exists());
    assert_eq!(
        std::fs::read(sb.dest.join("tmp/slicelab-image-test-X/file")).unwrap(),
        b"y"
    );
}

#[test]
fn climbing_symlink_parents_stop_at_the_root() {
    let sb = Sandbox::new();
    let mut t = RawTar::default();
    t.symlink("up", "../../..")
        .file("up/file", b"x")
        .dir("d")
        .symlink("d/up2", "../../../../../../outside")
        .file("d/up2/f2", b"y");
    unpack(&sb, &t).unwrap();
    assert_eq!(std::fs::read(sb.dest.join("file")).unwrap(), b"x");
    assert_eq!(std::fs::read(sb.dest.join("outside/f2")).unwrap(), b"y");
}

#[test]
fn hard_links_only_to_files_in_the_layer() {
    let sb = Sandbox::new();
    let mut t = RawTar::default();
    t.hardlink("pw", "../../etc/passwd");
    refused(unpack(&sb, &t), &["pw", ".."]);
    let mut t = RawTar::default();
    t.hardlink("sh", "/etc/shadow");
    refused(
        unpack(&sb, &t),
        &["sh", "/etc/shadow", "not a regular file"],
    );
    let mut t = RawTar::default();
    t.symlink("l", "/etc/passwd").hardlink("via", "l");
    refused(unpack(&sb, &t), &["via", "not a regular file"]);
    let mut t = RawTar::default();
    t.symlink("etc", "/etc").hardlink("p2", "etc/passwd");
    refused(unpack(&sb, &t), &["p2"]);

    let mut t = RawTar::default();
    t.file("a/f", b"same")
        .hardlink("b", "./a/f")
        .hardlink("/c", "/a/f");
    unpack(&sb, &t).unwrap();
    let ino = |p: &str| std::fs::metadata(sb.dest.join(p)).unwrap().ino();
    assert_eq!(ino("a/f"), ino("b"));
    assert_eq!(ino("a/f"), ino("c"));
    assert_eq!(std::fs::metadata(sb.dest.join("b")).unwrap().nlink(), 3);
}

#[test]
fn devices_and_fifos_are_never_created() {
    let sb = Sandbox::new();
    let mut t = RawTar::default();
    t.add(Spec::new("dev/mem", EntryType::Char))
        .add(Spec::new("dev/sda", EntryType::Block))
        .add(Spec::new("fifo", EntryType::Fifo))
        .file("plain", b"p");
    let r = unpack(&sb, &t).unwrap();
    assert_eq!(r.skipped, 3);
    assert_eq!(r.entries, 4);
    assert!(!sb.dest.join("dev/mem").exists());
    assert!(!sb.dest.join("dev/sda").exists());
    assert!(std::fs::symlink_metadata(sb.dest.join("fifo")).is_err());
}

#[test]
fn owners_modes_and_clamped_ids() {
    let sb = Sandbox::new();
    let mut t = RawTar::default();
    t.add(Spec {
        mode: 0o4755,
        data: b"#!/bin/sh\n",
        ..Spec::new("usr/bin/su", EntryType::Regular)
    })
    .add(Spec {
        uid: 100_000,
        gid: 1000,
        mode: 0o2750,
        ..Spec::new("home/big", EntryType::Regular)
    })
    .add(Spec {
        uid: 1000,
        gid: 70_000,
        mode: 0o1777,
        ..Spec::new("home/tmp", EntryType::Directory)
    })
    .add(Spec {
        uid: 33,
        gid: 33,
        link: "big",
        ..Spec::new("home/lnk", EntryType::Symlink)
    });
    let r = unpack(&sb, &t).unwrap();
    assert_eq!(r.clamped_ids, 2);
    let m = |p: &str| std::fs::symlink_metadata(sb.dest.join(p)).unwrap();
    let su = m("usr/bin/su");
    assert_eq!((su.uid(), su.gid(), su.mode() & 0o7777), (0, 0, 0o4755));
    assert_eq!(su.mtime(), 1_700_000_000);
    let big = m("home/big");
    assert_eq!(
        (big.uid(), big.gid(), big.mode() & 0o7777),
        (65534, 1000, 0o2750)
    );
    let tmp = m("home/tmp");
    assert_eq!(
        (tmp.uid(), tmp.gid(), tmp.mode() & 0o7777),
        (1000, 65534, 0o1777)
    );
    assert_eq!(tmp.mtime(), 1_700_000_000, "directory times are set last");
    let lnk = m("home/lnk");
    assert_eq!((lnk.uid(), lnk.gid()), (33, 33));
    // Implicit parents: root-owned 0755.
    let usr = m("usr");
    assert_eq!((usr.uid(), usr.permissions().mode() & 0o7777), (0, 0o755));
}

#[test]
fn whiteouts_become_overlay_objects() {
    let sb = Sandbox::new();
    let mut t = RawTar::default();
    t.file(".wh.gone", b"")
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"n")
        .file(".wh..wh.plnk", b"")
        .file("e/.wh.x", b"");
    let r = unpack(&sb, &t).unwrap();
    assert_eq!(r.skipped, 1, "aufs' .wh..wh. names are not created");
    for w in ["gone", "e/x"] {
        let m = std::fs::symlink_metadata(sb.dest.join(w)).unwrap();
        assert!(m.file_type().is_char_device(), "{w}");
        assert_eq!(m.rdev(), 0, "{w}");
    }
    assert!(!sb.dest.join(".wh.gone").exists());
    assert!(!sb.dest.join(".wh..wh.plnk").exists());
    assert!(!sb.dest.join("d/.wh..wh..opq").exists());
    let mut buf = [0u8; 8];
    let n =
        rustix::fs::getxattr(sb.dest.join("d"), "trusted.overlay.opaque", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");
}

#[test]
fn later_entries_win_and_replace_without_following() {
    let sb = Sandbox::new();
    let secret = sb.path().join("outside/secret");
    std::fs::write(&secret, b"keep").unwrap();
    let mut t = RawTar::default();
    t.file("f", b"one")
        .file("f", b"two")
        .symlink("s", secret.to_str().unwrap())
        .file("s", b"replaced the link")
        .file("x", b"file first")
        .symlink("x", "f")
        .dir("d")
        .file("d/in", b"i")
        .add(Spec {
            mode: 0o700,
            ..Spec::new("d", EntryType::Directory)
        });
    unpack(&sb, &t).unwrap();
    assert_eq!(std::fs::read(&secret).unwrap(), b"keep");
    assert_eq!(std::fs::read(sb.dest.join("f")).unwrap(), b"two");
    assert_eq!(
        std::fs::read(sb.dest.join("s")).unwrap(),
        b"replaced the link"
    );
    assert_eq!(
        std::fs::read_link(sb.dest.join("x")).unwrap(),
        Path::new("f")
    );
    let d = std::fs::metadata(sb.dest.join("d")).unwrap();
    assert_eq!(d.mode() & 0o7777, 0o700);
    assert!(sb.dest.join("d/in").exists(), "an existing directory stays");

    let mut t = RawTar::default();
    t.file("d/in", b"i").file("d", b"not a dir");
    refused(unpack(&Sandbox::new(), &t), &["\"d\"", "directory"]);
    let mut t = RawTar::default();
    t.file("f", b"x").file("f/g", b"y");
    refused(unpack(&Sandbox::new(), &t), &["f/g", "parent"]);
    let mut t = RawTar::default();
    t.symlink("loop", "loop").file("loop/g", b"y");
    refused(unpack(&Sandbox::new(), &t), &["loop/g", "symbolic links"]);
}

#[test]
fn broken_layers_are_refused_and_removed() {
    let sb = Sandbox::new();
    let mut t = RawTar::default();
    t.file("big", &[7u8; 5000]);
    let mut bytes = t.bytes();
    bytes.truncate(512 + 2000);
    std::fs::create_dir_all(sb.path().join("blobs")).unwrap();
    let blob = sb.path().join("blobs/trunc.tar");
    std::fs::write(&blob, &bytes).unwrap();
    let r = unpack_layer(&blob, Compression::None, &sb.dest);
    refused(r, &["big"]);
    assert!(!sb.dest.exists());

    std::fs::write(
        &blob,
        b"this is not a tar archive at all, not even close......",
    )
    .unwrap();
    assert!(matches!(
        unpack_layer(&blob, Compression::None, &sb.dest),
        Err(ImageError::BadArchive(_))
    ));
    assert!(matches!(
        unpack_layer(&blob, Compression::Gzip, &sb.dest),
        Err(ImageError::BadArchive(_))
    ));
    assert!(!sb.dest.exists());

    // A non-empty destination is left alone.
    std::fs::create_dir(&sb.dest).unwrap();
    std::fs::write(sb.dest.join("mine"), b"m").unwrap();
    let good = RawTar::default().file("a", b"a").write(&blob);
    assert!(unpack_layer(&good, Compression::None, &sb.dest).is_err());
    assert!(sb.dest.join("mine").exists());
}

#[test]
fn diff_id_is_the_uncompressed_digest() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("blobs")).unwrap();
    let t = common::small_rootfs();
    let plain = t.write(&sb.path().join("blobs/l.tar"));
    let gz = t.write_gzip(&sb.path().join("blobs/l.tar.gz"));
    let zst = sb.path().join("blobs/l.tar.zst");
    std::fs::write(&zst, zstd::encode_all(&t.bytes()[..], 3).unwrap()).unwrap();
    let want = slicelab_image::digest::sha256_file(&plain).unwrap();
    let mut reports = Vec::new();
    for (i, (blob, c)) in [
        (&plain, Compression::None),
        (&gz, Compression::Gzip),
        (&zst, Compression::Zstd),
    ]
    .into_iter()
    .enumerate()
    {
        let dest = sb.path().join(format!("u{i}"));
        let r = unpack_layer(blob, c, &dest).unwrap();
        assert_eq!(r.diff_id, want);
        assert_eq!(
            std::fs::read(dest.join("bin/hello2")).unwrap(),
            b"#!/bin/sh\necho hello\n"
        );
        assert_eq!(common::list(&dest), common::list(&sb.path().join("u0")));
        reports.push(r);
    }
    assert_eq!(reports[0], reports[2]);
    assert_eq!(reports[0].entries, 7);
    assert_eq!(reports[0].bytes, 21 + 8);
}

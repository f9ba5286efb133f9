//! Shared by the integration tests: tars written header by header (so hostile names get
//! through), a sandbox that notices writes outside the unpack destination, tool checks.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use tar::{EntryType, Header};

/// A tar built entry by entry with raw names (no checks of `..` or absolute paths).
#[derive(Default)]
pub struct RawTar {
    buf: Vec<u8>,
}

pub struct Spec<'a> {
    pub name: &'a str,
    pub ty: EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub link: &'a str,
    pub data: &'a [u8],
}

impl<'a> Spec<'a> {
    pub fn new(name: &'a str, ty: EntryType) -> Self {
        Spec {
            name,
            ty,
            mode: if ty == EntryType::Directory {
                0o755
            } else {
                0o644
            },
            uid: 0,
            gid: 0,
            link: "",
            data: b"",
        }
    }
}

impl RawTar {
    pub fn add(&mut self, s: Spec) -> &mut Self {
        let mut h = Header::new_ustar();
        h.set_entry_type(s.ty);
        h.set_mode(s.mode);
        h.set_uid(s.uid);
        h.set_gid(s.gid);
        h.set_mtime(1_700_000_000);
        h.set_size(s.data.len() as u64);
        {
            let u = h.as_ustar_mut().unwrap();
            assert!(s.name.len() <= 100 && s.link.len() <= 100);
            u.name = [0; 100];
            u.name[..s.name.len()].copy_from_slice(s.name.as_bytes());
            u.linkname = [0; 100];
            u.linkname[..s.link.len()].copy_from_slice(s.link.as_bytes());
        }
        if matches!(s.ty, EntryType::Char | EntryType::Block) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        self.buf.extend_from_slice(h.as_bytes());
        self.buf.extend_from_slice(s.data);
        let pad = (512 - s.data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.add(Spec {
            data,
            ..Spec::new(name, EntryType::Regular)
        })
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.add(Spec::new(name, EntryType::Directory))
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.add(Spec {
            link: target,
            ..Spec::new(name, EntryType::Symlink)
        })
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.add(Spec {
            link: target,
            ..Spec::new(name, EntryType::Link)
        })
    }

    /// The tar's bytes, with its end-of-archive blocks.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = self.buf.clone();
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.bytes()).unwrap();
        path.to_path_buf()
    }

    pub fn write_gzip(&self, path: &Path) -> PathBuf {
        let f = std::fs::File::create(path).unwrap();
        let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        enc.write_all(&self.bytes()).unwrap();
        enc.finish().unwrap();
        path.to_path_buf()
    }
}

/// A small root filesystem: a shell script, a config file, a symlink, a hard link.
pub fn small_rootfs() -> RawTar {
    let mut t = RawTar::default();
    t.dir("./")
        .dir("./bin/")
        .add(Spec {
            mode: 0o755,
            data: b"#!/bin/sh\necho hello\n",
            ..Spec::new("./bin/hello", EntryType::Regular)
        })
        .dir("./etc/")
        .file("./etc/motd", b"welcome\n")
        .symlink("./etc/greeting", "motd")
        .hardlink("./bin/hello2", "./bin/hello");
    t
}

/// A directory holding `dest` two levels down, so a climbing symlink (`../../..`) from `dest`
/// that escaped would land here, where [`Sandbox::outside`] sees it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub dest: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        let dest = dir.path().join("a/b/dest");
        Sandbox { dir, dest }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every path in the sandbox outside `dest` (and the blobs tests put in `blobs/`).
    pub fn outside(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        walk(self.path(), self.path(), &self.dest, &mut out);
        out
    }
}

fn walk(root: &Path, dir: &Path, skip: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p == skip || p.starts_with(root.join("blobs")) {
            continue;
        }
        out.insert(p.strip_prefix(root).unwrap().display().to_string());
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            walk(root, &p, skip, out);
        }
    }
}

/// Every path under `dir`, relative, sorted.
pub fn list(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk(dir, dir, Path::new("/nonexistent"), &mut out);
    out
}

/// Fails the test with a clear message when a tool CI installs is missing.
pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: scripts/deps.sh installs it (apt-get install {tool})"
    );
}

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

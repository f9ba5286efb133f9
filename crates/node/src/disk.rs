//! Disk quota of a sliver's writable layer (`disk_max`).
//!
//! These machines have no XFS project quota, so a sliver with `disk_max` gets its own ext4
//! filesystem in an image file, `<sliver_dir>/disk.img`, loop-mounted on the host at
//! `<sliver_dir>/disk`; the overlay's upper and work dirs live on it. Writing past the quota fails
//! with ENOSPC inside that sliver only. The mount is made on the host (not in the sliver's mount
//! namespace) so the node manager can grow it online and `cleanup` can find it by path; the
//! sliver's init copies it into its own namespace when it builds the overlay.
//!
//! Sizing: the filesystem's *usable* size is made at least `disk_max` (the image is grown by the
//! ext4 metadata overhead, no blocks reserved for root). Raising `disk_max` grows it online
//! (`losetup -c` + `resize2fs`), which the kernel allows only with CAP_SYS_RESOURCE; a node
//! manager without it (some containers) grows the layer offline at the sliver's next start
//! instead. Lowering it is not applied to an existing layer: shrinking ext4
//! needs it unmounted and the data to fit, so the layer keeps its size until the sliver is
//! recreated. Adding or removing `disk_max` moves the layer's files between the image and a plain
//! directory, which needs the sliver stopped (the planner restarts it for that change).

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};

use crate::cmd::run;
use crate::error::{IoContext, NodeError};

const IMAGE: &str = "disk.img";
const MOUNT: &str = "disk";

pub fn image_path(sliver_dir: &Path) -> PathBuf {
    sliver_dir.join(IMAGE)
}

pub fn mount_point(sliver_dir: &Path) -> PathBuf {
    sliver_dir.join(MOUNT)
}

/// Upper and work dirs of the sliver's overlay, given whether it has a quota.
pub fn layer_dirs(sliver_dir: &Path, quota: bool) -> (PathBuf, PathBuf) {
    if quota {
        let m = mount_point(sliver_dir);
        (m.join("upper"), m.join("work"))
    } else {
        (sliver_dir.join("upper"), sliver_dir.join("work"))
    }
}

/// The source device of the mount at `path`, if something is mounted there.
fn mounted_device(path: &Path) -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.to_str()?;
    // The last mount on a path is the visible one.
    info.lines().rev().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mp = pre.split_whitespace().nth(4)?;
        let src = post.split_whitespace().nth(1)?;
        (unescape(mp) == want).then(|| src.to_string())
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Whether the quota filesystem is (all but) full: less than 1 MiB left.
pub fn is_full(sliver_dir: &Path) -> bool {
    nix::sys::statvfs::statvfs(&mount_point(sliver_dir))
        .map(|s| s.blocks_available() * s.fragment_size() < 1 << 20)
        .unwrap_or(false)
}

pub fn is_mounted(sliver_dir: &Path) -> bool {
    mounted_device(&mount_point(sliver_dir)).is_some()
}

/// Makes the sliver's quota filesystem exist, be mounted and hold at least `disk_max` bytes.
/// Idempotent. Returns whether the size is fully applied: growing a *mounted* filesystem needs
/// online resize (CAP_SYS_RESOURCE); without it the growth waits for the next start, when the
/// layer is grown offline (`offline_ok`: the sliver is stopped, so the mount may be cycled).
pub fn ensure(sliver_dir: &Path, disk_max: u64, offline_ok: bool) -> Result<bool, NodeError> {
    let img = image_path(sliver_dir);
    let mp = mount_point(sliver_dir);
    if !img.exists() {
        let tmp = sliver_dir.join("disk.img.tmp");
        make_image(&tmp, &mp, disk_max)?;
        // Renamed only once complete, so a crash never leaves a half-made image in use.
        fs::rename(&tmp, &img).ctx(|| format!("renaming {}", tmp.display()))?;
    }
    if !is_mounted(sliver_dir) {
        mount(&img, &mp)?;
    }
    for d in ["upper", "work"] {
        let p = mp.join(d);
        fs::create_dir_all(&p).ctx(|| format!("creating {}", p.display()))?;
    }
    let have = usable(&mp)?;
    if have >= disk_max {
        return Ok(true);
    }
    if grow_online(&img, &mp, have, disk_max).is_ok() {
        return Ok(true);
    }
    if !offline_ok {
        return Ok(false);
    }
    unmount(sliver_dir)?;
    grow_offline(&img, have, disk_max)?;
    mount(&img, &mp)?;
    Ok(usable(&mp)? >= disk_max)
}

/// Mounts the image through a loop device, trying again a few times if the kernel refuses it
/// ("Structure needs cleaning"). That was seen when 50 node managers on one host made their
/// images at once: a trial mount's filesystem, kept alive after its unmount by a launcher's copy
/// of the host's mounts, wrote into the file `mkfs` had just reused; `mkfs` now always makes a
/// new file (see [`mkfs`]), and the retries stay for what else a busy host may do. A damaged
/// image still fails, after `MOUNT_TRIES`.
fn mount(img: &Path, mp: &Path) -> Result<(), NodeError> {
    fs::create_dir_all(mp).ctx(|| format!("creating {}", mp.display()))?;
    let (img_s, mp_s) = (img.to_string_lossy(), mp.to_string_lossy());
    let args = ["-t", "ext4", "-o", "loop,noatime", &img_s, &mp_s];
    let mut tries = 1;
    loop {
        match run("mount", &args, None) {
            Ok(_) => return Ok(()),
            Err(e) if tries < MOUNT_TRIES => {
                tracing::warn!("mounting {img_s} (try {tries} of {MOUNT_TRIES}): {e}");
                std::thread::sleep(std::time::Duration::from_millis(25 << tries));
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Attempts at mounting a sliver's disk image (see [`mount`]).
const MOUNT_TRIES: u32 = 4;

fn mkfs(img: &Path, len: u64) -> Result<(), NodeError> {
    // A new file, never the old one truncated: a filesystem mounted from it a moment ago may still
    // be alive in another mount namespace (a launcher's private copy of the host's mounts, made
    // while it was mounted here, lives until that launcher exits), and its last writes (the
    // superblock at unmount, lazy inode-table zeroing) would land in the new filesystem, which
    // ext4 then refuses as corrupt ("group descriptors corrupted!"). With 50 node managers on one
    // host (`slicelab up --nodes 50`) that happened on most bring-ups.
    if let Err(e) = fs::remove_file(img) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(NodeError::Io {
                context: format!("removing {}", img.display()),
                source: e,
            });
        }
    }
    let f = fs::File::options()
        .write(true)
        .create_new(true)
        .open(img)
        .ctx(|| format!("creating {}", img.display()))?;
    f.set_len(len).ctx(|| format!("sizing {}", img.display()))?;
    drop(f);
    // -m 0: no blocks reserved for root (the sliver's root is what the quota is for).
    // lazy_journal_init: the journal is not zeroed. The file is new and sparse (above), so it
    // reads as zeros already; zeroing it wrote 64 MiB per 10 GiB image, which the disk then had
    // to flush (50 node managers making images at once slowed everything else on the machine).
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-m",
            "0",
            "-E",
            "nodiscard,lazy_journal_init=1",
            &img.to_string_lossy(),
        ],
        None,
    )
    .map(|_| ())
}

/// A fresh image whose filesystem offers at least `want` usable bytes: ext4's metadata takes a
/// few percent, measured by a trial mount and added to the image.
fn make_image(img: &Path, mp: &Path, want: u64) -> Result<(), NodeError> {
    let mut len = want;
    for _ in 0..4 {
        mkfs(img, len)?;
        mount(img, mp)?;
        let have = usable(mp);
        umount_path(mp)?;
        let have = have?;
        if have >= want {
            return Ok(());
        }
        len = next_len(len, have, want);
    }
    Ok(())
}

/// The image length that should give `want` usable bytes, from one that gave `have`.
fn next_len(len: u64, have: u64, want: u64) -> u64 {
    (len + want.saturating_sub(have)).div_ceil(1 << 20) << 20
}

/// Usable bytes of the mounted quota filesystem (what the sliver can fill).
fn usable(mp: &Path) -> Result<u64, NodeError> {
    let st = nix::sys::statvfs::statvfs(mp).ctx(|| format!("statfs {}", mp.display()))?;
    Ok(st.blocks() * st.fragment_size())
}

fn image_len(img: &Path) -> Result<u64, NodeError> {
    Ok(fs::metadata(img)
        .ctx(|| format!("stat {}", img.display()))?
        .len())
}

fn set_len(img: &Path, len: u64) -> Result<(), NodeError> {
    fs::OpenOptions::new()
        .write(true)
        .open(img)
        .and_then(|f| f.set_len(len))
        .ctx(|| format!("growing {}", img.display()))
}

/// Grows the mounted filesystem in place (the kernel's online resize needs CAP_SYS_RESOURCE).
fn grow_online(img: &Path, mp: &Path, mut have: u64, want: u64) -> Result<(), NodeError> {
    let dev = mounted_device(mp).ok_or_else(|| NodeError::Invalid {
        what: "disk quota",
        message: format!("{} is not mounted", mp.display()),
    })?;
    // ext4 metadata grows with the filesystem, so one step may fall slightly short.
    for _ in 0..4 {
        if have >= want {
            return Ok(());
        }
        let old = image_len(img)?;
        set_len(img, next_len(old, have, want))?;
        run("losetup", &["-c", &dev], None)?;
        if let Err(e) = run("resize2fs", &[&dev], None) {
            // Leave the image as the filesystem knows it; the offline path grows it again.
            let _ = set_len(img, old);
            let _ = run("losetup", &["-c", &dev], None);
            return Err(e);
        }
        have = usable(mp)?;
    }
    Ok(())
}

/// Grows the unmounted filesystem image.
fn grow_offline(img: &Path, have: u64, want: u64) -> Result<(), NodeError> {
    let path = img.to_string_lossy();
    set_len(img, next_len(image_len(img)?, have, want))?;
    // resize2fs insists on a freshly checked filesystem; -p repairs only what is safe.
    run("e2fsck", &["-f", "-p", &path], None)?;
    run("resize2fs", &[&path], None)?;
    Ok(())
}

/// Bytes in use on the quota filesystem, if the sliver has one mounted.
pub fn used(sliver_dir: &Path) -> Option<u64> {
    if !is_mounted(sliver_dir) {
        return None;
    }
    let st = nix::sys::statvfs::statvfs(&mount_point(sliver_dir)).ok()?;
    Some(st.blocks().saturating_sub(st.blocks_free()) * st.fragment_size())
}

/// Unmounts the quota filesystem if mounted (the loop device goes with it: `mount -o loop`
/// sets autoclear).
pub fn unmount(sliver_dir: &Path) -> Result<(), NodeError> {
    umount_path(&mount_point(sliver_dir))
}

fn umount_path(mp: &Path) -> Result<(), NodeError> {
    let mp = mp.to_path_buf();
    while mounted_device(&mp).is_some() {
        if let Err(e) = umount2(&mp, MntFlags::empty()) {
            // Busy (a stray process): detach it; the kernel frees it when the last user goes.
            umount2(&mp, MntFlags::MNT_DETACH)
                .ctx(|| format!("unmounting {}: {e}", mp.display()))?;
        }
    }
    Ok(())
}

/// Moves the writable layer to where `quota` says it belongs (image or plain directory), with the
/// sliver stopped. Called before a start; a no-op when it is already there.
pub fn place_layer(sliver_dir: &Path, disk_max: Option<u64>) -> Result<(), NodeError> {
    let plain_upper = sliver_dir.join("upper");
    match disk_max {
        Some(max) => {
            let fresh = !image_path(sliver_dir).exists();
            ensure(sliver_dir, max, true)?;
            if fresh && has_entries(&plain_upper) {
                copy_tree(&plain_upper, &mount_point(sliver_dir).join("upper"))?;
                clear_dir(&plain_upper)?;
            }
        }
        None => {
            let img = image_path(sliver_dir);
            if img.exists() {
                if !is_mounted(sliver_dir) {
                    mount(&img, &mount_point(sliver_dir))?;
                }
                fs::create_dir_all(&plain_upper)
                    .ctx(|| format!("creating {}", plain_upper.display()))?;
                copy_tree(&mount_point(sliver_dir).join("upper"), &plain_upper)?;
                unmount(sliver_dir)?;
                fs::remove_file(&img).ctx(|| format!("removing {}", img.display()))?;
                let _ = fs::remove_dir(mount_point(sliver_dir));
            }
            // The overlay's work dir must be empty-ish and on the upper's filesystem.
            fs::create_dir_all(sliver_dir.join("work")).ctx(|| "creating work dir".into())?;
        }
    }
    Ok(())
}

fn has_entries(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut rd| rd.next().is_some())
}

/// `cp -a` keeps owners, modes, links and the overlay's whiteouts and xattrs.
fn copy_tree(from: &Path, to: &Path) -> Result<(), NodeError> {
    if !from.exists() {
        return Ok(());
    }
    let src = format!("{}/.", from.display());
    run("cp", &["-a", &src, &to.to_string_lossy()], None).map(|_| ())
}

fn clear_dir(dir: &Path) -> Result<(), NodeError> {
    for e in fs::read_dir(dir)
        .ctx(|| format!("listing {}", dir.display()))?
        .flatten()
    {
        let p = e.path();
        let r = if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        r.ctx(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

/// Bytes used by a plain (quota-less) writable layer: the blocks of every file in it.
pub fn tree_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_dirs_follow_the_quota() {
        let d = Path::new("/s/pl_a");
        assert_eq!(layer_dirs(d, false).0, Path::new("/s/pl_a/upper"));
        assert_eq!(layer_dirs(d, true).0, Path::new("/s/pl_a/disk/upper"));
        assert_eq!(layer_dirs(d, true).1, Path::new("/s/pl_a/disk/work"));
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}

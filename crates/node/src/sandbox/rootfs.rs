//! The sliver's root filesystem, built in two halves.
//!
//! * [`mount_overlay`], in the launcher while it is still host root in a private mount namespace:
//!   the shared image is attached *idmapped* into the slice's range and the overlay (image below,
//!   the sliver's writable layer above) is mounted on the sliver's `rootfs` directory. Host root
//!   mounts it, so the layer keeps overlayfs' trusted xattrs and the whiteouts it always had.
//! * [`build_inside`], in the sliver's init, as root of the slice's user namespace, in the mount
//!   namespace that namespace owns: the overlay arrives there *locked* (a less privileged
//!   namespace may not unmount what it inherited), so it is first bound onto itself — a mount of
//!   our own that `pivot_root` accepts — then proc, sysfs, a minimal /dev, /tmp and /dev/shm are
//!   mounted (all of them kinds a user namespace may mount), and `pivot_root` leaves no path back.

use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::os::unix::fs::symlink;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};

use super::launch::{io, sys, LaunchSpec, R};
use super::userns;

pub(super) fn mnt(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> R<()> {
    sys(
        &format!(
            "mounting {} on {}",
            fstype.or(src).unwrap_or("-"),
            target.display()
        ),
        mount(src, target, fstype, flags, data),
    )
}

fn bind(src: &Path, target: &Path, extra: MsFlags) -> R<()> {
    sys(
        &format!("bind-mounting {} on {}", src.display(), target.display()),
        mount(
            Some(src),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ),
    )?;
    if !extra.is_empty() {
        sys(
            &format!("remounting {}", target.display()),
            mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra,
                None::<&str>,
            ),
        )?;
    }
    Ok(())
}

/// Host half: the idmapped image and the overlay on `spec.rootfs` (see the module doc).
pub(super) fn mount_overlay(spec: &LaunchSpec, ns: &OwnedFd) -> R<()> {
    for d in [&spec.rootfs, &spec.upper, &spec.work, &spec.image_mnt] {
        io("creating sliver dirs", fs::create_dir_all(d))?;
    }
    // Each layer is cloned idmapped on its own (constant time, whatever its size); overlayfs
    // stacks them, top first.
    let mut lowers = Vec::with_capacity(spec.lowers.len());
    for (i, layer) in spec.lowers.iter().enumerate() {
        let at = spec.image_mnt.join(i.to_string());
        io("creating image mount point", fs::create_dir_all(&at))?;
        let tree = userns::idmapped_clone(layer, ns)?;
        userns::attach(&tree, &at)?;
        lowers.push(at.display().to_string());
    }
    if lowers.is_empty() {
        return Err("the image has no layers".into());
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        spec.upper.display(),
        spec.work.display()
    );
    mnt(
        Some("overlay"),
        &spec.rootfs,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(&opts),
    )
}

/// Sliver half: everything below the overlay, then `pivot_root` (see the module doc).
pub(super) fn build_inside(spec: &LaunchSpec) -> R<()> {
    let r = &spec.rootfs;
    bind(r, r, MsFlags::empty())?;
    for d in ["proc", "sys", "dev", "tmp", "root"] {
        // Still the host's tree until pivot_root: a symlink here (from the image or planted in
        // the sliver's layer) would be followed outside the sliver's root.
        let p = r.join(d);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "/{d} is a symlink in the sliver's root; it must be a directory"
                ))
            }
            Ok(m) if m.is_dir() => continue,
            _ => {}
        }
        io(
            &format!("creating /{d}"),
            fs::create_dir(&p).or_else(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Ok(())
                } else {
                    Err(e)
                }
            }),
        )?;
    }
    let nse = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mnt(Some("proc"), &r.join("proc"), Some("proc"), nse, None)?;
    // Kernel knobs are readable but not writable from a sliver.
    let sysctl = r.join("proc/sys");
    bind(&sysctl, &sysctl, MsFlags::MS_RDONLY | nse)?;
    for masked in ["kcore", "sysrq-trigger", "keys", "timer_list", "kallsyms"] {
        let p = r.join("proc").join(masked);
        if p.exists() {
            bind(Path::new("/dev/null"), &p, MsFlags::empty())?;
        }
    }
    // sysfs needs a network namespace owned by our user namespace (it is); read-only, best effort.
    let _ = mount(
        Some("sysfs"),
        &r.join("sys"),
        Some("sysfs"),
        nse | MsFlags::MS_RDONLY,
        None::<&str>,
    );
    build_dev(&r.join("dev"))?;
    mnt(
        Some("tmpfs"),
        &r.join("tmp"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    // pivot_root with the same old and new root stacks the old root under the new one; detaching
    // it leaves no path back to the host's tree.
    sys("chdir rootfs", chdir(r.as_path()))?;
    sys("pivot_root", pivot_root(".", "."))?;
    sys("detaching old root", umount2(".", MntFlags::MNT_DETACH))?;
    sys("chdir /", chdir("/"))?;
    Ok(())
}

/// A minimal /dev: a tmpfs with the harmless character devices bound from the host (a user
/// namespace cannot create device nodes, and needs none), a private devpts and /dev/shm.
fn build_dev(dev: &Path) -> R<()> {
    mnt(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(node);
        io("creating device file", File::create(&target))?;
        bind(&Path::new("/dev").join(node), &target, MsFlags::empty())?;
    }
    io("creating /dev/pts", fs::create_dir_all(dev.join("pts")))?;
    mnt(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    io("creating /dev/shm", fs::create_dir_all(dev.join("shm")))?;
    mnt(
        Some("tmpfs"),
        &dev.join("shm"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777"),
    )?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        io("creating /dev link", symlink(to, dev.join(link)))?;
    }
    Ok(())
}

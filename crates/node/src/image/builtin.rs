//! Built-in and hand-imported images: read-only directory trees under `<state_dir>/images/<name>`, shared by all slivers as
//! the overlayfs lower layer. The built-in `base` image is made from a static busybox, so a node
//! needs no network to run slivers.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::cmd::run;
use crate::error::{IoContext, NodeError};
use crate::names;

pub use slicelab_model::tags::DEFAULT_IMAGE;

const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox", "/usr/local/bin/busybox"];

fn check_image_name(name: &str) -> Result<(), NodeError> {
    slicelab_model::names::image(name).map_err(|e| NodeError::Invalid {
        what: "image name",
        message: e.message,
    })
}

/// The directory of image `name`, building the built-in one on first use.
pub fn ensure_image(state_dir: &Path, name: &str) -> Result<PathBuf, NodeError> {
    check_image_name(name)?;
    let dir = names::image_dir(state_dir, name);
    if dir.is_dir() {
        return Ok(dir);
    }
    if name == DEFAULT_IMAGE {
        build_base(state_dir)?;
        return Ok(dir);
    }
    Err(NodeError::NoSuchImage(name.into()))
}

/// A temp dir next to the final place, so the final rename is atomic: a crash never leaves a
/// half-copied image under its real name.
fn staging(state_dir: &Path, name: &str) -> Result<PathBuf, NodeError> {
    let images = names::images_dir(state_dir);
    fs::create_dir_all(&images).ctx(|| format!("creating {}", images.display()))?;
    let tmp = images.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).ctx(|| format!("removing {}", tmp.display()))?;
    }
    Ok(tmp)
}

fn publish(tmp: &Path, dir: &Path) -> Result<(), NodeError> {
    match fs::rename(tmp, dir) {
        Ok(()) => Ok(()),
        // Someone else published it first; theirs is as good as ours.
        Err(_) if dir.is_dir() => {
            let _ = fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) => Err(e).ctx(|| format!("publishing image {}", dir.display())),
    }
}

fn build_base(state_dir: &Path) -> Result<(), NodeError> {
    let busybox = BUSYBOX_CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            NodeError::NoSuchImage(format!("{DEFAULT_IMAGE} (needs busybox-static installed)"))
        })?;
    let tmp = staging(state_dir, DEFAULT_IMAGE)?;
    let c = |p: &Path| fs::create_dir_all(p).ctx(|| format!("creating {}", p.display()));
    for d in [
        "bin", "etc", "root", "tmp", "proc", "sys", "dev", "var/tmp", "home", "usr",
    ] {
        c(&tmp.join(d))?;
    }
    let bb = tmp.join("bin/busybox");
    fs::copy(busybox, &bb).ctx(|| format!("copying {}", busybox.display()))?;
    fs::set_permissions(&bb, fs::Permissions::from_mode(0o755)).ctx(|| "chmod busybox".into())?;
    let list = run(&busybox.to_string_lossy(), &["--list"], None)?;
    for applet in list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && !a.contains('/'))
    {
        if applet == "busybox" {
            continue;
        }
        let _ = symlink("busybox", tmp.join("bin").join(applet));
    }
    for (link, to) in [
        ("sbin", "bin"),
        ("usr/bin", "../bin"),
        ("usr/sbin", "../bin"),
    ] {
        symlink(to, tmp.join(link)).ctx(|| format!("linking {link}"))?;
    }
    let files = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/hosts", "127.0.0.1 localhost\n"),
        ("etc/resolv.conf", ""),
        ("etc/os-release", "NAME=slicelab-base\nID=slicelab\n"),
    ];
    for (path, text) in files {
        fs::write(tmp.join(path), text).ctx(|| format!("writing {path}"))?;
    }
    fs::set_permissions(tmp.join("tmp"), fs::Permissions::from_mode(0o1777))
        .ctx(|| "chmod tmp".into())?;
    publish(&tmp, &names::image_dir(state_dir, DEFAULT_IMAGE))
}

/// `slicelab image import NAME DIR`: copies `dir` (owners, modes, links preserved) as image `name`.
pub fn import_image(state_dir: &Path, name: &str, dir: &Path) -> Result<(), NodeError> {
    check_image_name(name)?;
    if !dir.is_dir() {
        return Err(NodeError::Invalid {
            what: "image source",
            message: format!("{} is not a directory", dir.display()),
        });
    }
    let dest = names::image_dir(state_dir, name);
    if dest.exists() {
        // Running slivers use it as their lower layer; changing it under them is undefined.
        return Err(NodeError::ImageExists(name.into()));
    }
    let tmp = staging(state_dir, name)?;
    fs::create_dir_all(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
    let src = format!("{}/.", dir.display());
    if let Err(e) = run("cp", &["-a", &src, &tmp.to_string_lossy()], None) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    publish(&tmp, &dest)
}

/// Names of the installed images.
pub fn list_images(state_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(names::images_dir(state_dir))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_copies_a_tree_and_refuses_to_overwrite() {
        let state = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("etc")).unwrap();
        fs::write(src.path().join("etc/motd"), "hi").unwrap();
        import_image(state.path(), "demo", src.path()).unwrap();
        let dir = ensure_image(state.path(), "demo").unwrap();
        assert_eq!(fs::read_to_string(dir.join("etc/motd")).unwrap(), "hi");
        assert!(matches!(
            import_image(state.path(), "demo", src.path()),
            Err(NodeError::ImageExists(_))
        ));
        assert!(import_image(state.path(), "Bad Name", src.path()).is_err());
        assert!(matches!(
            ensure_image(state.path(), "nope"),
            Err(NodeError::NoSuchImage(_))
        ));
        assert_eq!(list_images(state.path()), vec!["demo".to_string()]);
    }

    #[test]
    fn base_image_is_built_from_busybox() {
        if !BUSYBOX_CANDIDATES.iter().any(|p| Path::new(p).is_file()) {
            eprintln!("skipped: busybox not installed");
            return;
        }
        let state = tempfile::tempdir().unwrap();
        let dir = ensure_image(state.path(), DEFAULT_IMAGE).unwrap();
        assert!(dir.join("bin/sh").exists());
        assert!(dir.join("etc/passwd").is_file());
    }
}

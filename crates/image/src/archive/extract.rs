//! The outer tar of an image archive (`oci-archive:` or `docker save`): classified by its entry
//! names, then extracted to a directory the caller owns — regular files and directories only,
//! at checked paths. Symlinks and hard links between the archive's own files (old `docker
//! save` links identical `layer.tar`s) become hard links to the file already extracted.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use slicelab_model::image::Compression;
use tar::EntryType;

use crate::compress::decoder;
use crate::error::{ImageError, IoContext};

/// What a tar file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/`).
    OciLayout,
    /// A `docker save` archive (`manifest.json`).
    DockerSave,
    /// Anything else: a root filesystem.
    Rootfs,
}

/// The components of an archive member's name; `..` is refused, `/` and `.` dropped.
pub(crate) fn safe_components(name: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(format!("member {name:?} has a `..` component")),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether a (normalised) member name can belong to an image archive.
fn image_member(comps: &[&str]) -> bool {
    match comps {
        [] => true,
        ["oci-layout" | "index.json" | "manifest.json" | "repositories"] => true,
        ["blobs", ..] => true,
        [one] => {
            let stem = one
                .strip_suffix(".json")
                .or_else(|| one.strip_suffix(".tar"));
            is_hex64(one) || stem.is_some_and(is_hex64)
        }
        [first, ..] => is_hex64(first),
    }
}

/// Classifies a sequence of member names (pure).
pub(crate) fn classify<'a>(names: impl IntoIterator<Item = &'a str>) -> Kind {
    let (mut layout, mut index, mut manifest) = (false, false, false);
    for name in names {
        let Ok(comps) = safe_components(name) else {
            return Kind::Rootfs;
        };
        if !image_member(&comps) {
            return Kind::Rootfs;
        }
        match comps[..] {
            ["oci-layout"] => layout = true,
            ["index.json"] => index = true,
            ["manifest.json"] => manifest = true,
            _ => {}
        }
    }
    if manifest {
        Kind::DockerSave
    } else if layout && index {
        Kind::OciLayout
    } else {
        Kind::Rootfs
    }
}

fn open_tar(path: &Path, c: Compression) -> Result<tar::Archive<Box<dyn Read>>, ImageError> {
    let file = File::open(path).ctx("opening", path)?;
    Ok(tar::Archive::new(
        decoder(file, c).ctx("decompressing", path)?,
    ))
}

fn bad_tar(path: &Path, last: &str, e: io::Error) -> ImageError {
    if last.is_empty() {
        ImageError::bad(format!("{}: not a tar ({e})", path.display()))
    } else {
        ImageError::bad(format!(
            "{}: damaged or truncated after member {last:?} ({e})",
            path.display()
        ))
    }
}

/// Reads the whole tar (so a truncated one is caught) and classifies it; a tar without entries
/// is refused.
pub(crate) fn scan(path: &Path, c: Compression) -> Result<Kind, ImageError> {
    let mut archive = open_tar(path, c)?;
    let mut names = Vec::new();
    let mut last = String::new();
    for entry in archive.entries().map_err(|e| bad_tar(path, "", e))? {
        let mut entry = entry.map_err(|e| bad_tar(path, &last, e))?;
        last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        safe_components(&last).map_err(|m| ImageError::bad(format!("{}: {m}", path.display())))?;
        // Reading the content catches a truncated last member.
        let size = entry.size();
        let read = io::copy(&mut entry, &mut io::sink()).map_err(|e| bad_tar(path, &last, e))?;
        if read < size {
            return Err(bad_tar(path, &last, io::ErrorKind::UnexpectedEof.into()));
        }
        if names.len() < 100_000 {
            names.push(last.clone());
        }
    }
    if last.is_empty() {
        return Err(ImageError::bad(format!(
            "{}: an empty tar (no entries)",
            path.display()
        )));
    }
    Ok(classify(names.iter().map(String::as_str)))
}

/// Extracts the archive's regular files and directories under `dest` (an empty directory).
pub(crate) fn extract(path: &Path, c: Compression, dest: &Path) -> Result<(), ImageError> {
    let mut archive = open_tar(path, c)?;
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut last = String::new();
    for entry in archive.entries().map_err(|e| bad_tar(path, "", e))? {
        let mut entry = entry.map_err(|e| bad_tar(path, &last, e))?;
        last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let comps = safe_components(&last).map_err(ImageError::bad)?;
        let target = dest.join(comps.join("/"));
        match entry.header().entry_type() {
            EntryType::Directory => fs::create_dir_all(&target).ctx("creating", &target)?,
            EntryType::Regular | EntryType::Continuous if !comps.is_empty() => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).ctx("creating", parent)?;
                }
                let mut out = File::create_new(&target).ctx("creating", &target)?;
                let size = entry.size();
                let n = io::copy(&mut entry, &mut out).map_err(|e| bad_tar(path, &last, e))?;
                if n < size {
                    return Err(bad_tar(path, &last, io::ErrorKind::UnexpectedEof.into()));
                }
            }
            ty @ (EntryType::Symlink | EntryType::Link) => {
                let link = entry.link_name_bytes().unwrap_or_default();
                let link = String::from_utf8_lossy(&link).into_owned();
                // A symlink is relative to its directory, a hard link to the archive's root.
                let base = if ty == EntryType::Symlink && !comps.is_empty() {
                    comps[..comps.len() - 1].join("/")
                } else {
                    String::new()
                };
                if let Some(rel) = normalize(&base, &link) {
                    links.push((target, dest.join(rel)));
                }
            }
            _ => {} // devices, FIFOs: nothing an image archive needs.
        }
    }
    for (name, target) in links {
        if fs::symlink_metadata(&target).is_ok_and(|m| m.is_file()) {
            if let Some(parent) = name.parent() {
                fs::create_dir_all(parent).ctx("creating", parent)?;
            }
            fs::hard_link(&target, &name).ctx("linking", &name)?;
        }
    }
    Ok(())
}

/// `base/link` with `.` and `..` resolved; `None` if it is absolute or leaves the archive.
fn normalize(base: &str, link: &str) -> Option<String> {
    if link.starts_with('/') {
        return None;
    }
    let mut out: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for c in link.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    (!out.is_empty()).then(|| out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_told_apart_by_their_names() {
        let hex = "a".repeat(64);
        let oci = ["oci-layout", "index.json", "blobs/", "blobs/sha256/x"];
        assert_eq!(classify(oci), Kind::OciLayout);
        let old_docker = [
            format!("{hex}/"),
            format!("{hex}/layer.tar"),
            format!("{hex}.json"),
            "manifest.json".into(),
            "repositories".into(),
        ];
        assert_eq!(
            classify(old_docker.iter().map(String::as_str)),
            Kind::DockerSave
        );
        let skopeo = [
            format!("{hex}.tar"),
            format!("{hex}/layer.tar"),
            "manifest.json".into(),
        ];
        assert_eq!(
            classify(skopeo.iter().map(String::as_str)),
            Kind::DockerSave
        );
        let new_docker = [
            "blobs/sha256/x",
            "index.json",
            "manifest.json",
            "oci-layout",
        ];
        assert_eq!(classify(new_docker), Kind::DockerSave);
        assert_eq!(classify(["./", "./etc/", "./manifest.json"]), Kind::Rootfs);
        assert_eq!(
            classify(["index.json", "oci-layout", "etc/passwd"]),
            Kind::Rootfs
        );
        assert_eq!(classify(["index.json"]), Kind::Rootfs);
        assert_eq!(classify(["../oci-layout", "index.json"]), Kind::Rootfs);
    }

    #[test]
    fn link_targets_stay_in_the_archive() {
        assert_eq!(
            normalize("a", "../b/layer.tar").as_deref(),
            Some("b/layer.tar")
        );
        assert_eq!(normalize("", "b/x").as_deref(), Some("b/x"));
        assert_eq!(normalize("a", "../../x"), None);
        assert_eq!(normalize("a", "/etc/passwd"), None);
        assert!(safe_components("a/../../x").is_err());
        assert_eq!(safe_components("/a/./b").unwrap(), ["a", "b"]);
    }
}

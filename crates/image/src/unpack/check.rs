//! Checking a layer without unpacking it: every entry read as [`super::unpack_layer`] reads it,
//! nothing written. Run when an image is published, so a layer a node would refuse (not a tar,
//! truncated, a `..` name, unreadable header fields, a link without a target) is refused there,
//! with its reason, and nothing is stored.

use std::fs::File;
use std::io;
use std::path::Path;

use slicelab_model::image::Compression;
use tar::EntryType;

use super::{finish, is_metadata, link_name, meta_of, path, Limits, UnpackReport};
use crate::compress::decoder;
use crate::digest::Sha256Reader;
use crate::error::{ImageError, IoContext};

/// Reads the whole layer; its entry count and `diff_id`, or why a node would refuse it.
pub fn check_layer(blob: &Path, compression: Compression) -> Result<UnpackReport, ImageError> {
    check_layer_within(blob, compression, &Limits::default())
}

/// [`check_layer`] within `limits`.
pub fn check_layer_within(
    blob: &Path,
    compression: Compression,
    limits: &Limits,
) -> Result<UnpackReport, ImageError> {
    let file = File::open(blob).ctx("opening", blob)?;
    let reader = Sha256Reader::new(decoder(file, compression).ctx("decompressing", blob)?);
    let mut archive = tar::Archive::new(reader);
    let mut report = UnpackReport::default();
    let entries = archive
        .entries()
        .map_err(|e| ImageError::bad(format!("{}: not a tar: {e}", blob.display())))?;
    for entry in entries {
        let mut entry = entry
            .map_err(|e| ImageError::bad(format!("{}: reading the tar: {e}", blob.display())))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let in_entry = |e: ImageError| match e {
            ImageError::BadArchive(m) => ImageError::bad(format!("entry {shown:?}: {m}")),
            other => other,
        };
        let ty = entry.header().entry_type();
        if is_metadata(ty) {
            continue;
        }
        report.entries += 1;
        path::components(&raw)
            .map_err(ImageError::bad)
            .map_err(in_entry)?;
        meta_of(&mut entry, &mut report).map_err(in_entry)?;
        if ty == EntryType::GNUSparse {
            return Err(in_entry(ImageError::bad("sparse files are not supported")));
        }
        if matches!(ty, EntryType::Symlink | EntryType::Link) {
            link_name(&entry).map_err(in_entry)?;
        }
        let size = entry.size();
        if report.bytes.saturating_add(size) > limits.max_bytes {
            return Err(in_entry(ImageError::bad(format!(
                "the layer would unpack to more than {} bytes",
                limits.max_bytes
            ))));
        }
        let n = io::copy(&mut entry, &mut io::sink())
            .map_err(|e| in_entry(ImageError::bad(format!("reading its content: {e}"))))?;
        if n < size && matches!(ty, EntryType::Regular | EntryType::Continuous) {
            return Err(in_entry(ImageError::bad(format!(
                "truncated: {n} of its {size} bytes"
            ))));
        }
        report.bytes += n;
        limits.check(&report)?;
    }
    finish(archive, blob, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_header_fields_and_climbing_names_are_refused_without_unpacking() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.tar");
        let mut b = tar::Builder::new(File::create(&good).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(2);
        h.set_cksum();
        b.append_data(&mut h, "etc/x", &b"hi"[..]).unwrap();
        b.finish().unwrap();
        drop(b);
        let r = check_layer(&good, Compression::None).unwrap();
        assert_eq!((r.entries, r.bytes), (1, 2));
        // Bounded: a small layer cannot claim a node's disk or inodes.
        let tight = Limits {
            max_bytes: 1,
            max_entries: 10,
        };
        let e = check_layer_within(&good, Compression::None, &tight).unwrap_err();
        assert!(e.to_string().contains("more than 1 bytes"), "{e}");
        let few = Limits {
            max_bytes: 10,
            max_entries: 0,
        };
        let e = check_layer_within(&good, Compression::None, &few).unwrap_err();
        assert!(e.to_string().contains("more than 0 entries"), "{e}");
        let out = dir.path().join("out");
        let e = crate::unpack_layer_within(&good, Compression::None, &out, &tight).unwrap_err();
        assert!(e.to_string().contains("more than 1 bytes"), "{e}");
        assert!(!out.exists(), "nothing left of a refused layer");

        // `Header::new_gnu` leaves uid, gid and mtime blank: a node could not read them.
        let blank = dir.path().join("blank.tar");
        let mut b = tar::Builder::new(File::create(&blank).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(2);
        h.set_cksum();
        b.append_data(&mut h, "etc/x", &b"hi"[..]).unwrap();
        b.finish().unwrap();
        drop(b);
        let e = check_layer(&blank, Compression::None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("etc/x") && e.contains("uid"), "{e}");

        let mut bytes = std::fs::read(&good).unwrap();
        bytes[..8].copy_from_slice(b"../evil\0");
        // Fix the header checksum so only the name is wrong.
        let mut h = tar::Header::new_old();
        h.as_mut_bytes().copy_from_slice(&bytes[..512]);
        h.set_cksum();
        bytes[..512].copy_from_slice(h.as_bytes());
        let climbing = dir.path().join("climbing.tar");
        std::fs::write(&climbing, &bytes).unwrap();
        let e = check_layer(&climbing, Compression::None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("evil"), "{e}");
        std::fs::write(dir.path().join("text"), "not a tar at all, no").unwrap();
        assert!(check_layer(&dir.path().join("text"), Compression::None).is_err());
    }
}

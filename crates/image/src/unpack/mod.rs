//! Unpacking one layer blob into a directory that becomes an overlayfs lower layer.
//!
//! This runs as host root on the node, on tars from anyone who may publish an image. The
//! invariants (each tested with hostile tars in `tests/unpack_hostile.rs`):
//! - nothing is created, changed or removed outside `dest`: names are checked first
//!   (`path`: leading `/` and `./` dropped, any `..` refuses the layer), and every filesystem
//!   call goes through `tree` (`openat2` with `RESOLVE_IN_ROOT` for parents, `*at()` with no
//!   following for the final component);
//! - no device node or FIFO is created, except overlayfs whiteouts (char 0:0) for `.wh.` names;
//! - owners above 65535 are clamped to 65534: slices' uid ranges are 65,536 wide;
//! - hard links point only at regular files already unpacked in `dest`;
//! - on any error `dest` is removed: nothing half-unpacked stays.

mod check;
mod path;
mod tree;

pub use check::{check_layer, check_layer_within};

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use slicelab_model::image::Compression;
use tar::{Entry, EntryType};

use crate::compress::decoder;
use crate::digest::Sha256Reader;
use crate::error::{ImageError, IoContext};
use path::Kind;
use tree::{Meta, ParentError, PlaceError, Tree};

/// The highest owner id kept; larger ones become [`NOBODY`].
pub const MAX_ID: u64 = 65535;
/// The id clamped owners get.
pub const NOBODY: u32 = 65534;

/// Bounds on what one layer may unpack to: a small layer must not fill a node's disk (a
/// compression bomb) or its inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file content.
    pub max_bytes: u64,
    /// Entries.
    pub max_entries: u64,
}

impl Default for Limits {
    /// 64 GiB and 4 million entries: several times the largest distribution images.
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
        }
    }
}

impl Limits {
    pub(crate) fn check(&self, r: &UnpackReport) -> Result<(), ImageError> {
        if r.entries > self.max_entries {
            return Err(ImageError::bad(format!(
                "more than {} entries",
                self.max_entries
            )));
        }
        if r.bytes > self.max_bytes {
            return Err(ImageError::bad(format!(
                "more than {} bytes of files",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

/// What an unpack did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Tar entries read (metadata-only headers excluded).
    pub entries: u64,
    /// Bytes of regular files written.
    pub bytes: u64,
    /// Entries not created: devices, FIFOs, unknown types, non-overlay `.wh.` names.
    pub skipped: u64,
    /// Entries whose owner or group was above 65535 (set to 65534).
    pub clamped_ids: u64,
    /// sha256 of the uncompressed tar stream (the OCI `diff_id`).
    pub diff_id: String,
}

/// Unpacks `blob` (a tar, compressed as `compression` says) into `dest`, which must not exist
/// or be an empty directory, within the default [`Limits`]. On error `dest` is removed.
pub fn unpack_layer(
    blob: &Path,
    compression: Compression,
    dest: &Path,
) -> Result<UnpackReport, ImageError> {
    unpack_layer_within(blob, compression, dest, &Limits::default())
}

/// [`unpack_layer`] within `limits`.
pub fn unpack_layer_within(
    blob: &Path,
    compression: Compression,
    dest: &Path,
    limits: &Limits,
) -> Result<UnpackReport, ImageError> {
    prepare_dest(dest)?;
    let result = unpack_into(blob, compression, dest, limits);
    if result.is_err() {
        // std's remove_dir_all does not follow symlinks (it works on directory fds).
        let _ = fs::remove_dir_all(dest);
    }
    result
}

fn prepare_dest(dest: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(dest).ctx("creating", dest)?;
            fs::set_permissions(dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .ctx("setting the mode of", dest)
        }
        Err(e) => Err(ImageError::io(format!("examining {}", dest.display()), e)),
        Ok(m) if m.is_dir() && fs::read_dir(dest).ctx("listing", dest)?.next().is_none() => Ok(()),
        Ok(_) => Err(ImageError::io(
            format!("unpacking into {}", dest.display()),
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the destination exists and is not an empty directory",
            ),
        )),
    }
}

fn unpack_into(
    blob: &Path,
    c: Compression,
    dest: &Path,
    limits: &Limits,
) -> Result<UnpackReport, ImageError> {
    let file = File::open(blob).ctx("opening", blob)?;
    let reader = Sha256Reader::new(decoder(file, c).ctx("decompressing", blob)?);
    let tree = Tree::open(dest).ctx("opening", dest)?;
    let mut archive = tar::Archive::new(reader);
    let mut report = UnpackReport::default();
    let mut dir_times: Vec<(Vec<u8>, i64)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| ImageError::bad(format!("{}: not a tar: {e}", blob.display())))?;
    let mut last = String::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            let after = if last.is_empty() {
                "at its start (not a tar?)".to_string()
            } else {
                format!("after entry {last:?}")
            };
            ImageError::bad(format!("{}: reading the tar {after}: {e}", blob.display()))
        })?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        if report.bytes.saturating_add(entry.size()) > limits.max_bytes {
            return Err(ImageError::bad(format!(
                "entry {shown:?}: the layer would unpack to more than {} bytes",
                limits.max_bytes
            )));
        }
        let in_entry = |e: ImageError| match e {
            ImageError::BadArchive(m) => ImageError::bad(format!("entry {shown:?}: {m}")),
            ImageError::Io { context, source } => {
                ImageError::io(format!("entry {shown:?}: {context}"), source)
            }
            other => other,
        };
        if let Some(dir_mtime) =
            unpack_entry(&tree, &mut entry, &raw, &mut report).map_err(in_entry)?
        {
            dir_times.push((raw, dir_mtime));
        }
        limits.check(&report)?;
        last = shown;
    }
    // Last: entries created inside a directory changed its mtime.
    for (raw, mtime) in dir_times.iter().rev() {
        let comps = path::components(raw).map_err(ImageError::bad)?;
        tree.set_dir_mtime(&comps, *mtime)
            .map_err(|e| ImageError::io("setting directory times", e))?;
    }
    finish(archive, blob, report)
}

/// The end of reading a layer, for unpacking and checking alike: the rest of the stream read
/// and hashed (its `diff_id`), an empty layer refused.
fn finish<R: Read>(
    archive: tar::Archive<Sha256Reader<R>>,
    blob: &Path,
    mut report: UnpackReport,
) -> Result<UnpackReport, ImageError> {
    let (diff_id, len) = archive
        .into_inner()
        .finish()
        .map_err(|e| ImageError::bad(format!("{}: reading the tar: {e}", blob.display())))?;
    if len == 0 {
        return Err(ImageError::bad(format!("{}: empty layer", blob.display())));
    }
    report.diff_id = diff_id;
    Ok(report)
}

/// Headers that only carry metadata for the next entry (long names, PAX): not entries.
fn is_metadata(ty: EntryType) -> bool {
    matches!(
        ty,
        EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink
    )
}

/// Unpacks one entry; returns the mtime to give a directory at the end, if it made one.
fn unpack_entry<R: Read>(
    tree: &Tree,
    entry: &mut Entry<R>,
    raw: &[u8],
    report: &mut UnpackReport,
) -> Result<Option<i64>, ImageError> {
    let ty = entry.header().entry_type();
    if is_metadata(ty) {
        return Ok(None);
    }
    report.entries += 1;
    let comps = path::components(raw).map_err(ImageError::bad)?;
    let meta = meta_of(entry, report)?;
    let Some((last, parent_comps)) = comps.split_last() else {
        // The layer's root itself (`./`): only a directory may name it.
        if ty != EntryType::Directory {
            return Err(ImageError::bad(
                "names the layer's root but is not a directory",
            ));
        }
        tree::set_root_meta(tree, &meta).map_err(place_err)?;
        return Ok(Some(meta.mtime));
    };
    let kind = path::kind(last);
    if kind == Kind::Ignored {
        report.skipped += 1;
        return Ok(None);
    }
    let parent = tree.dir(parent_comps).map_err(|e| match e {
        ParentError::NotADirectory(e) => ImageError::bad(format!(
            "its parent is not a directory inside the layer ({e})"
        )),
        ParentError::Io(e) => ImageError::io("resolving its parent", e),
    })?;
    match kind {
        Kind::Opaque => tree::make_opaque(&parent).map_err(place_err)?,
        Kind::Whiteout(name) => tree::make_whiteout(&parent, name).map_err(place_err)?,
        Kind::Ignored => {}
        Kind::Plain => match ty {
            // Sparse entries could declare petabytes in a few hundred bytes: refused.
            EntryType::GNUSparse => {
                return Err(ImageError::bad("sparse files are not supported"));
            }
            EntryType::Regular | EntryType::Continuous => {
                let n = tree::create_file(&parent, last, &meta, |f| copy(entry, f))
                    .map_err(place_err)?;
                report.bytes += n;
            }
            EntryType::Directory => {
                tree::make_dir(&parent, last, &meta).map_err(place_err)?;
                return Ok(Some(meta.mtime));
            }
            EntryType::Symlink => {
                let target = link_name(entry)?;
                tree::make_symlink(&parent, last, &target, &meta).map_err(place_err)?;
            }
            EntryType::Link => {
                let target = link_name(entry)?;
                let tcomps = path::components(&target)
                    .map_err(|m| ImageError::bad(format!("hard link target: {m}")))?;
                let shown = String::from_utf8_lossy(&target);
                let fd = tree
                    .regular_file(&tcomps)
                    .map_err(|e| {
                        ImageError::io(format!("resolving hard link target {shown:?}"), e)
                    })?
                    .ok_or_else(|| {
                        ImageError::bad(format!(
                            "hard link target {shown:?} is not a regular file already in the layer"
                        ))
                    })?;
                tree::make_hardlink(&parent, last, &fd).map_err(place_err)?;
            }
            // Char and block devices, FIFOs and anything else: never created.
            _ => report.skipped += 1,
        },
    }
    Ok(None)
}

fn place_err(e: PlaceError) -> ImageError {
    match e {
        PlaceError::ReplacesDirectory => {
            ImageError::bad("would replace a directory with a non-directory")
        }
        PlaceError::BadContent(m) => ImageError::bad(m),
        PlaceError::Io(e) => ImageError::io("creating it", e),
    }
}

/// Copies an entry's content; a read error or a short entry is the archive's fault, a write
/// error the disk's.
fn copy<R: Read>(entry: &mut Entry<R>, out: &mut File) -> Result<u64, PlaceError> {
    let size = entry.size();
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) if total < size => {
                return Err(PlaceError::BadContent(format!(
                    "truncated: {total} of its {size} bytes"
                )))
            }
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PlaceError::BadContent(format!("reading its content: {e}"))),
        };
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn link_name<R: Read>(entry: &Entry<R>) -> Result<Vec<u8>, ImageError> {
    match entry.link_name_bytes() {
        Some(t) if !t.is_empty() => Ok(t.into_owned()),
        _ => Err(ImageError::bad("a link without a target")),
    }
}

/// Owner (PAX `uid`/`gid` over the header's; clamped), mode and mtime of an entry.
fn meta_of<R: Read>(entry: &mut Entry<R>, report: &mut UnpackReport) -> Result<Meta, ImageError> {
    let h = entry.header();
    let bad = |what: &str, e: io::Error| ImageError::bad(format!("bad {what} in its header: {e}"));
    let mut uid = h.uid().map_err(|e| bad("uid", e))?;
    let mut gid = h.gid().map_err(|e| bad("gid", e))?;
    let mode = h.mode().map_err(|e| bad("mode", e))?;
    let mut mtime = h.mtime().map_err(|e| bad("mtime", e))? as i64;
    if let Ok(Some(pax)) = entry.pax_extensions() {
        for ext in pax.flatten() {
            let value = ext.value().unwrap_or("");
            let int = |v: &str| v.split('.').next().and_then(|s| s.parse::<i64>().ok());
            match ext.key().unwrap_or("") {
                "uid" => uid = int(value).map_or(uid, |v| v.max(0) as u64),
                "gid" => gid = int(value).map_or(gid, |v| v.max(0) as u64),
                "mtime" => mtime = int(value).unwrap_or(mtime),
                _ => {}
            }
        }
    }
    let clamp = |id: u64| if id > MAX_ID { NOBODY } else { id as u32 };
    if uid > MAX_ID || gid > MAX_ID {
        report.clamped_ids += 1;
    }
    Ok(Meta {
        uid: clamp(uid),
        gid: clamp(gid),
        mode,
        mtime,
    })
}

//! Images on disk: [`open`] reads one in any of the forms below, detected by content (not by
//! file name); [`write_oci_layout`] writes one as an OCI image layout.
//!
//! 1. a directory holding an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`);
//! 2. a tar of such a layout (`skopeo copy … oci-archive:FILE`);
//! 3. a `docker save` tar (`manifest.json`, old and new formats);
//! 4. a plain root filesystem tarball (tar, gzip or zstd by magic bytes): one layer whose blob
//!    is the file itself, with the default config (the usual PATH, no command).
//!
//! Archives (2, 3) are extracted to a temporary directory (under `$TMPDIR`) that the returned
//! [`ImageSource`] owns. Compressed archives are accepted too (`docker save | gzip`). Every
//! blob is verified against its descriptor; layers must have a media type a node can unpack.

mod docker;
mod extract;
pub(crate) mod oci;
mod write;

use std::fs;
use std::path::Path;

use slicelab_model::image::LayerRef;

pub use write::write_oci_layout;

use crate::compress::{layer_media_type, sniff};
use crate::digest::sha256_file;
use crate::error::{ImageError, IoContext};
use crate::source::{default_config, ImageSource, LocalLayer};
use extract::Kind;

/// Opens the image at `path` (see the module doc for the forms accepted).
pub fn open(path: &Path) -> Result<ImageSource, ImageError> {
    let meta = fs::metadata(path).ctx("opening", path)?;
    if meta.is_dir() {
        let (config, layers) = oci::read_layout(path)?;
        return Ok(ImageSource::new(config, layers, None));
    }
    let c = sniff(path)?;
    let kind = extract::scan(path, c)?;
    if kind == Kind::Rootfs {
        let layer = LocalLayer {
            path: path.to_path_buf(),
            layer: LayerRef {
                digest: sha256_file(path)?,
                size: meta.len(),
                media_type: layer_media_type(c).to_string(),
            },
        };
        return Ok(ImageSource::new(default_config(), vec![layer], None));
    }
    let tmp = tempfile::Builder::new()
        .prefix("slicelab-image-")
        .tempdir()
        .map_err(|e| ImageError::io("creating a temporary directory", e))?;
    extract::extract(path, c, tmp.path())?;
    let (config, layers) = match kind {
        Kind::OciLayout => oci::read_layout(tmp.path())?,
        _ => docker::read(tmp.path())?,
    };
    Ok(ImageSource::new(config, layers, Some(tmp)))
}

//! Reading an OCI image layout directory: `oci-layout`, `index.json`, `blobs/sha256/…`. Every
//! blob used (index, manifest, config, layers) is checked against its descriptor's size and
//! digest.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use slicelab_model::image::{check_digest, digest_hex, layer_compression, ImageConfig, LayerRef};

use crate::digest::verify_file;
use crate::error::{ImageError, IoContext};
use crate::platform::{self, choose, is_index};
use crate::source::{config_from_oci, LocalLayer};

/// Largest manifest, index or config read into memory.
pub(crate) const MAX_JSON: u64 = 16 << 20;

/// Nested indexes followed at most.
const MAX_DEPTH: usize = 3;

/// The path of a blob in a layout, from a checked digest.
pub(crate) fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    check_digest(digest).map_err(|e| ImageError::bad(e.to_string()))?;
    Ok(dir.join("blobs/sha256").join(digest_hex(digest)))
}

/// The path of the blob a descriptor names, checked: present, of its size, of its digest.
fn verified_blob(dir: &Path, d: &Descriptor, what: &str) -> Result<PathBuf, ImageError> {
    let digest = d.digest().to_string();
    let path = blob_path(dir, &digest)?;
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(_) => return Err(ImageError::bad(format!("{what}: missing blob {digest}"))),
    };
    if meta.len() != d.size() {
        return Err(ImageError::bad(format!(
            "{what}: blob {digest} has {} bytes, its descriptor says {}",
            meta.len(),
            d.size()
        )));
    }
    verify_file(&path, &digest, what)?;
    Ok(path)
}

/// A small JSON blob (manifest, index, config), verified.
fn json_blob(dir: &Path, d: &Descriptor, what: &str) -> Result<Vec<u8>, ImageError> {
    if d.size() > MAX_JSON {
        return Err(ImageError::bad(format!(
            "{what}: {} bytes is too large",
            d.size()
        )));
    }
    let path = verified_blob(dir, d, what)?;
    fs::read(&path).ctx("reading", &path)
}

/// The config and layers of the linux/amd64 image in the layout at `dir`.
pub(crate) fn read_layout(dir: &Path) -> Result<(ImageConfig, Vec<LocalLayer>), ImageError> {
    let marker = dir.join("oci-layout");
    let layout: serde_json::Value = match fs::read(&marker) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| ImageError::bad(format!("{}: {e}", marker.display())))?,
        Err(_) => {
            return Err(ImageError::bad(format!(
                "{}: not an OCI image layout (no oci-layout file)",
                dir.display()
            )))
        }
    };
    if layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(ImageError::bad(format!(
            "{}: no imageLayoutVersion",
            marker.display()
        )));
    }
    let index_path = dir.join("index.json");
    let bytes = fs::read(&index_path)
        .map_err(|e| ImageError::bad(format!("{}: {e}", index_path.display())))?;
    let index: ImageIndex = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::bad(format!("{}: {e}", index_path.display())))?;
    let manifest = manifest_of(dir, &index, 0)?;
    image_of(&manifest, &|d, what| verified_blob(dir, d, what))
}

/// Follows (nested) indexes to the linux/amd64 manifest.
fn manifest_of(dir: &Path, index: &ImageIndex, depth: usize) -> Result<ImageManifest, ImageError> {
    let d = choose(index.manifests()).map_err(ImageError::bad)?;
    let mt = platform::media_type(d);
    let bytes = json_blob(dir, d, "manifest")?;
    if is_index(&mt) {
        if depth >= MAX_DEPTH {
            return Err(ImageError::bad("indexes nested too deep"));
        }
        let inner: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::bad(format!("index {}: {e}", d.digest())))?;
        return manifest_of(dir, &inner, depth + 1);
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::bad(format!("manifest {}: {e}", d.digest())))
}

/// The config and layers of a manifest; `fetch` gives a descriptor's verified blob on disk.
pub(crate) fn image_of(
    manifest: &ImageManifest,
    fetch: &dyn Fn(&Descriptor, &str) -> Result<PathBuf, ImageError>,
) -> Result<(ImageConfig, Vec<LocalLayer>), ImageError> {
    let layers = check_layers(manifest)?;
    let config_path = fetch(manifest.config(), "config")?;
    let bytes = fs::read(&config_path).ctx("reading", &config_path)?;
    let config: ImageConfiguration = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::bad(format!("config {}: {e}", manifest.config().digest())))?;
    let mut local = Vec::with_capacity(layers.len());
    for (i, (d, layer)) in manifest.layers().iter().zip(layers).enumerate() {
        let path = fetch(d, &format!("layer {i} ({})", layer.digest))?;
        local.push(LocalLayer { path, layer });
    }
    Ok((config_from_oci(&config), local))
}

/// The layers' descriptors as [`LayerRef`]s, refusing media types a node cannot unpack and
/// images without layers.
pub(crate) fn check_layers(manifest: &ImageManifest) -> Result<Vec<LayerRef>, ImageError> {
    if manifest.layers().is_empty() {
        return Err(ImageError::bad("the image has no layers"));
    }
    manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let media_type = platform::media_type(d);
            let digest = d.digest().to_string();
            if layer_compression(&media_type).is_none() {
                return Err(ImageError::bad(format!(
                    "layer {i} ({digest}) has media type {media_type:?}, which slicelab cannot unpack"
                )));
            }
            check_digest(&digest).map_err(|e| ImageError::bad(e.to_string()))?;
            Ok(LayerRef {
                digest,
                size: d.size(),
                media_type,
            })
        })
        .collect()
}

//! Pulling an image from an OCI distribution (v2) registry: `HOST[:PORT]/REPO[:TAG|@DIGEST]`
//! (no host: Docker Hub, `library/` for one-word names). Accepts OCI manifests and indexes,
//! Docker v2 schema 2 manifests and manifest lists; takes linux/amd64; downloads the config
//! and layers to a temporary directory the returned [`ImageSource`] owns, verifying every
//! digest and size. Anonymous, Basic, and Bearer tokens (401 → token from the realm → retry).
//!
//! Written on the workspace's reqwest (with rustls) rather than `oci-client`: see the README.

mod auth;
mod session;

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::distribution::Reference;
use oci_spec::image::{ImageIndex, ImageManifest};

pub use auth::RegistryAuth;

use crate::archive::oci::{check_layers, image_of};
use crate::error::ImageError;
use crate::platform::{choose, is_index, is_manifest};
use crate::source::ImageSource;
use session::Session;

/// Manifests and indexes read into memory at most.
const MAX_MANIFEST: usize = 4 << 20;

/// Pulls `reference`; `insecure` speaks plain http (a registry on loopback, in tests).
pub async fn pull(
    reference: &str,
    auth: &RegistryAuth,
    insecure: bool,
) -> Result<ImageSource, ImageError> {
    let r = Reference::from_str(reference).map_err(|e| {
        ImageError::Registry(format!("{reference:?} is not an image reference: {e}"))
    })?;
    let scheme = if insecure { "http" } else { "https" };
    let base = format!("{scheme}://{}/v2/{}", r.resolve_registry(), r.repository());
    let mut s = Session::new(auth.clone(), r.repository())?;

    let wanted = r.digest().or(r.tag()).unwrap_or("latest").to_string();
    let (mut bytes, mut mt) = s.manifest(&base, &wanted, MAX_MANIFEST).await?;
    if is_index(&mt) {
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::Registry(format!("index of {reference}: {e}")))?;
        let d = choose(index.manifests()).map_err(ImageError::Registry)?;
        (bytes, mt) = s.manifest(&base, d.digest().as_ref(), MAX_MANIFEST).await?;
    }
    if !is_manifest(&mt) {
        return Err(ImageError::Registry(format!(
            "{reference}: unsupported manifest type {mt:?}"
        )));
    }
    let manifest: ImageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::Registry(format!("manifest of {reference}: {e}")))?;
    check_layers(&manifest)?;

    let dir = tempfile::Builder::new()
        .prefix("slicelab-pull-")
        .tempdir()
        .map_err(|e| ImageError::io("creating a temporary directory", e))?;
    let mut blobs: HashMap<String, PathBuf> = HashMap::new();
    let wanted = std::iter::once(manifest.config()).chain(manifest.layers());
    for d in wanted {
        let digest = d.digest().to_string();
        if blobs.contains_key(&digest) {
            continue;
        }
        let path = dir.path().join(slicelab_model::image::digest_hex(&digest));
        s.blob(&base, &digest, d.size(), &path).await?;
        blobs.insert(digest, path);
    }
    let (config, layers) = image_of(&manifest, &|d, what| {
        blobs
            .get(&d.digest().to_string())
            .cloned()
            .ok_or_else(|| ImageError::Registry(format!("{what}: not downloaded")))
    })?;
    Ok(ImageSource::new(config, layers, Some(dir)))
}

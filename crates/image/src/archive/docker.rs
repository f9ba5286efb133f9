//! Reading an extracted `docker save` archive: `manifest.json` names the config and the layer
//! tars, in the old format (`<id>/layer.tar`, `<hex>.json`) or the new one (`blobs/sha256/…`).
//! The config is checked against the digest its name carries; each layer against the config's
//! `rootfs.diff_ids` (and against its name's digest in the new format). Layers are uncompressed
//! tars or gzip, told apart by their magic bytes and labelled with the matching media type.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;
use slicelab_model::image::{Compression, ImageConfig, LayerRef};

use super::extract::safe_components;
use super::oci::MAX_JSON;
use crate::compress::{diff_id, layer_media_type, sniff};
use crate::digest::{check, sha256_file, verify_file};
use crate::error::{ImageError, IoContext};
use crate::source::{config_from_oci, LocalLayer};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    layers: Vec<String>,
}

/// The digest a member's name carries: `<hex>.json`, `<hex>.tar` or `blobs/sha256/<hex>`.
fn digest_in_name(name: &str) -> Option<String> {
    let comps = safe_components(name).ok()?;
    let hex = match comps[..] {
        ["blobs", "sha256", hex] => hex,
        [file] => file
            .strip_suffix(".json")
            .or_else(|| file.strip_suffix(".tar"))?,
        _ => return None,
    };
    let digest = format!("sha256:{hex}");
    slicelab_model::image::check_digest(&digest).ok()?;
    Some(digest)
}

fn member(dir: &Path, name: &str, what: &str) -> Result<PathBuf, ImageError> {
    let comps = safe_components(name).map_err(ImageError::bad)?;
    let path = dir.join(comps.join("/"));
    if comps.is_empty() || !path.is_file() {
        return Err(ImageError::bad(format!("{what}: missing member {name:?}")));
    }
    Ok(path)
}

/// The config and layers of the one image in the extracted archive at `dir`.
pub(crate) fn read(dir: &Path) -> Result<(ImageConfig, Vec<LocalLayer>), ImageError> {
    let mpath = dir.join("manifest.json");
    let bytes = fs::read(&mpath).ctx("reading", &mpath)?;
    let mut entries: Vec<Entry> = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::bad(format!("manifest.json: {e}")))?;
    let entry = match entries.len() {
        1 => entries.remove(0),
        n => {
            return Err(ImageError::bad(format!(
                "manifest.json lists {n} images; save exactly one"
            )))
        }
    };
    let config_path = member(dir, &entry.config, "config")?;
    let expected = digest_in_name(&entry.config).ok_or_else(|| {
        ImageError::bad(format!(
            "config member {:?} does not carry its digest",
            entry.config
        ))
    })?;
    verify_file(&config_path, &expected, "config")?;
    if fs::metadata(&config_path)
        .ctx("examining", &config_path)?
        .len()
        > MAX_JSON
    {
        return Err(ImageError::bad("config: too large"));
    }
    let bytes = fs::read(&config_path).ctx("reading", &config_path)?;
    let config: ImageConfiguration =
        serde_json::from_slice(&bytes).map_err(|e| ImageError::bad(format!("config: {e}")))?;
    if entry.layers.is_empty() {
        return Err(ImageError::bad("the image has no layers"));
    }
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != entry.layers.len() {
        return Err(ImageError::bad(format!(
            "manifest.json lists {} layers, the config's rootfs {}",
            entry.layers.len(),
            diff_ids.len()
        )));
    }
    let mut layers = Vec::with_capacity(entry.layers.len());
    for (i, (name, want_diff)) in entry.layers.iter().zip(diff_ids).enumerate() {
        layers.push(layer(dir, i, name, want_diff)?);
    }
    Ok((config_from_oci(&config), layers))
}

fn layer(dir: &Path, i: usize, name: &str, want_diff: &str) -> Result<LocalLayer, ImageError> {
    let what = format!("layer {i} ({name})");
    let path = member(dir, name, &what)?;
    let digest = sha256_file(&path)?;
    if let Some(expected) = digest_in_name(name) {
        check(&what, &expected, digest.clone())?;
    }
    let c = sniff(&path)?;
    let uncompressed = if c == Compression::None {
        digest.clone()
    } else {
        diff_id(&path, c)?
    };
    check(&format!("{what} diff_id"), want_diff, uncompressed)?;
    let size = fs::metadata(&path).ctx("examining", &path)?.len();
    Ok(LocalLayer {
        path,
        layer: LayerRef {
            digest,
            size,
            media_type: layer_media_type(c).to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_digests() {
        let hex = "0123456789abcdef".repeat(4);
        let want = Some(format!("sha256:{hex}"));
        assert_eq!(digest_in_name(&format!("{hex}.json")), want);
        assert_eq!(digest_in_name(&format!("blobs/sha256/{hex}")), want);
        assert_eq!(digest_in_name(&format!("{hex}/layer.tar")), None);
        assert_eq!(digest_in_name("config.json"), None);
    }
}

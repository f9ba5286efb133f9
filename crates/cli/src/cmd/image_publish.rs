//! Publishing an image at central, the one path behind `image import`, `image pull`, `image
//! build` and `up`'s Debian image: every layer blob central does not hold yet is uploaded
//! (streamed from its file; central checks its digest), then the manifest. A blob central already
//! has — a layer shared with another image — is not sent again.

use anyhow::{Context, Result};
use slicelab_client::Client;
use slicelab_image::source::ImageSource;
use slicelab_image::unpack::check_layer;
use slicelab_model::image::{layer_compression, Image, NewImage, Visibility};

/// Uploads `src`'s blobs and publishes it as `name`; `progress` gets a line per step.
pub(crate) async fn publish(
    client: &Client,
    name: &str,
    visibility: Visibility,
    site_id: Option<i64>,
    src: &ImageSource,
    progress: &mut dyn FnMut(&str),
) -> Result<Image> {
    slicelab_model::names::image(name).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    src.manifest()
        .validate()
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let n = src.layers.len();
    // Every layer read as a node will read it, before anything is stored: a layer a node would
    // refuse is refused here, with its reason.
    for (i, l) in src.layers.iter().enumerate() {
        progress(&format!("layer {}/{n}: checking...", i + 1));
        let (path, media) = (l.path.clone(), l.layer.media_type.clone());
        let compression = layer_compression(&media).ok_or_else(|| {
            anyhow::anyhow!("layer {}: media type {media} cannot be unpacked", i + 1)
        })?;
        tokio::task::spawn_blocking(move || check_layer(&path, compression))
            .await
            .context("layer check task")?
            .with_context(|| format!("layer {}/{n} ({})", i + 1, short(&l.layer.digest)))?;
    }
    for (i, l) in src.layers.iter().enumerate() {
        let what = format!(
            "layer {}/{n} ({}, {})",
            i + 1,
            short(&l.layer.digest),
            human(l.layer.size)
        );
        match client
            .head_blob(&l.layer.digest)
            .await
            .with_context(|| format!("asking central for {what}"))?
        {
            Some(size) if size == l.layer.size => progress(&format!("{what}: already at central")),
            _ => {
                progress(&format!("{what}: uploading..."));
                client
                    .put_blob(&l.layer.digest, &l.path)
                    .await
                    .with_context(|| format!("uploading {what}"))?;
            }
        }
    }
    let image = client
        .create_image(&NewImage {
            name: name.to_string(),
            visibility,
            site_id,
            manifest: src.manifest(),
        })
        .await
        .with_context(|| format!("publishing image {name}"))?;
    Ok(image)
}

/// `sha256:0123456789ab`: enough to tell layers apart in progress lines.
pub(crate) fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

/// Bytes for people: `512 B`, `3.4 MB`, `1.2 GB`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_digests_read_well() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3_400_000), "3.4 MB");
        assert_eq!(human(1_234_000_000), "1.2 GB");
        assert_eq!(short("sha256:0123456789abcdef"), "sha256:0123456789ab");
        assert_eq!(short("x"), "x");
    }
}

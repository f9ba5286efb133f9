//! `up`'s Debian image: built once with mmdebstrap and cached across testbeds (in
//! `$SLICELAB_IMAGE_CACHE`, default `/var/cache/slicelab/images`), then published at the testbed's
//! central as the platform image `debian`, so a slice switches to it with one tag
//! (`slicelab slice tag set demo_slice image debian`). Without network or mmdebstrap the testbed
//! still comes up, with the built-in image only, and says why.

use std::path::PathBuf;

use anyhow::{Context, Result};
use slicelab_client::Client;
use slicelab_image::build::TARBALL_EXTENSION;
use slicelab_model::image::Visibility;

use super::progress::Progress;
use crate::cmd::image_publish::publish;

/// The image's name at the testbed's central.
pub const DEBIAN_IMAGE: &str = "debian";
pub const DEBIAN_SUITE: &str = "bookworm";
/// Packages on top of `minbase`: what the README tour runs.
pub const DEBIAN_PACKAGES: &[&str] = &["python3"];

/// Where built images are cached: `$SLICELAB_IMAGE_CACHE`, else `/var/cache/slicelab/images`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("SLICELAB_IMAGE_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/slicelab/images"))
}

/// The cached Debian tarball, built first if missing (`progress` gets mmdebstrap's steps).
pub fn cached_debian(progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let dir = cache_dir();
    let path = dir.join(format!(
        "debian-{DEBIAN_SUITE}-{}.{TARBALL_EXTENSION}",
        DEBIAN_PACKAGES.join("+")
    ));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".building-{}.{TARBALL_EXTENSION}",
        std::process::id()
    ));
    let include: Vec<String> = DEBIAN_PACKAGES.iter().map(|s| s.to_string()).collect();
    let built = slicelab_image::build::debian(DEBIAN_SUITE, &include, None, &tmp, progress);
    if let Err(e) = built {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).context("building the Debian image");
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("caching {}", path.display()))?;
    Ok(path)
}

/// Builds (or takes from the cache) and publishes the Debian image; a failure is reported and
/// the testbed goes on without it.
pub(super) async fn offer_debian(admin: &Client, progress: &mut Progress) -> Option<String> {
    match try_offer(admin, progress).await {
        Ok(()) => None,
        Err(e) => Some(format!("{e:#}")),
    }
}

async fn try_offer(admin: &Client, progress: &mut Progress) -> Result<()> {
    progress.set(&format!(
        "image: Debian {DEBIAN_SUITE} (built once, then cached)..."
    ));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let build = tokio::task::spawn_blocking(move || {
        let mut report = |line: &str| {
            let _ = tx.send(line.to_string());
        };
        cached_debian(&mut report).and_then(|p| {
            slicelab_image::archive::open(&p).with_context(|| format!("opening {}", p.display()))
        })
    });
    tokio::pin!(build);
    let src = loop {
        tokio::select! {
            Some(line) = rx.recv() => progress.set(&format!("image: Debian {DEBIAN_SUITE}: {}", line.trim())),
            r = &mut build => break r.context("image build task")??,
        }
    };
    // Every image belongs to a site (the admin belongs to none): the demo site's.
    let site = admin
        .site(&super::site_name(0))
        .await
        .context("looking up the demo site")?;
    let mut report = |line: &str| progress.set(&format!("image: {DEBIAN_IMAGE}: {line}"));
    publish(
        admin,
        DEBIAN_IMAGE,
        Visibility::Platform,
        Some(site.id),
        &src,
        &mut report,
    )
    .await?;
    Ok(())
}

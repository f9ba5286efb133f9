//! Fetching published images, lazily: the first time a desired sliver names an image this node
//! does not hold, its manifest and missing layers are downloaded, each verified by digest before
//! anything uses it, and unpacked into the [`ImageStore`].
//!
//! * **Sources**: mirrors first (any HTTP server with central's content-addressed layout,
//!   `<mirror>/blobs/sha256/<hex>` — a site cache, a sibling node's store served by a plain web
//!   server; untrusted, since every byte is checked), then central (`/node/blobs/{digest}`).
//! * **Resume**: a download continues from the bytes already in `blobs/<hex>.partial`
//!   (`Range: bytes=N-`); a server that ignores the range gets a fresh start.
//! * **Bounded**: at most `parallel` images at once per node; central answers 503 with
//!   `Retry-After` when its own bound is reached, and the fetch waits that long (with jitter, so
//!   a fleet does not return in step) without counting it as a failure.
//! * **Failures** (unreachable, digest mismatch, bad layer) are kept with a back-off of 5 s
//!   doubling to 5 min; the sliver reports `failed: <reason>` until a retry succeeds.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slicelab_client::{Client, ClientError};
use slicelab_model::image::{digest_hex, layer_compression, LayerRef};
use tokio::sync::{Notify, Semaphore};
use tracing::{info, warn};

use super::store::{hex, ImageStore};

/// Where a node gets images from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub central: Client,
    /// Base URLs tried before central, in order.
    pub mirrors: Vec<String>,
}

/// An image this node is waiting for.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchStatus {
    Fetching { done: u64, total: u64 },
    Failed { reason: String, retry_at: Instant },
}

impl FetchStatus {
    /// The sliver's message while it waits.
    pub fn message(&self) -> String {
        match self {
            FetchStatus::Fetching { done, total } => {
                let pct = if *total == 0 { 0 } else { done * 100 / total };
                format!("fetching image ({pct}%)")
            }
            FetchStatus::Failed { reason, .. } => format!("image fetch failed: {reason}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    status: FetchStatus,
    attempts: u32,
    running: bool,
}

/// The node's image fetcher (see the module doc). Cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    store: ImageStore,
    sources: Arc<Sources>,
    http: reqwest::Client,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    /// One download and unpack per layer at a time, even for two images sharing it.
    layer_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    limit: Arc<Semaphore>,
    /// What one layer may unpack to (bytes bounded by the node's image budget).
    unpack_limits: slicelab_image::Limits,
    /// Told when an image becomes ready (the daemon reconciles at once).
    ready: Arc<Notify>,
}

/// Why one attempt failed: `Busy` (the source asked us to come back) is not a failure.
enum Fail {
    Busy(Duration),
    Error(String),
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Error(s)
    }
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_secs((5u64 << attempts.saturating_sub(1).min(6)).min(300))
}

/// 0-999 ms, different per node and per call: spreads a fleet's retries.
fn jitter() -> Duration {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    Duration::from_millis(u64::from(n % 1000))
}

impl Fetcher {
    /// `budget`: bytes of unpacked images the node keeps; no single layer may unpack to more.
    pub fn new(
        store: ImageStore,
        sources: Sources,
        parallel: usize,
        budget: u64,
        ready: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            sources: Arc::new(sources),
            // Mirrors are untrusted: bounded in time (and in bytes, by `save`).
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
            entries: Arc::new(Mutex::new(HashMap::new())),
            layer_locks: Arc::new(Mutex::new(HashMap::new())),
            limit: Arc::new(Semaphore::new(parallel.max(1))),
            unpack_limits: slicelab_image::Limits {
                max_bytes: budget.max(1 << 30),
                ..Default::default()
            },
            ready,
        }
    }

    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a sliver waiting for `digest` reports; `None` once the image is here.
    pub fn status(&self, digest: &str) -> Option<FetchStatus> {
        if self.store.is_ready(digest) {
            return None;
        }
        Some(
            self.entries()
                .get(digest)
                .map(|e| e.status.clone())
                .unwrap_or(FetchStatus::Fetching { done: 0, total: 0 }),
        )
    }

    /// Starts fetching `digest` unless it is here, already being fetched, or backing off.
    pub fn ensure(&self, digest: &str) {
        if self.store.is_ready(digest) {
            self.entries().remove(digest);
            return;
        }
        {
            let mut entries = self.entries();
            let e = entries.entry(digest.to_string()).or_insert(Entry {
                status: FetchStatus::Fetching { done: 0, total: 0 },
                attempts: 0,
                running: false,
            });
            if e.running {
                return;
            }
            if let FetchStatus::Failed { retry_at, .. } = &e.status {
                if Instant::now() < *retry_at {
                    return;
                }
            }
            e.running = true;
        }
        let me = self.clone();
        let digest = digest.to_string();
        tokio::spawn(async move { me.run(digest).await });
    }

    async fn run(self, digest: String) {
        let Ok(_permit) = self.limit.clone().acquire_owned().await else {
            return;
        };
        let started = Instant::now();
        loop {
            match self.fetch(&digest).await {
                Ok(()) => {
                    info!(image = %digest, secs = started.elapsed().as_secs_f64(), "image fetched");
                    self.entries().remove(&digest);
                    self.ready.notify_one();
                    return;
                }
                Err(Fail::Busy(wait)) => tokio::time::sleep(wait + jitter()).await,
                Err(Fail::Error(reason)) => {
                    warn!(image = %digest, %reason, "image fetch failed");
                    let mut entries = self.entries();
                    if let Some(e) = entries.get_mut(&digest) {
                        e.attempts += 1;
                        e.running = false;
                        e.status = FetchStatus::Failed {
                            reason,
                            retry_at: Instant::now() + backoff(e.attempts) + jitter(),
                        };
                    }
                    drop(entries);
                    // The daemon reports the failure at its next round.
                    self.ready.notify_one();
                    return;
                }
            }
        }
    }

    fn progress(&self, digest: &str, done: u64, total: u64) {
        if let Some(e) = self.entries().get_mut(digest) {
            e.status = FetchStatus::Fetching { done, total };
        }
    }

    async fn fetch(&self, digest: &str) -> Result<(), Fail> {
        let manifest = match self.store.manifest(digest).map_err(|e| e.to_string())? {
            Some(m) => m,
            None => {
                let bytes = self.manifest_bytes(digest).await?;
                self.store
                    .save_manifest(digest, &bytes)
                    .map_err(|e| e.to_string())?
            }
        };
        let mut missing: Vec<&LayerRef> = Vec::new();
        for l in &manifest.layers {
            if !self.store.has_layer_as(&l.digest, &l.media_type)? {
                missing.push(l);
            }
        }
        let total: u64 = missing.iter().map(|l| l.size).sum();
        let mut done = 0;
        for layer in missing {
            let lock = self
                .layer_locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(layer.digest.clone())
                .or_default()
                .clone();
            let _held = lock.lock().await;
            // Another image's fetch may have brought it meanwhile.
            if !self.store.has_layer(&layer.digest) {
                self.blob(digest, layer, done, total).await?;
                self.unpack(layer).await?;
            }
            done += layer.size;
            self.progress(digest, done, total);
        }
        Ok(())
    }

    async fn manifest_bytes(&self, digest: &str) -> Result<Vec<u8>, Fail> {
        match self.sources.central.manifest(digest).await {
            Ok(b) => Ok(b),
            Err(e) => Err(client_fail(&e, &format!("manifest {digest}"))),
        }
    }

    /// Downloads `layer`'s blob into its partial file and checks its digest: from each mirror
    /// in turn, then from central. A download that does not verify is deleted (the next source,
    /// or the next attempt, starts afresh).
    async fn blob(&self, image: &str, layer: &LayerRef, base: u64, total: u64) -> Result<(), Fail> {
        let path = self
            .store
            .partial_blob(&layer.digest)
            .map_err(|e| e.to_string())?;
        let progress = Progress { image, base, total };
        for mirror in &self.sources.mirrors {
            let url = format!(
                "{}/blobs/sha256/{}",
                mirror.trim_end_matches('/'),
                digest_hex(&layer.digest)
            );
            let have = partial_len(&path, layer.size).await;
            let got = if have < layer.size {
                match self
                    .http
                    .get(&url)
                    .header("Range", format!("bytes={have}-"))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        self.save(r, &path, have, layer.size, &progress).await
                    }
                    Ok(r) => Err(r.status().to_string()),
                    Err(e) => Err(e.to_string()),
                }
            } else {
                Ok(())
            };
            match got {
                Ok(()) => match self.verify(&path, layer).await {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        info!(blob = %layer.digest, %mirror, reason = %e, "mirror's blob refused")
                    }
                },
                Err(e) => info!(blob = %layer.digest, %mirror, reason = %e, "mirror failed"),
            }
        }
        let have = partial_len(&path, layer.size).await;
        if have < layer.size {
            let r = self
                .sources
                .central
                .blob(&layer.digest, have)
                .await
                .map_err(|e| client_fail(&e, &format!("blob {}", layer.digest)))?;
            self.save(r, &path, have, layer.size, &progress)
                .await
                .map_err(|e| Fail::Error(format!("blob {}: {e}", layer.digest)))?;
        }
        self.verify(&path, layer).await.map_err(Fail::Error)
    }

    /// The blob at `path` has `layer`'s digest; else it is deleted and the error says so.
    async fn verify(&self, path: &Path, layer: &LayerRef) -> Result<(), String> {
        let p2 = path.to_path_buf();
        let actual = tokio::task::spawn_blocking(move || sha256_file(&p2))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("reading blob {}: {e}", layer.digest))?;
        if actual != layer.digest {
            let _ = std::fs::remove_file(path);
            return Err(format!(
                "blob {} has digest {actual}: refused",
                layer.digest
            ));
        }
        Ok(())
    }

    /// Appends the body of `r` to `path` from byte `have` (from 0 if the server sent it all),
    /// never beyond `size`; a range that does not start at `have` is refused.
    async fn save(
        &self,
        mut r: reqwest::Response,
        path: &Path,
        mut have: u64,
        size: u64,
        p: &Progress<'_>,
    ) -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| e.to_string())?;
        if r.status() == reqwest::StatusCode::PARTIAL_CONTENT {
            let start = r
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if start != Some(have) {
                return Err(format!(
                    "asked for bytes from {have}, got Content-Range {start:?}"
                ));
            }
        } else if have > 0 {
            f.set_len(0).map_err(|e| e.to_string())?;
            have = 0;
        }
        while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
            if have + chunk.len() as u64 > size {
                let _ = f.set_len(0);
                return Err(format!("longer than its {size} bytes"));
            }
            f.write_all(&chunk).map_err(|e| e.to_string())?;
            have += chunk.len() as u64;
            self.progress(p.image, p.base + have, p.total);
        }
        f.sync_data().map_err(|e| e.to_string())
    }

    async fn unpack(&self, layer: &LayerRef) -> Result<(), Fail> {
        let store = self.store.clone();
        let layer = layer.clone();
        let limits = self.unpack_limits;
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let blob = store
                .partial_blob(&layer.digest)
                .map_err(|e| e.to_string())?;
            let staged = store
                .staging_dir(&layer.digest)
                .map_err(|e| e.to_string())?;
            let compression = layer_compression(&layer.media_type).ok_or_else(|| {
                format!(
                    "layer {}: unknown media type {}",
                    layer.digest, layer.media_type
                )
            })?;
            let report = slicelab_image::unpack_layer_within(&blob, compression, &staged, &limits)
                .map_err(|e| format!("layer {}: {e}", layer.digest))?;
            store
                .install_layer(&layer.digest, &layer.media_type, &staged, report.bytes)
                .map_err(|e| e.to_string())?;
            let _ = std::fs::remove_file(&blob);
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(Fail::Error)
    }
}

/// Where a download's progress goes: bytes `base..` of `total` for `image`.
struct Progress<'a> {
    image: &'a str,
    base: u64,
    total: u64,
}

/// Bytes of a download already on disk (0 if it is longer than the blob can be).
async fn partial_len(path: &Path, size: u64) -> u64 {
    let have = tokio::fs::metadata(path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    if have > size {
        let _ = tokio::fs::remove_file(path).await;
        return 0;
    }
    have
}

fn client_fail(e: &ClientError, what: &str) -> Fail {
    if let ClientError::Busy { retry_after, .. } = e {
        return Fail::Busy(Duration::from_secs((*retry_after).clamp(1, 60)));
    }
    Fail::Error(format!("{what}: {e}"))
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest as _, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("sha256:{}", hex(&h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(20), Duration::from_secs(300));
        assert!(jitter() < Duration::from_secs(1));
    }

    #[test]
    fn messages_say_what_the_sliver_waits_for() {
        let f = FetchStatus::Fetching {
            done: 42,
            total: 100,
        };
        assert_eq!(f.message(), "fetching image (42%)");
        let f = FetchStatus::Failed {
            reason: "blob x has digest y: refused".into(),
            retry_at: Instant::now(),
        };
        assert_eq!(
            f.message(),
            "image fetch failed: blob x has digest y: refused"
        );
    }
}

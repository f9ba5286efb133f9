//! Image blobs as files: `<blob_dir>/sha256/<64 hex digits>`, each written once, whole, and
//! never changed; the database records which are complete (`image_blobs`).
//!
//! The security boundary first: a digest reaches the file system only after
//! `slicelab_model::image::check_digest` (`sha256:` and exactly 64 lowercase hex digits), so a
//! blob's path is always a plain file name under `sha256/`, never a path a client chose.
//!
//! Why files and not database rows: a layer is often hundreds of MiB (up to `max_blob_bytes`,
//! 8 GiB by default); uploads are hashed while they stream to disk and downloads stream from
//! the file with `Range` (a node resumes a broken fetch) without either passing through memory
//! or the database; and the database (its backups, its replication) stays the size of the
//! registry.
//!
//! An upload is written to `tmp/`, hashed on the way, refused if its sha256 is not the digest
//! it was sent as or it grows past the limit, then fsynced and renamed into place, and recorded.
//! A blob file and its record change together under one lock, so a removal (an image deleted,
//! an abandoned upload swept) never removes a file that was uploaded again meanwhile.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use rand::RngCore;
use sha2::{Digest, Sha256};
use slicelab_model::image::{check_digest, digest_hex};
use slicelab_store::{Store, StoreError};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// Where blobs live and how big and how many at once they may be.
#[derive(Debug, Clone)]
pub struct BlobConfig {
    /// Default: `blobs/` next to a SQLite database file, `/var/lib/slicelab/blobs` otherwise.
    pub blob_dir: Option<PathBuf>,
    /// Largest blob accepted (413 beyond).
    pub max_blob_bytes: u64,
    /// Most blob downloads served at once by this process; more are answered 503 with
    /// `Retry-After`, so a fleet of nodes cannot stampede central.
    pub blob_fetch_limit: usize,
}

pub const DEFAULT_MAX_BLOB_BYTES: u64 = 8 << 30;
pub const DEFAULT_BLOB_FETCH_LIMIT: usize = 16;
/// Blobs no image uses, and unfinished uploads, are removed once this old.
pub const ABANDONED_AFTER: i64 = 24 * 3600;
/// How often central sweeps abandoned blobs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig {
            blob_dir: None,
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            blob_fetch_limit: DEFAULT_BLOB_FETCH_LIMIT,
        }
    }
}

/// The default blob directory for a database URL: `blobs/` beside a SQLite file, else
/// `/var/lib/slicelab/blobs`.
pub fn default_blob_dir(db_url: &str) -> PathBuf {
    let sqlite_file = db_url
        .strip_prefix("sqlite://")
        .or_else(|| db_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|p| !p.is_empty() && *p != ":memory:");
    match sqlite_file {
        Some(f) => Path::new(f)
            .parent()
            .unwrap_or(Path::new("."))
            .join("blobs"),
        None => PathBuf::from("/var/lib/slicelab/blobs"),
    }
}

#[derive(Debug, Error)]
pub enum BlobError {
    #[error("{0}")]
    BadDigest(String),
    #[error("the uploaded bytes hash to {actual}, not to {expected} as the URL says")]
    Mismatch { expected: String, actual: String },
    #[error("a blob may have at most {limit} bytes (max_blob_bytes)")]
    TooLarge { limit: u64 },
    #[error("the upload broke off: {0}")]
    Aborted(String),
    #[error("blob store: {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BlobError + 'a {
    move |source| BlobError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A temporary file removed when dropped, unless it was renamed into place.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The blob directory of one central process.
#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    max_bytes: u64,
    fetches: Arc<Semaphore>,
    /// Held while a blob's file and its record change together.
    commit: Mutex<()>,
}

impl BlobStore {
    /// Opens (creating) the blob directory `cfg` names, or the default one for `db_url`.
    pub fn open(cfg: &BlobConfig, db_url: &str) -> Result<BlobStore, BlobError> {
        let dir = cfg
            .blob_dir
            .clone()
            .unwrap_or_else(|| default_blob_dir(db_url));
        for sub in ["sha256", "tmp"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io("creating", &d))?;
        }
        Ok(BlobStore {
            dir,
            max_bytes: cfg.max_blob_bytes,
            fetches: Arc::new(Semaphore::new(cfg.blob_fetch_limit)),
            commit: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The file of a digest: the boundary above, checked here whatever the caller did.
    fn path(&self, digest: &str) -> Result<PathBuf, BlobError> {
        check_digest(digest).map_err(|e| BlobError::BadDigest(e.message))?;
        Ok(self.dir.join("sha256").join(digest_hex(digest)))
    }

    /// One of the concurrent downloads, if one is free; held until the download ends.
    pub fn try_fetch(&self) -> Option<OwnedSemaphorePermit> {
        self.fetches.clone().try_acquire_owned().ok()
    }

    /// Receives the blob `digest` (checked by the caller) from `body`: hashed while written to
    /// a temporary file, refused if longer than the limit or hashing to another digest, then
    /// made durable, put in place and recorded as uploaded by `actor`. Returns its size.
    pub async fn receive<S, E>(
        &self,
        store: &Store,
        actor: &str,
        digest: &str,
        declared_len: Option<u64>,
        body: S,
    ) -> Result<u64, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let path = self.path(digest)?;
        let limit = self.max_bytes;
        if declared_len.is_some_and(|n| n > limit) {
            return Err(BlobError::TooLarge { limit });
        }
        let mut nonce = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut nonce);
        let tmp =
            self.dir
                .join("tmp")
                .join(format!("{}.{}", digest_hex(digest), hex::encode(nonce)));
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(io("creating", &tmp))?;
        let mut guard = TempFile(Some(tmp.clone()));
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BlobError::Aborted(e.to_string()))?;
            size = size.saturating_add(chunk.len() as u64);
            if size > limit {
                return Err(BlobError::TooLarge { limit });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io("writing", &tmp))?;
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(BlobError::Mismatch {
                expected: digest.to_string(),
                actual,
            });
        }
        file.flush().await.map_err(io("writing", &tmp))?;
        file.sync_all().await.map_err(io("syncing", &tmp))?;
        drop(file);
        let _commit = self.commit.lock().await;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(io("renaming into", &path))?;
        guard.0 = None;
        sync_dir(path.parent().unwrap_or(&self.dir)).await?;
        store.record_blob(actor, crate::now(), digest, size).await?;
        Ok(size)
    }

    /// Reads the layer blob `digest` as a node will unpack it (`slicelab_image::check_layer`),
    /// writing nothing: a layer a node would refuse (not a tar, a `..` name, unreadable header
    /// fields, sparse files, a compression bomb beyond the default limits) is refused at publish
    /// time, with its reason, whichever client published it.
    pub async fn check_layer(&self, digest: &str, media_type: &str) -> Result<(), String> {
        let path = self.path(digest).map_err(|e| e.to_string())?;
        let shown = path.clone();
        let compression = slicelab_model::image::layer_compression(media_type)
            .ok_or_else(|| format!("media type {media_type} cannot be unpacked"))?;
        tokio::task::spawn_blocking(move || {
            slicelab_image::unpack::check_layer(&path, compression).map(|_| ())
        })
        .await
        .map_err(|e| e.to_string())?
        // Not the server's paths: the blob is named by its digest already.
        .map_err(|e| e.to_string().replace(&format!("{}: ", shown.display()), ""))
    }

    /// The blob's file opened for reading, with its size; `None` if there is no such file.
    pub async fn open_blob(
        &self,
        digest: &str,
    ) -> Result<Option<(tokio::fs::File, u64)>, BlobError> {
        let path = self.path(digest)?;
        match tokio::fs::File::open(&path).await {
            Ok(f) => {
                let len = f.metadata().await.map_err(io("reading", &path))?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("opening", &path)(e)),
        }
    }

    /// Removes the files of `digests` whose records are gone (an image was deleted, an upload
    /// abandoned), after the transaction that forgot them committed. Failures are logged: a
    /// file left behind is removed by the next sweep.
    pub async fn remove_forgotten(&self, store: &Store, digests: &[String]) {
        for d in digests {
            let Ok(path) = self.path(d) else {
                continue;
            };
            let _commit = self.commit.lock().await;
            match store.blob_size(d).await {
                // Uploaded again meanwhile: the file is in use.
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, digest = %d, "cannot check a blob before removing it");
                    continue;
                }
            }
            if let Err(e) = tokio::fs::remove_file(&path).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!(error = %e, path = %path.display(), "cannot remove a blob");
                }
            }
        }
    }

    /// Removes what was abandoned more than [`ABANDONED_AFTER`] ago: recorded blobs no image
    /// uses, unfinished uploads in `tmp/`, and blob files without a record (a crash between
    /// rename and record). Returns how many blobs it removed.
    pub async fn sweep(&self, store: &Store, now: i64) -> Result<usize, BlobError> {
        let before = now - ABANDONED_AFTER;
        let gone = store.remove_unused_blobs("system", now, before).await?;
        self.remove_forgotten(store, &gone).await;
        let cutoff = SystemTime::UNIX_EPOCH + Duration::from_secs(before.max(0) as u64);
        let tmp = self.dir.join("tmp");
        for (path, _) in old_files(&tmp, cutoff).await? {
            let _ = tokio::fs::remove_file(&path).await;
        }
        let blobs = self.dir.join("sha256");
        let mut orphans = Vec::new();
        for (_, name) in old_files(&blobs, cutoff).await? {
            let digest = format!("sha256:{name}");
            if check_digest(&digest).is_ok() {
                orphans.push(digest);
            }
        }
        self.remove_forgotten(store, &orphans).await;
        Ok(gone.len())
    }
}

/// Files in `dir` last modified before `cutoff`, with their names.
async fn old_files(dir: &Path, cutoff: SystemTime) -> Result<Vec<(PathBuf, String)>, BlobError> {
    let mut out = Vec::new();
    let mut rd = tokio::fs::read_dir(dir).await.map_err(io("listing", dir))?;
    while let Some(e) = rd.next_entry().await.map_err(io("listing", dir))? {
        let old = match e.metadata().await {
            Ok(m) => m.is_file() && m.modified().is_ok_and(|t| t < cutoff),
            Err(_) => false,
        };
        if old {
            out.push((e.path(), e.file_name().to_string_lossy().into_owned()));
        }
    }
    Ok(out)
}

/// Makes a rename in `dir` durable.
async fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&d).and_then(|f| f.sync_all()))
        .await
        .map_err(|e| BlobError::Io {
            what: "syncing",
            path: dir.to_path_buf(),
            source: std::io::Error::other(e),
        })?
        .map_err(io("syncing", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_blob_dir_is_beside_a_sqlite_file() {
        assert_eq!(
            default_blob_dir("sqlite:///var/lib/x/central.db?mode=rwc"),
            PathBuf::from("/var/lib/x/blobs")
        );
        assert_eq!(
            default_blob_dir("sqlite:central.db"),
            PathBuf::from("blobs")
        );
        assert_eq!(
            default_blob_dir("postgres://u@h/db"),
            PathBuf::from("/var/lib/slicelab/blobs")
        );
        assert_eq!(
            default_blob_dir("sqlite::memory:"),
            PathBuf::from("/var/lib/slicelab/blobs")
        );
    }

    #[tokio::test]
    async fn uploads_are_hashed_limited_and_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/c.db", dir.path().display());
        let store = Store::open(&url).await.expect("store");
        let cfg = BlobConfig {
            max_blob_bytes: 8,
            ..Default::default()
        };
        let blobs = BlobStore::open(&cfg, &url).expect("blob store");
        assert_eq!(blobs.dir(), dir.path().join("blobs"));
        let bytes = b"layer!";
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let chunks = |b: &'static [u8]| {
            futures_util::stream::iter(
                b.chunks(4)
                    .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c)))
                    .collect::<Vec<_>>(),
            )
        };
        let n = blobs
            .receive(&store, "person:a@b", &digest, None, chunks(bytes))
            .await
            .expect("upload");
        assert_eq!(n, 6);
        assert_eq!(store.blob_size(&digest).await.expect("size"), Some(6));
        let (_, len) = blobs.open_blob(&digest).await.expect("open").expect("file");
        assert_eq!(len, 6);

        let other = format!("sha256:{}", "0".repeat(64));
        let e = blobs
            .receive(&store, "person:a@b", &other, None, chunks(bytes))
            .await
            .unwrap_err();
        assert!(matches!(e, BlobError::Mismatch { .. }), "{e}");
        let e = blobs
            .receive(&store, "person:a@b", &other, None, chunks(b"123456789"))
            .await
            .unwrap_err();
        assert!(matches!(e, BlobError::TooLarge { limit: 8 }), "{e}");
        let e = blobs
            .receive(&store, "person:a@b", &other, Some(9), chunks(b""))
            .await
            .unwrap_err();
        assert!(matches!(e, BlobError::TooLarge { .. }), "{e}");
        // Refused uploads leave nothing behind.
        let tmp = std::fs::read_dir(dir.path().join("blobs/tmp")).expect("tmp");
        assert_eq!(tmp.count(), 0);
        assert!(blobs.open_blob(&other).await.expect("open").is_none());

        // The sweep leaves a young unused blob, removes it (file too) once old.
        assert_eq!(blobs.sweep(&store, crate::now()).await.expect("sweep"), 0);
        assert!(blobs.open_blob(&digest).await.expect("open").is_some());
        let later = crate::now() + ABANDONED_AFTER + 10;
        assert_eq!(blobs.sweep(&store, later).await.expect("sweep"), 1);
        assert!(blobs.open_blob(&digest).await.expect("open").is_none());
        assert_eq!(store.blob_size(&digest).await.expect("size"), None);
        store.close().await;
    }
}

//! Images: publishing (blobs up, then the manifest), listing, showing and deleting them, and
//! the node's fetches of manifests and blobs by digest. Blobs stream from and to files: a layer
//! never has to fit in memory.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode};
use slicelab_model::image::{Image, NewImage};

use crate::{encode, error_of, transport, Client, ClientError, Result};

/// Longest a blob transfer may take (a layer of gigabytes on a slow link).
const BLOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

impl Client {
    /// The size of blob `digest` if central has it (`None`: upload it).
    pub async fn head_blob(&self, digest: &str) -> Result<Option<u64>> {
        let path = format!("/blobs/{}", encode(digest));
        let (resp, url) = self
            .send_failover(&Method::HEAD, &path, |r| r.timeout(Duration::from_secs(30)))
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or_else(|| ClientError::Decode("HEAD of a blob without Content-Length".into())),
            _ => Err(error_of(resp, &url).await),
        }
    }

    /// Uploads the file at `path` as blob `digest` (its sha256), streamed from the file.
    /// A refusal central gives before reading the body (credentials, a size over its limit)
    /// may reach a client still sending a large file as a broken connection (`Transport`):
    /// `head_blob` first checks the credentials cheaply.
    pub async fn put_blob(&self, digest: &str, path: &Path) -> Result<()> {
        let file_err = |source| ClientError::File {
            path: path.display().to_string(),
            source,
        };
        let len = tokio::fs::metadata(path).await.map_err(file_err)?.len();
        let file = std::fs::File::open(path).map_err(file_err)?;
        // Each replica tried gets its own reader (one that could not be reached read nothing).
        let body = |file: std::fs::File| {
            let file = tokio::fs::File::from_std(file);
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 << 10))
        };
        let first = std::sync::Mutex::new(Some(file));
        let (resp, url) = self
            .send_failover(&Method::PUT, &format!("/blobs/{}", encode(digest)), |r| {
                let file = first
                    .lock()
                    .ok()
                    .and_then(|mut f| f.take())
                    .or_else(|| std::fs::File::open(path).ok());
                let r = r
                    .timeout(BLOB_TIMEOUT)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, len);
                match file {
                    Some(f) => r.body(body(f)),
                    None => r.body(Vec::new()),
                }
            })
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(error_of(resp, &url).await)
        }
    }

    /// Publishes an image whose blobs were uploaded.
    pub async fn create_image(&self, body: &NewImage) -> Result<Image> {
        self.post("/images", body).await
    }

    /// The images this person may use.
    pub async fn images(&self) -> Result<Vec<Image>> {
        self.get("/images").await
    }

    pub async fn image(&self, name: &str) -> Result<Image> {
        self.get(&format!("/images/{}", encode(name))).await
    }

    pub async fn delete_image(&self, name: &str) -> Result<()> {
        self.delete(&format!("/images/{}", encode(name))).await
    }

    // --- node-facing (node key) ---

    /// The manifest with this digest, as the bytes central stored: the caller checks that they
    /// hash to `digest` before trusting them.
    pub async fn manifest(&self, digest: &str) -> Result<Vec<u8>> {
        let path = format!("/node/manifests/{}", encode(digest));
        let (resp, url) = self
            .send_failover(&Method::GET, &path, |r| r.timeout(Duration::from_secs(60)))
            .await?;
        if !resp.status().is_success() {
            return Err(error_of(resp, &url).await);
        }
        let bytes = resp.bytes().await.map_err(|e| transport(&url, e))?;
        Ok(bytes.to_vec())
    }

    /// Starts the download of blob `digest` from byte `offset` (a `Range` when above 0; the
    /// answer is then 206): the response, whose body the caller streams (and hashes). A 503
    /// (central serving as many downloads as it allows) is `ClientError::Busy` with the
    /// seconds to wait.
    pub async fn blob(&self, digest: &str, offset: u64) -> Result<reqwest::Response> {
        let path = format!("/node/blobs/{}", encode(digest));
        let (resp, url) = self
            .send_failover(&Method::GET, &path, |r| {
                let r = r.timeout(BLOB_TIMEOUT);
                if offset > 0 {
                    r.header(RANGE, format!("bytes={offset}-"))
                } else {
                    r
                }
            })
            .await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_of(resp, &url).await)
        }
    }
}

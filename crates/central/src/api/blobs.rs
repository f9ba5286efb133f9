//! Image blobs over HTTP: `HEAD` and `PUT /api/v1/blobs/{digest}` for persons (is it there?
//! upload it), and `GET /api/v1/node/blobs/{digest}` for nodes: streamed from the file, with
//! `Range` (206) so a node resumes, immutable caching, and at most `blob_fetch_limit` downloads
//! at once (503 with `Retry-After` beyond). The upload's work is `crate::ops::blobs`.

use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::api::range::byte_range;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ops;
use crate::queries;
use crate::state::AppState;

/// A blob's bytes, as the document names them (a raw `application/octet-stream` body).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // only ever named in the document
pub struct Blob(Vec<u8>);

/// Blobs never change: a digest names the same bytes forever.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Seconds a node waits before asking again when the download slots are taken.
pub const RETRY_AFTER_SECS: u64 = 2;

/// Whether central has the blob, and its size.
#[utoipa::path(head, path = "/api/v1/blobs/{digest}", tag = "images", operation_id = "head_blob",
    params(("digest" = String, Path, description = "`sha256:` and 64 lowercase hex digits", pattern = "^sha256:[0-9a-f]{64}$")),
    responses((status = 200, description = "Central has the blob; `Content-Length` is its size.",
            headers(("Content-Length" = u64, description = "The blob's size in bytes."))),
        (status = 400, description = "Not a digest."),
        (status = 404, description = "Central has no such blob (upload it).")))]
pub async fn head(
    State(st): State<AppState>,
    caller: Caller,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    caller.person()?;
    let digest = ops::blobs::checked_digest(&digest)?;
    let size = queries::blob_size(&st, digest)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("blob {digest} not found")))?;
    Ok((StatusCode::OK, [(CONTENT_LENGTH, HeaderValue::from(size))]).into_response())
}

/// Uploads a layer blob: its bytes as the body, hashed on the way. Uploading a blob central
/// already has is harmless.
#[utoipa::path(put, path = "/api/v1/blobs/{digest}", tag = "images", operation_id = "upload_blob",
    params(("digest" = String, Path, description = "`sha256:` and 64 lowercase hex digits: the sha256 of the body", pattern = "^sha256:[0-9a-f]{64}$")),
    request_body(content = Blob, content_type = "application/octet-stream", description = "The blob's bytes."),
    responses((status = 201, description = "Stored."),
        (status = 400, description = "Not a digest, the bytes hash to another digest (the message names both), or the upload broke off."),
        (status = 413, description = "The blob is over the largest central accepts (`max_blob_bytes`, 8 GiB by default) (`too_large`).")))]
pub async fn upload(
    State(st): State<AppState>,
    caller: Caller,
    Path(digest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    caller.person()?;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    ops::blobs::upload(
        &st,
        &caller.actor,
        &digest,
        declared,
        body.into_data_stream(),
    )
    .await?;
    Ok(StatusCode::CREATED)
}

/// A blob for the calling node, streamed; `Range: bytes=N-` resumes at byte N (206).
#[utoipa::path(get, path = "/api/v1/node/blobs/{digest}", tag = "node", operation_id = "node_blob",
    params(("digest" = String, Path, description = "`sha256:` and 64 lowercase hex digits", pattern = "^sha256:[0-9a-f]{64}$"),
        ("Range" = Option<String>, Header, description = "`bytes=N-` (or `bytes=N-M`, `bytes=-N`): only part of the blob.")),
    security(("node_key" = [])),
    responses((status = 200, description = "The whole blob.", body = Blob, content_type = "application/octet-stream",
            headers(("Cache-Control" = String, description = "Blobs are immutable."), ("Accept-Ranges" = String))),
        (status = 206, description = "The part `Range` asked for.", body = Blob, content_type = "application/octet-stream",
            headers(("Content-Range" = String, description = "`bytes FIRST-LAST/SIZE`"), ("Cache-Control" = String))),
        (status = 400, description = "Not a digest."),
        (status = 403, description = "Not a node key."),
        (status = 404, description = "No such blob."),
        (status = 416, description = "The range starts at or past the blob's end (`bad_range`); `Content-Range` gives the size.",
            headers(("Content-Range" = String, description = "`bytes */SIZE`"))),
        (status = 503, description = "Central is serving as many blob downloads as it allows; try again after `Retry-After` seconds (`unavailable`).",
            headers(("Retry-After" = u64, description = "Seconds to wait.")))))]
pub async fn node_blob(
    State(st): State<AppState>,
    caller: Caller,
    Path(digest): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.node_or_403()?;
    let digest = ops::blobs::checked_digest(&digest)?;
    // Held until the body is sent: a slot per download in progress.
    let permit = st.blobs.try_fetch().ok_or_else(|| {
        ApiError::unavailable(
            "central is serving as many blob downloads as it allows; try again shortly",
            RETRY_AFTER_SECS,
        )
    })?;
    let size = queries::blob_size(&st, digest)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("blob {digest} not found")))?;
    let range = match byte_range(headers.get(RANGE).and_then(|v| v.to_str().ok()), size) {
        Ok(r) => r,
        Err(_) => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "bad_range",
                format!("blob {digest} has {size} bytes"),
            )
            .into_response();
            r.headers_mut().insert(
                CONTENT_RANGE,
                HeaderValue::try_from(format!("bytes */{size}"))
                    .unwrap_or(HeaderValue::from_static("bytes */0")),
            );
            return Ok(r);
        }
    };
    let (mut file, on_disk) = st
        .blobs
        .open_blob(digest)
        .await
        .map_err(ops::OpError::from)?
        .filter(|(_, len)| *len == size)
        .ok_or_else(|| {
            tracing::error!(%digest, "a recorded blob's file is missing or has another size");
            ApiError::internal("internal error; see the central's log")
        })?;
    let (first, len) = match range {
        Some((first, last)) => (first, last - first + 1),
        None => (0, on_disk),
    };
    if first > 0 {
        file.seek(SeekFrom::Start(first)).await.map_err(|e| {
            tracing::error!(error = %e, %digest, "cannot seek in a blob");
            ApiError::internal("internal error; see the central's log")
        })?;
    }
    let stream = ReaderStream::with_capacity(file.take(len), 64 << 10).map(move |chunk| {
        let _slot = &permit;
        chunk
    });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if let Ok(etag) = HeaderValue::try_from(format!("\"{digest}\"")) {
        h.insert(ETAG, etag);
    }
    if let Some((first, last)) = range {
        if let Ok(v) = HeaderValue::try_from(format!("bytes {first}-{last}/{size}")) {
            h.insert(CONTENT_RANGE, v);
        }
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(r)
}

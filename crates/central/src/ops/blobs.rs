//! Image blobs: the upload of a layer's bytes (`PUT /api/v1/blobs/{digest}`), by any person.
//! The bytes go to central's blob directory (`crate::blobs`); the record of a complete blob and
//! its `blob.uploaded` event to the store. No node is concerned until an image uses the blob.

use axum::body::Bytes;
use futures_util::Stream;
use slicelab_model::image::check_digest;
use slicelab_model::Actor;

use crate::ops::{person_id, OpError, OpResult};
use crate::state::AppState;

/// A digest named in a request: well formed, or `BadRequest`.
pub fn checked_digest(digest: &str) -> OpResult<&str> {
    check_digest(digest).map_err(|e| OpError::BadRequest(e.message))?;
    Ok(digest)
}

/// Receives the blob `digest` from `body` (of `declared_len` bytes, if said): refused if its
/// bytes hash to another digest (`BadRequest`, naming both) or exceed the blob size limit
/// (`TooLarge`). Returns its size.
pub async fn upload<S, E>(
    st: &AppState,
    actor: &Actor,
    digest: &str,
    declared_len: Option<u64>,
    body: S,
) -> OpResult<u64>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    person_id(actor)?;
    let digest = checked_digest(digest)?;
    Ok(st
        .blobs
        .receive(&st.store, &actor.label(), digest, declared_len, body)
        .await?)
}

//! The one error type of central's operations: what went wrong, not how a front end says it.
//! The JSON API maps it to a status and an `ErrorBody` (`crate::error`), the web to a page or a
//! form shown again with the message (`slicelab_web::error`).

use slicelab_model::{Denied, ValidationError};
use slicelab_store::StoreError;
use thiserror::Error;

use crate::blobs::BlobError;

#[derive(Debug, Error)]
pub enum OpError {
    /// No person behind the request (anonymous, or a node key where a person is needed).
    #[error("{0}")]
    Unauthorized(String),
    /// The policy (`slicelab_model::policy`) refuses.
    #[error("{0}")]
    Forbidden(String),
    /// A value the person typed is wrong; `field` names it.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// What was sent is not what it claims to be (an upload whose bytes hash to another digest,
    /// a malformed digest, a transfer that broke off).
    #[error("{0}")]
    BadRequest(String),
    /// What was sent is over a size limit.
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    NotFound(String),
    /// Duplicates, full sites, overlapping leases, admission control, an impossible selection.
    #[error("{0}")]
    Conflict(String),
    /// A failure of central itself; details are in the log, not in the message.
    #[error("{0}")]
    Internal(String),
}

pub type OpResult<T> = Result<T, OpError>;

impl OpError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        OpError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl From<ValidationError> for OpError {
    fn from(e: ValidationError) -> Self {
        OpError::Invalid {
            message: e.to_string(),
            field: e.field,
        }
    }
}

impl From<Denied> for OpError {
    /// A refusal that only a login could lift is a 401, any other a 403.
    fn from(e: Denied) -> Self {
        if e.login_required {
            OpError::Unauthorized(e.message)
        } else {
            OpError::Forbidden(e.message)
        }
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => OpError::NotFound(format!("{what} not found")),
            StoreError::Conflict(m) => OpError::Conflict(m),
            StoreError::OverQuota(m) => OpError::invalid("quota", m),
            other => {
                // Details of database failures are for the operator's log, not the client.
                tracing::error!(error = %other, "store failure");
                OpError::Internal("internal error; see the central's log".into())
            }
        }
    }
}

impl From<BlobError> for OpError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::BadDigest(_) | BlobError::Mismatch { .. } | BlobError::Aborted(_) => {
                OpError::BadRequest(e.to_string())
            }
            BlobError::TooLarge { .. } => OpError::TooLarge(e.to_string()),
            BlobError::Store(s) => s.into(),
            BlobError::Io { .. } => {
                tracing::error!(error = %e, "blob store failure");
                OpError::Internal("internal error; see the central's log".into())
            }
        }
    }
}

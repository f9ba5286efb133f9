//! The node manager's error type, [`NodeError`], and the `ctx` helpers that attach what was being
//! done to an I/O or system-call error.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong in the node manager. One enum for the crate boundary; the CLI maps
/// it to exit codes.
#[derive(Debug, Error)]
pub enum NodeError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("invalid {what}: {message}")]
    Invalid { what: &'static str, message: String },
    #[error("no sliver {0:?} on this node")]
    NoSuchSliver(String),
    #[error("image {0:?} does not exist (import it with `slicelab image import`)")]
    NoSuchImage(String),
    /// A published image this node has not fetched (yet): see `image::fetch`.
    #[error("image {0} is not on this node yet")]
    ImageNotReady(String),
    #[error("image {0:?} already exists")]
    ImageExists(String),
    #[error("corrupt state file {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("sliver {slice} failed to start: {message}")]
    Start { slice: String, message: String },
    #[error("address range {0} is exhausted")]
    NoAddress(String),
    #[error("this needs root (uid 0)")]
    NotRoot,
    #[error("SSH gateway: {0}")]
    Gateway(#[from] slicelab_sshgw::GatewayError),
    #[error(transparent)]
    Client(#[from] slicelab_client::ClientError),
    /// The on-disk queue of usage batches.
    #[error("usage queue: {0}")]
    Spool(#[from] slicelab_spool::SpoolError),
}

pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, NodeError>;
}

impl<T> IoContext<T> for Result<T, std::io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, NodeError> {
        self.map_err(|source| NodeError::Io {
            context: context(),
            source,
        })
    }
}

impl<T> IoContext<T> for Result<T, nix::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, NodeError> {
        self.map_err(|source| NodeError::Sys {
            context: context(),
            source,
        })
    }
}

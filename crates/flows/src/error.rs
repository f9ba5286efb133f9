//! The crate's error type, [`FlowError`], with the I/O context helper the other modules use.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong in the auditor: one enum for the crate boundary.
#[derive(Debug, Error)]
pub enum FlowError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a ctnetlink request (`NLMSG_ERROR`).
    #[error("{context}: kernel answered {}", std::io::Error::from_raw_os_error(*.errno))]
    Netlink { context: &'static str, errno: i32 },
    /// A setting the auditor depends on cannot be read or written (conntrack missing from the
    /// kernel or this network namespace, or no permission).
    #[error("sysctl {path}: {source}")]
    Sysctl {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A journal batch that cannot be encoded or decoded.
    #[error("flow journal {path}: {message}")]
    Journal { path: PathBuf, message: String },
    /// The journal's spool directory (I/O, or an unreadable `acked` file).
    #[error("flow journal: {0}")]
    Spool(#[from] slicelab_spool::SpoolError),
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, FlowError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, FlowError> {
        self.map_err(|source| FlowError::Io {
            context: context(),
            source,
        })
    }
}

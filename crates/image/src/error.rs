//! The crate's one error type: every message names the file, entry, blob or step at fault.

use std::io;
use std::path::Path;

/// What can go wrong opening, pulling, unpacking or building an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The archive or layer is malformed or hostile (not a tar, truncated, a `..` path, a
    /// missing blob, an unknown media type, no layers …).
    #[error("bad archive: {0}")]
    BadArchive(String),
    /// A blob's bytes do not hash to the digest its descriptor names.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// The registry refused, answered something unusable, or could not be reached.
    #[error("registry: {0}")]
    Registry(String),
    /// Building a root filesystem failed (the message names the step).
    #[error("build: {0}")]
    Build(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        ImageError::BadArchive(msg.into())
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// `.ctx("reading", path)` on an `io::Result`: an [`ImageError::Io`] naming the action and path.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T, ImageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T, ImageError> {
        self.map_err(|source| ImageError::io(format!("{what} {}", path.display()), source))
    }
}

//! [`GatewayError`]: why the gateway could not start or stopped serving. Per-session failures
//! are reported to the client on its channel, not here.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can stop the gateway from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("host key {path}: {source}")]
    HostKeyIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("host key {path}: {message}")]
    HostKey { path: PathBuf, message: String },
    #[error("accepting connections: {0}")]
    Accept(std::io::Error),
}

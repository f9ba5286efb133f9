//! Errors of the CLI and their mapping — done once, here — to exit codes and messages.

use slicelab_client::ClientError;
use slicelab_node::NodeError;
use thiserror::Error;

/// Exit codes of `slicelab`.
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything not covered below (server errors, local I/O, ...).
    pub const GENERIC: u8 = 1;
    /// Bad command line (clap uses it too).
    pub const USAGE: u8 = 2;
    /// 401/403: not logged in, or not allowed.
    pub const AUTH: u8 = 3;
    /// 404: no such object.
    pub const NOT_FOUND: u8 = 4;
    /// 400/409/422: the request was refused as invalid or conflicting.
    pub const REFUSED: u8 = 5;
    /// Central could not be reached.
    pub const TRANSPORT: u8 = 6;
}

/// Errors found by the CLI itself (before or without asking central).
#[derive(Debug, Error)]
pub enum CliError {
    #[error("not logged in: run `slicelab login --central URL` first (or set SLICELAB_TOKEN)")]
    NotLoggedIn,
    #[error("no central configured: run `slicelab login --central URL` (or set SLICELAB_CENTRAL)")]
    NoCentral,
    /// The command line is well-formed but its values do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// A value that central would refuse (checked locally for a better message).
    #[error("{0}")]
    Invalid(String),
}

fn client_code(e: &ClientError) -> u8 {
    match e {
        ClientError::Api { status, .. } => match status {
            401 | 403 => exit::AUTH,
            404 => exit::NOT_FOUND,
            400 | 409 | 413 | 422 => exit::REFUSED,
            _ => exit::GENERIC,
        },
        ClientError::Transport { .. } | ClientError::Busy { .. } => exit::TRANSPORT,
        ClientError::PlainHttp { .. } | ClientError::Config(_) => exit::USAGE,
        ClientError::Decode(_) | ClientError::File { .. } => exit::GENERIC,
    }
}

/// The exit code for an error: decided by the first typed error in its chain.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            return client_code(e);
        }
        if let Some(e) = cause.downcast_ref::<NodeError>() {
            return match e {
                NodeError::Client(c) => client_code(c),
                NodeError::NotRoot => exit::AUTH,
                NodeError::Invalid { .. } | NodeError::ImageExists(_) => exit::REFUSED,
                NodeError::NoSuchSliver(_) | NodeError::NoSuchImage(_) => exit::NOT_FOUND,
                _ => exit::GENERIC,
            };
        }
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return match e {
                CliError::NotLoggedIn | CliError::NoCentral => exit::AUTH,
                CliError::Usage(_) => exit::USAGE,
                CliError::Invalid(_) => exit::REFUSED,
            };
        }
    }
    exit::GENERIC
}

fn client_message(e: &ClientError) -> String {
    match e {
        ClientError::Api {
            status, message, ..
        } => match status {
            401 => format!("not logged in: {message} (run `slicelab login`)"),
            403 => format!("not allowed: {message}"),
            404 | 400 | 409 | 413 | 422 => message.clone(),
            _ => format!("central failed ({status}): {message}"),
        },
        other => other.to_string(),
    }
}

/// The one-line message printed after `error: `: the causes joined with `: `, with API errors
/// phrased for people.
pub fn message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        // For an unreachable central the root cause says it best ("Connection refused").
        if let Some(ClientError::Transport { url, .. }) = cause.downcast_ref::<ClientError>() {
            let root = err
                .chain()
                .last()
                .map(|c| c.to_string())
                .unwrap_or_default();
            parts.push(format!("cannot reach central at {url}: {root}"));
            break;
        }
        let text = match (
            cause.downcast_ref::<ClientError>(),
            cause.downcast_ref::<NodeError>(),
        ) {
            (Some(e), _) | (_, Some(NodeError::Client(e))) => client_message(e),
            _ => cause.to_string(),
        };
        // reqwest repeats its cause in its own message; skip parts already said.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

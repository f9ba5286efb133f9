//! The session a command runs in: the saved login (`config`) with the environment's overrides,
//! and a client of central for it. Commands that need no login (`login`, `lookup`, the daemons)
//! do not open one.

use std::path::PathBuf;

use anyhow::Result;
use slicelab_client::Client;

use crate::config::{self, Config};
use crate::error::CliError;

/// Central's URL when nothing else names one.
pub const DEFAULT_CENTRAL: &str = "https://127.0.0.1:8080";

/// The saved login with environment overrides, and a client for it.
pub(crate) struct Session {
    pub(crate) client: Client,
    /// The config file it came from.
    pub(crate) path: PathBuf,
}

/// The config file as saved (no environment overrides), and where it lives.
pub(crate) fn load_config() -> Result<(Config, PathBuf)> {
    let path = config::path()?;
    Ok((Config::load(&path)?, path))
}

/// The logged-in session; not being logged in is an error (exit 3).
pub(crate) fn session() -> Result<Session> {
    let (file, path) = load_config()?;
    let config = file.with_env();
    let central = config.central.clone().ok_or(CliError::NoCentral)?;
    let token = config.token.clone().ok_or(CliError::NotLoggedIn)?;
    let endpoint = crate::trust::endpoint(&central, &crate::trust::of_config(&config))?;
    Ok(Session {
        client: Client::connect(&endpoint, Some(token))?,
        path,
    })
}

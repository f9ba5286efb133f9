//! The session a command runs in: the saved login (`config`) with the environment's overrides,
//! and a client of central for it. Commands that need no login (`login`, `lookup`, the daemons)
//! do not open one.

use std::path::PathBuf;

use anyhow::Result;
use slicelab_client::Client;

use crate::args::TrustArgs;
use crate::config::{self, Config};
use crate::error::CliError;

/// Central's URL when nothing else names one.
pub const DEFAULT_CENTRAL: &str = "https://127.0.0.1:8080";

/// The saved login with environment overrides, and a client for it.
pub(crate) struct Session {
    pub(crate) client: Client,
    /// The config file it came from.
    pub(crate) path: PathBuf,
    /// How the login trusts central (printed into join commands).
    pub(crate) trust: TrustArgs,
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
    let token = config.token.clone().ok_or(CliError::NotLoggedIn)?;
    let (client, trust) = client_of(&config, Some(token))?;
    Ok(Session {
        client,
        path,
        trust,
    })
}

/// A client of the login's central without its credential (for public questions: `lookup`).
pub(crate) fn anonymous() -> Result<Client> {
    let (file, _) = load_config()?;
    Ok(client_of(&file.with_env(), None)?.0)
}

fn client_of(config: &Config, token: Option<String>) -> Result<(Client, TrustArgs)> {
    let central = config.central.clone().ok_or(CliError::NoCentral)?;
    let trust = crate::trust::of_config(config);
    let endpoint = crate::trust::endpoint(&central, &trust)?;
    Ok((Client::connect(&endpoint, token)?, trust))
}

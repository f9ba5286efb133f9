//! How the CLI's clients trust central: `--ca FILE`, `--ca-fingerprint FP` or the system roots,
//! from flags, the environment or the saved login; and, at `slicelab login`, the question a
//! person answers the first time a central's CA is unknown (as `ssh` asks about a host key).

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use slicelab_client::{Client, ClientError, Endpoint, Trust};

use crate::args::TrustArgs;
use crate::config::Config;

/// The endpoint for `urls` with the trust `a` gives.
pub(crate) fn endpoint(urls: &str, a: &TrustArgs) -> Result<Endpoint> {
    let trust = match (&a.ca, &a.ca_fingerprint) {
        (Some(file), _) => Trust::CaPem(
            std::fs::read(file)
                .with_context(|| format!("reading the CA file {}", file.display()))?,
        ),
        (None, Some(fp)) => Trust::fingerprint(fp)?,
        (None, None) => Trust::System,
    };
    Ok(Endpoint::new(urls)
        .trust(trust)
        .allow_plain_http(a.allow_plain_http))
}

/// The trust a saved login carries, with the environment's overrides.
pub(crate) fn of_config(cfg: &Config) -> TrustArgs {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let allow = env("SLICELAB_ALLOW_PLAIN_HTTP").map(|v| {
        !matches!(
            v.to_ascii_lowercase().as_str(),
            "0" | "false" | "no" | "off"
        )
    });
    match (env("SLICELAB_CA"), env("SLICELAB_CA_FINGERPRINT")) {
        (None, None) => TrustArgs {
            ca: cfg.ca_file.clone().map(Into::into),
            ca_fingerprint: cfg.ca_fingerprint.clone(),
            allow_plain_http: allow.unwrap_or(cfg.allow_plain_http),
        },
        (ca, fp) => TrustArgs {
            ca: ca.map(Into::into),
            ca_fingerprint: fp,
            allow_plain_http: allow.unwrap_or(cfg.allow_plain_http),
        },
    }
}

/// Saves the trust `a` names into the login `cfg` (a file by its absolute path).
pub(crate) fn save(cfg: &mut Config, a: &TrustArgs) {
    cfg.ca_file = a.ca.as_ref().map(|p| {
        std::path::absolute(p)
            .unwrap_or(p.clone())
            .display()
            .to_string()
    });
    cfg.ca_fingerprint = a.ca_fingerprint.clone();
    cfg.allow_plain_http = a.allow_plain_http;
}

/// When `a` names no CA and central's certificate is not one the system trusts: shows the
/// fingerprint of the CA central presents and asks whether to trust it; `Some(fingerprint)`
/// if the person said yes. Without a terminal, says how to pass it instead.
pub(crate) async fn ask_first_time(urls: &str, a: &TrustArgs) -> Result<Option<String>> {
    if a.ca.is_some() || a.ca_fingerprint.is_some() {
        return Ok(None);
    }
    let ep = endpoint(urls, a)?;
    let Some(url) = ep.urls.first().filter(|u| u.starts_with("https://")) else {
        return Ok(None);
    };
    let probe = Client::connect(&ep, None)?;
    match probe.get::<serde_json::Value>("/auth/whoami").await {
        Err(ClientError::Transport { detail, .. }) if detail.contains("certificate") => {}
        _ => return Ok(None),
    }
    let Some(fp) = slicelab_client::presented_ca(url).await? else {
        return Ok(None);
    };
    if !std::io::stdin().is_terminal() {
        bail!(
            "central at {url} presents a certificate from a CA this system does not trust, with \
             fingerprint {fp}. If that is central's (`slicelab central` prints it at start), \
             pass --ca-fingerprint {fp}"
        );
    }
    eprintln!("Central at {url} presents a certificate from a CA this system does not trust.");
    eprintln!("Its fingerprint is {fp}.");
    let answer = crate::password::prompt("Trust it for this login (yes/no)? ", true)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(Some(fp))
    } else {
        bail!("central's CA not trusted: nothing saved")
    }
}

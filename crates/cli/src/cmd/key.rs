//! `slicelab key`: add (from an OpenSSH public key file, checked locally first), list and delete
//! the SSH keys of persons.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use slicelab_client::Client;
use slicelab_model::KeyCreate;

use crate::args::{KeyCmd, Output};
use crate::error::CliError;
use crate::output::emit_list;
use crate::render;
use crate::session::session;

/// The keys in an OpenSSH public key file: one per non-empty, non-comment line, checked locally.
pub fn parse_key_file(text: &str, source: &str) -> Result<Vec<String>, CliError> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        slicelab_model::ssh_key::parse(line)
            .map_err(|e| CliError::Invalid(format!("{source}, line {}: {e}", n + 1)))?;
        keys.push(line.to_string());
    }
    if keys.is_empty() {
        return Err(CliError::Invalid(format!(
            "{source}: no SSH public key in it"
        )));
    }
    Ok(keys)
}

/// `--person`, or the logged-in person.
async fn me_or(c: &Client, person: Option<String>) -> Result<String> {
    match person {
        Some(p) => Ok(p),
        None => Ok(c.whoami().await?.email),
    }
}

/// The text of FILE (`-`: stdin) and the name to give it in messages.
fn read_key_file(file: &Path) -> Result<(String, String)> {
    if file == Path::new("-") {
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .context("reading the key from stdin")?;
        Ok((t, "stdin".to_string()))
    } else {
        let t =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        Ok((t, file.display().to_string()))
    }
}

pub(crate) async fn key(out: Output, c: KeyCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    match c {
        KeyCmd::Add { person, file } => {
            let (text, source) = read_key_file(&file)?;
            let lines = parse_key_file(&text, &source)?;
            let person = me_or(c_, person).await?;
            let mut added = Vec::new();
            for key in lines {
                added.push(c_.add_key(&person, &KeyCreate { key }).await?);
            }
            emit_list(out, &added, render::keys)
        }
        KeyCmd::List { person } => {
            let person = me_or(c_, person).await?;
            emit_list(out, &c_.keys(&person).await?, render::keys)
        }
        KeyCmd::Delete { id } => {
            c_.delete_key(id).await?;
            eprintln!("Deleted key {id}.");
            Ok(())
        }
    }
}

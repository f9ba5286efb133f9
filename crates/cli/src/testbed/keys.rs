//! The testbed's secrets and keys: the invoking user (behind sudo), the demo user's SSH key (the
//! user's own, else one generated once), the nodes' SSH host keys (kept across runs so
//! known_hosts entries stay valid) and random passwords.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::process::run;

/// A random password: 12 bytes from the kernel, in hex.
pub(super) fn random_password() -> Result<String> {
    let mut b = [0u8; 12];
    File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .context("reading /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The invoking user (behind sudo, the one who ran sudo): uid, gid, home.
pub(super) fn invoking_user() -> Option<(u32, u32, PathBuf)> {
    let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let gid = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
    Some((uid, gid, user.dir))
}

fn home() -> Option<PathBuf> {
    invoking_user()
        .map(|(_, _, h)| h)
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
}

/// Generates an ed25519 key pair without passphrase at `private` (and `private.pub`).
fn keygen(private: &Path, comment: &str) -> Result<()> {
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            comment,
            "-f",
            &private.to_string_lossy(),
        ],
    )?;
    Ok(())
}

/// The public key line next to `private`.
fn read_public(private: &Path) -> Result<String> {
    fs::read_to_string(private.with_extension("pub"))
        .with_context(|| format!("reading {}.pub", private.display()))
}

/// The demo user's key: the invoking user's own if there is one, else one generated (once)
/// under `<dir>/keys`. Returns (public key line, private key path, generated?).
pub(super) fn user_key(dir: &Path) -> Result<(String, PathBuf, bool)> {
    if let Some(h) = home() {
        for name in ["id_ed25519", "id_rsa"] {
            let private = h.join(".ssh").join(name);
            if let Ok(p) = fs::read_to_string(private.with_extension("pub")) {
                if !p.trim().is_empty() {
                    return Ok((p.trim().to_string(), private, false));
                }
            }
        }
    }
    let private = dir.join("keys").join("id_ed25519");
    if !private.exists() {
        keygen(&private, "user@demo.slicelab.test")?;
        if let Some((uid, gid, _)) = invoking_user() {
            for p in [private.clone(), private.with_extension("pub")] {
                let _ = std::os::unix::fs::chown(&p, Some(uid), Some(gid));
            }
        }
    }
    let public = read_public(&private)?;
    Ok((public.trim().to_string(), private, true))
}

/// The node's host key, kept across runs so known_hosts entries stay valid.
pub(super) fn host_key(dir: &Path, i: u8) -> Result<(PathBuf, String)> {
    let private = dir.join("keys").join(format!("node{i}_host_ed25519_key"));
    if !private.exists() {
        keygen(&private, &format!("node{i}"))?;
    }
    let public = read_public(&private)?;
    // `algorithm base64` without the comment.
    let public = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    Ok((private, public))
}

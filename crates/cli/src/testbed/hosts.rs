//! The testbed's marked blocks in `/etc/hosts` (node hostnames) and `/etc/ssh/ssh_known_hosts`
//! (the nodes' host keys): written by `up`, removed by `down`, found again by their markers.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};

const BLOCK_BEGIN: &str = "# BEGIN slicelab up (removed by `slicelab down`)";
const BLOCK_END: &str = "# END slicelab up";
pub(super) const HOSTS: &str = "/etc/hosts";
pub(super) const KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";

/// Replaces (or with `lines` empty, removes) our marked block in `path`. Written in place, not
/// renamed over: in containers /etc/hosts is often a bind mount.
pub(super) fn set_block(path: &str, lines: &[String]) -> Result<bool> {
    // No /etc/ssh: no OpenSSH client to serve; nothing to clean either.
    if Path::new(path).parent().is_some_and(|d| !d.is_dir()) {
        return Ok(false);
    }
    let old = match fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && lines.is_empty() => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {path}")),
    };
    let mut out = String::new();
    let mut inside = false;
    let mut had = false;
    for l in old.lines() {
        if l == BLOCK_BEGIN {
            inside = true;
            had = true;
        } else if l == BLOCK_END && inside {
            inside = false;
        } else if !inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    if !lines.is_empty() {
        out.push_str(BLOCK_BEGIN);
        out.push('\n');
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(BLOCK_END);
        out.push('\n');
    }
    if out != old {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path)
            .and_then(|mut f| f.write_all(out.as_bytes()))
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(had)
}

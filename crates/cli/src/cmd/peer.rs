//! `slicelab peer`: register, list, change, suspend, resume and remove peer authorities.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use slicelab_model::peer::{PeerCreate, PeerUpdate};

use crate::args::{Output, PeerCmd};
use crate::output::{emit, emit_list};
use crate::render;
use crate::session::session;
use crate::timefmt;

/// The shared secret from a file (`-`: standard input), without its line end.
fn read_secret(path: &Path) -> Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the secret from standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the secret from {}", path.display()))?;
    }
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

pub(crate) async fn peer(out: Output, c: PeerCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    let now = timefmt::now();
    match c {
        PeerCmd::Add {
            name,
            url,
            ca_fingerprint,
            secret_file,
            max_slivers,
            max_cpu_reserve,
            max_mem_reserve,
        } => {
            let body = PeerCreate {
                name,
                url,
                ca_fingerprint,
                secret: read_secret(&secret_file)?,
                max_slivers,
                max_cpu_reserve,
                max_mem_reserve_mb: max_mem_reserve,
            };
            emit(out, &c_.create_peer(&body).await?, |p| {
                render::peers(std::slice::from_ref(p), now)
            })
        }
        PeerCmd::List => emit_list(out, &c_.peers().await?, |p| render::peers(p, now)),
        PeerCmd::Show { name } => emit(out, &c_.peer(&name).await?, |p| render::peer(p, now)),
        PeerCmd::Update {
            name,
            url,
            ca_fingerprint,
            secret_file,
            max_slivers,
            max_cpu_reserve,
            max_mem_reserve,
        } => {
            let body = PeerUpdate {
                url,
                ca_fingerprint,
                secret: secret_file.as_deref().map(read_secret).transpose()?,
                max_slivers,
                max_cpu_reserve,
                max_mem_reserve_mb: max_mem_reserve,
            };
            emit(out, &c_.update_peer(&name, &body).await?, |p| {
                render::peer(p, now)
            })
        }
        PeerCmd::Suspend { name, reason } => {
            emit(out, &c_.suspend_peer(&name, &reason).await?, |p| {
                render::peer(p, now)
            })
        }
        PeerCmd::Resume { name } => {
            emit(out, &c_.resume_peer(&name).await?, |p| render::peer(p, now))
        }
        PeerCmd::Remove { name } => {
            c_.delete_peer(&name).await?;
            eprintln!("Removed peer {name}: its slivers here are being destroyed.");
            Ok(())
        }
    }
}

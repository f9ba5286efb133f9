//! `slicelab lookup`: the public "who sent this?" question; it needs no login.

use anyhow::Result;
use slicelab_client::Client;

use super::flags::since;
use crate::args::{LookupArgs, Output};
use crate::output::emit;
use crate::render;
use crate::timefmt;

pub(crate) async fn lookup(out: Output, a: LookupArgs) -> Result<()> {
    let now = timefmt::now();
    let from = since(a.since.as_deref(), now)?;
    // Anyone may ask: use the logged-in central if there is one, without needing a login.
    let client = match a.central {
        Some(c) => Client::connect(&crate::trust::endpoint(&c, &a.trust)?, None)?,
        None => crate::session::anonymous()?,
    };
    let r = client.lookup(&a.node, &a.remote, a.port, from, now).await?;
    emit(out, &r, render::lookup)
}

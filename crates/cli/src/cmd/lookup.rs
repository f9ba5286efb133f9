//! `slicelab lookup`: the public "who sent this?" question; it needs no login.

use anyhow::Result;
use slicelab_client::Client;

use super::flags::since;
use crate::args::{LookupArgs, Output};
use crate::output::emit;
use crate::render;
use crate::session::session;
use crate::timefmt;

pub(crate) async fn lookup(out: Output, a: LookupArgs) -> Result<()> {
    let now = timefmt::now();
    let from = since(a.since.as_deref(), now)?;
    // Anyone may ask: use the logged-in central if there is one, without needing a login.
    let base = match a.central {
        Some(c) => c,
        None => session()?.client.base().to_string(),
    };
    let client = Client::new(&base, None);
    let r = client.lookup(&a.node, &a.remote, a.port, from, now).await?;
    emit(out, &r, render::lookup)
}

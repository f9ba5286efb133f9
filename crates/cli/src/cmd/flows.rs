//! `slicelab flows`: the flow records of a slice or node (packet auditing).

use anyhow::Result;

use super::flags::since;
use crate::args::{FlowsArgs, Output};
use crate::output::emit_list;
use crate::render;
use crate::session::session;
use crate::timefmt;

pub(crate) async fn flows(out: Output, a: FlowsArgs) -> Result<()> {
    let s = session()?;
    let now = timefmt::now();
    let from = since(a.since.as_deref(), now)?;
    let flows = s
        .client
        .flows(a.slice.as_deref(), a.node.as_deref(), from, now, a.limit)
        .await?;
    emit_list(out, &flows, render::flows)
}

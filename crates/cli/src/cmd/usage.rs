//! `slicelab usage`: a usage series of a slice, node, site or the platform, or the top consumers.

use anyhow::Result;

use super::flags::{flag, since};
use crate::args::{Output, UsageArgs};
use crate::output::{emit, emit_list};
use crate::render;
use crate::session::session;
use crate::timefmt;

pub(crate) async fn usage(out: Output, a: UsageArgs) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    let now = timefmt::now();
    let from = since(a.since.as_deref(), now)?;
    if a.top {
        let top = c_.usage_top(&a.by, from, now + 1).await?;
        return emit_list(out, &top, render::usage_top);
    }
    let step = a
        .step
        .as_deref()
        .map(|v| flag("--step", timefmt::parse_duration(v)))
        .transpose()?;
    let scope = match (&a.slice, &a.node, &a.site) {
        (Some(sl), _, _) => format!("slice={sl}"),
        (_, Some(n), _) => format!("node={n}"),
        (_, _, Some(si)) => format!("site={si}"),
        _ => String::new(),
    };
    let series = c_.usage(&scope, from, now + 1, step).await?;
    emit(out, &series, render::usage)
}

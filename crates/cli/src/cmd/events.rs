//! `slicelab events`: the audit log, filtered and paged.

use anyhow::Result;
use slicelab_client::EventFilter;

use super::flags::flag;
use crate::args::{EventsArgs, Output};
use crate::output::emit_page;
use crate::paging::fetch;
use crate::render;
use crate::session::session;
use crate::timefmt;

pub(crate) async fn events(out: Output, a: EventsArgs) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    let since = a
        .since
        .as_deref()
        .map(|v| flag("--since", timefmt::parse_since(v, timefmt::now())))
        .transpose()?;
    let page = fetch(&a.list, |paging| {
        let f = EventFilter {
            object_type: a.object_type.clone(),
            object: a.object.clone(),
            actor: a.actor.clone(),
            since,
            paging,
        };
        async move { c_.events(&f).await }
    })
    .await?;
    emit_page(out, &page, render::events)
}

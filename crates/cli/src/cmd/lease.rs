//! `slicelab lease`: reserve a reservable node for a slice, list and cancel leases.

use anyhow::Result;
use slicelab_model::LeaseCreate;

use super::flags::flag;
use crate::args::{LeaseCmd, Output};
use crate::error::CliError;
use crate::output::{emit, emit_list};
use crate::render;
use crate::session::session;
use crate::timefmt;

pub(crate) async fn lease(out: Output, c: LeaseCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    let now = timefmt::now();
    match c {
        LeaseCmd::Add {
            slice,
            node,
            start,
            duration,
            end,
        } => {
            let (start, end) = window(start, duration, end, now)?;
            let body = LeaseCreate {
                slice,
                node,
                start,
                end,
            };
            emit(out, &c_.create_lease(&body).await?, |l| {
                render::leases(std::slice::from_ref(l), now)
            })
        }
        LeaseCmd::List { node, slice } => emit_list(
            out,
            &c_.leases(node.as_deref(), slice.as_deref()).await?,
            |l| render::leases(l, now),
        ),
        LeaseCmd::Delete { id } => {
            c_.delete_lease(id).await?;
            eprintln!("Deleted lease {id}.");
            Ok(())
        }
    }
}

/// The lease's (start, end) from `--start` (default now) and `--duration` or `--end`.
fn window(
    start: Option<String>,
    duration: Option<String>,
    end: Option<String>,
    now: i64,
) -> Result<(i64, i64)> {
    let start = match start.as_deref() {
        None | Some("now") => now,
        Some(t) => flag("--start", timefmt::parse_time(t))?,
    };
    let end = match (duration, end) {
        (Some(d), _) => start + flag("--duration", timefmt::parse_duration(&d))?,
        (None, Some(e)) => flag("--end", timefmt::parse_time(&e))?,
        (None, None) => return Err(CliError::Usage("give --duration or --end".into()).into()),
    };
    Ok((start, end))
}

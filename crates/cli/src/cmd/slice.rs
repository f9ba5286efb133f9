//! `slicelab slice`: slices and what hangs off them (nodes, persons, tags, expiry, slivers).

use anyhow::Result;
use serde::Serialize;
use slicelab_client::{Client, SliceFilter};
use slicelab_model::sliver::Sliver;
use slicelab_model::{Slice, SliceCreate, SliceRenew, SliceTag, SliceTagSet, SliceUpdate};

use super::flags::{flag, nothing_to_change};
use crate::args::{ListArgs, Output, SliceCmd, SliceTagCmd};
use crate::error::CliError;
use crate::output::{emit, emit_list, emit_page};
use crate::paging::fetch;
use crate::render;
use crate::session::session;
use crate::timefmt;

/// `slice show`: the slice with its tags and slivers (one JSON object for scripts).
#[derive(Debug, Serialize)]
pub struct SliceDetail {
    #[serde(flatten)]
    pub slice: Slice,
    pub tags: Vec<SliceTag>,
    pub slivers: Vec<Sliver>,
}

pub fn slice_detail_text(d: &SliceDetail, now: i64) -> String {
    let mut s = render::slice(&d.slice, now);
    s.push_str("\nTags:\n");
    if d.tags.is_empty() {
        s.push_str("  (none)\n");
    } else {
        s.push_str(&indent(&render::tags(&d.tags)));
    }
    s.push_str("\nSlivers:\n");
    if d.slivers.is_empty() {
        s.push_str("  (none reported)\n");
    } else {
        s.push_str(&indent(&render::slivers(&d.slivers, now)));
    }
    s
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

pub(crate) async fn slice(out: Output, c: SliceCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    let now = timefmt::now();
    match c {
        SliceCmd::Add {
            name,
            description,
            url,
        } => {
            let body = SliceCreate {
                name,
                description: description.unwrap_or_default(),
                url: url.unwrap_or_default(),
            };
            show(out, &c_.create_slice(&body).await?, now)
        }
        SliceCmd::List {
            site,
            person,
            node,
            list,
        } => {
            let f = SliceFilter {
                site,
                person,
                node,
                ..Default::default()
            };
            list_slices(out, c_, f, &list, now).await
        }
        SliceCmd::Show { slice } => show_slice(out, c_, &slice, now).await,
        SliceCmd::Update {
            slice,
            description,
            url,
            enable,
        } => {
            let body = SliceUpdate {
                description,
                url,
                enabled: enable.value(),
            };
            show(out, &update_slice(c_, &slice, &body).await?, now)
        }
        SliceCmd::Delete { slice } => {
            c_.delete_slice(&slice).await?;
            eprintln!("Deleted slice {slice}.");
            Ok(())
        }
        SliceCmd::Renew {
            slice,
            days,
            expires,
        } => show(out, &renew(c_, &slice, days, expires).await?, now),
        SliceCmd::AddNodes {
            slice,
            nodes,
            select,
        } => show(out, &add_nodes(c_, &slice, &nodes, select).await?, now),
        SliceCmd::RemoveNodes { slice, nodes } => {
            show(out, &remove_nodes(c_, &slice, &nodes).await?, now)
        }
        SliceCmd::AddPerson { slice, persons } => {
            show(out, &c_.add_slice_persons(&slice, &persons).await?, now)
        }
        SliceCmd::RemovePerson { slice, persons } => {
            show(out, &remove_persons(c_, &slice, &persons).await?, now)
        }
        SliceCmd::Tag(t) => tag(out, c_, t).await,
        SliceCmd::Slivers { slice } => emit_list(out, &c_.slice_slivers(&slice).await?, |l| {
            render::slivers(l, now)
        }),
    }
}

/// Prints a slice as a command that changed it answers.
fn show(out: Output, sl: &Slice, now: i64) -> Result<()> {
    emit(out, sl, |sl| render::slice(sl, now))
}

async fn update_slice(c_: &Client, slice: &str, body: &SliceUpdate) -> Result<Slice> {
    if body.description.is_none() && body.url.is_none() && body.enabled.is_none() {
        return Err(nothing_to_change(
            "--description, --url, --enable, --disable",
        ));
    }
    Ok(c_.update_slice(slice, body).await?)
}

async fn renew(
    c_: &Client,
    slice: &str,
    days: Option<i64>,
    expires: Option<String>,
) -> Result<Slice> {
    let expires = expires
        .map(|e| flag("--expires", timefmt::parse_time(&e)))
        .transpose()?;
    let body = SliceRenew { expires, days };
    Ok(c_.renew_slice(slice, &body).await?)
}

/// `slice add-nodes`: the nodes named, or those the broker picks by `--select`.
async fn add_nodes(
    c_: &Client,
    slice: &str,
    nodes: &[String],
    select: Option<String>,
) -> Result<Slice> {
    match select {
        Some(spec) if nodes.is_empty() => {
            let r = c_.select_slice_nodes(slice, &spec).await?;
            if r.added.is_empty() {
                eprintln!("the broker added no node");
            } else {
                eprintln!("the broker added: {}", r.added.join(", "));
            }
            Ok(r.slice)
        }
        _ => Ok(c_.add_slice_nodes(slice, nodes).await?),
    }
}

/// Takes the slice off each node in turn; the slice as the last removal left it.
async fn remove_nodes(c_: &Client, slice: &str, nodes: &[String]) -> Result<Slice> {
    let mut last = None;
    for n in nodes {
        last = Some(c_.remove_slice_node(slice, n).await?);
    }
    Ok(last.expect("clap requires a node"))
}

/// Removes each person in turn; the slice as the last removal left it.
async fn remove_persons(c_: &Client, slice: &str, persons: &[String]) -> Result<Slice> {
    let mut last = None;
    for p in persons {
        last = Some(c_.remove_slice_person(slice, p).await?);
    }
    Ok(last.expect("clap requires a person"))
}

/// `slice list`: `filter` names the slices, `list` which part of the listing to show.
async fn list_slices(
    out: Output,
    c_: &Client,
    filter: SliceFilter,
    list: &ListArgs,
    now: i64,
) -> Result<()> {
    let page = fetch(list, |paging| {
        let f = SliceFilter {
            paging,
            ..filter.clone()
        };
        async move { c_.slices(&f).await }
    })
    .await?;
    emit_page(out, &page, |l| render::slices(l, now))
}

async fn show_slice(out: Output, c_: &Client, slice: &str, now: i64) -> Result<()> {
    let sl = c_.slice(slice).await?;
    let (tags, slivers) = tokio::try_join!(c_.slice_tags(&sl.name), c_.slice_slivers(&sl.name))?;
    let d = SliceDetail {
        slice: sl,
        tags,
        slivers,
    };
    emit(out, &d, |d| slice_detail_text(d, now))
}

/// `slice tag`: set, list and delete the slice's tags.
async fn tag(out: Output, c_: &Client, t: SliceTagCmd) -> Result<()> {
    match t {
        SliceTagCmd::Set {
            slice,
            tag,
            value,
            node,
        } => {
            // Check the value here too, for a message before any request is sent.
            slicelab_model::tags::validate(tag, &value)
                .map_err(|e| CliError::Invalid(e.to_string()))?;
            let t = c_
                .set_slice_tag(&slice, tag, &SliceTagSet { value, node })
                .await?;
            emit_list(out, std::slice::from_ref(&t), render::tags)
        }
        SliceTagCmd::List { slice } => emit_list(out, &c_.slice_tags(&slice).await?, render::tags),
        SliceTagCmd::Delete { slice, tag, node } => {
            c_.delete_slice_tag(&slice, tag, node.as_deref()).await?;
            match node {
                Some(n) => eprintln!("Deleted tag {tag} of slice {slice} on {n}."),
                None => eprintln!("Deleted tag {tag} of slice {slice}."),
            }
            Ok(())
        }
    }
}

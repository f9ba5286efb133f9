//! "Who sent this?": the public form where anyone who saw traffic from a node asks which slice
//! sent it, answered by central's lookup (`slicelab_central::queries::lookup`) and rate-limited
//! per client like the API's (`AppState::take_lookup`).

use std::net::IpAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use slicelab_central::ops::OpError;
use slicelab_central::queries::{self, NodeFilter};
use slicelab_central::state::AppState;
use slicelab_model::flows::LookupResult;
use slicelab_model::time::WEEK;
use slicelab_model::Node;

use crate::error::WebResult;
use crate::layout::{fmt_local_input, fmt_time, parse_local_input, respond, Notice, Page, Section};
use crate::pages::all_nodes;
use crate::session::Viewer;

#[derive(Debug, Deserialize, Default)]
pub struct LookupQuery {
    node: Option<String>,
    addr: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Checks a lookup request; returns (node, address, from, to).
async fn check_lookup(st: &AppState, q: &LookupQuery) -> Result<(Node, IpAddr, i64, i64), String> {
    let node = q.node.as_deref().unwrap_or("").trim();
    if node.is_empty() {
        return Err("choose the node that sent the traffic".into());
    }
    let n = match queries::node(st, node).await {
        Ok(n) => n,
        Err(OpError::NotFound(_)) => return Err(format!("there is no node {node:?} in slicelab")),
        Err(e) => return Err(format!("cannot look up the node: {e}")),
    };
    let addr_s = q.addr.as_deref().unwrap_or("").trim();
    let addr: IpAddr = addr_s
        .parse()
        .map_err(|_| format!("{addr_s:?} is not an IPv4 or IPv6 address"))?;
    let from = parse_local_input(q.from.as_deref().unwrap_or(""))
        .ok_or("give the start of the time window (UTC)")?;
    let to = parse_local_input(q.to.as_deref().unwrap_or(""))
        .ok_or("give the end of the time window (UTC)")?;
    if to <= from {
        return Err("the window must end after it starts".into());
    }
    if to - from > WEEK {
        return Err("the window may span at most 7 days".into());
    }
    Ok((n, addr, from, to))
}

/// The answer to a lookup: the slices that exchanged traffic with the address, and who answers
/// for them.
fn lookup_answer(found: &LookupResult) -> Markup {
    let (host, addr) = (&found.node, &found.remote);
    if found.matches.is_empty() {
        return html! {
            div.card id="lookup-result" {
                h2 { "Result" }
                div.notice.info {
                    strong { "No records. " }
                    "No slice on " (host) " exchanged traffic with " (addr) " between "
                    (fmt_time(found.from)) " and " (fmt_time(found.to)) " (UTC). Check the node and the time window."
                }
            }
        };
    }
    html! {
        div.card id="lookup-result" {
            h2 { "Result" }
            p { "Traffic between " strong { (host) } " and " strong { (addr) } " came from:" }
            @for m in &found.matches {
                div.card.match {
                    h3 { "Slice " (m.slice) }
                    @if !m.description.is_empty() { p { (m.description) } }
                    @if !m.url.is_empty() { p { a href=(m.url) rel="nofollow noopener" { (m.url) } } }
                    p.muted {
                        (m.flows) " flow(s) from " (fmt_time(m.first_seen)) " to " (fmt_time(m.last_seen))
                        " · " (m.tx_bytes) " bytes sent, " (m.rx_bytes) " received"
                    }
                    @if m.contacts.is_empty() {
                        p { "Responsible: the platform admins." }
                    } @else {
                        p { "Responsible: "
                            @for (i, c) in m.contacts.iter().enumerate() {
                                @if i > 0 { ", " }
                                (c.name) " <" a href={ "mailto:" (c.email) } { (c.email) } ">"
                            }
                        }
                    }
                }
            }
        }
    }
}

/// "Who sent this?": anyone who saw traffic from a node asks which slice sent it.
pub async fn lookup(
    State(st): State<AppState>,
    viewer: Viewer,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Query(q): Query<LookupQuery>,
) -> WebResult<Response> {
    let now = slicelab_central::now();
    let asked = q.node.is_some() || q.addr.is_some();
    let (status, result) = if asked && q.addr.is_some() {
        // Same per-client allowance as the API's lookup: the form is the same public door.
        if let Err(wait) = st.take_lookup(peer.ip()).await {
            (
                StatusCode::TOO_MANY_REQUESTS,
                Some(
                    Notice::Error(format!(
                        "Too many lookups from your address; try again in {wait} s."
                    ))
                    .render(),
                ),
            )
        } else {
            match check_lookup(&st, &q).await {
                Ok((node, addr, from, to)) => {
                    let found = queries::lookup(&st, &node, addr, None, (from, to)).await?;
                    (StatusCode::OK, Some(lookup_answer(&found)))
                }
                Err(m) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some(Notice::Error(m).render()),
                ),
            }
        }
    } else {
        (StatusCode::OK, None)
    };
    let nodes = all_nodes(&st, &NodeFilter::default()).await?;
    let sel = q.node.clone().unwrap_or_default();
    let body = html! {
        h1 { "Who sent this?" }
        p.sub { "Saw traffic from a slicelab node? Every flow is attributed to the experiment (slice) that sent it. Ask here — no login needed." }
        (result.unwrap_or_default())
        div.card {
            form.stack method="get" action="/lookup" id="lookup" {
                label { "Node that sent the traffic"
                    select name="node" required {
                        option value="" { "— choose —" }
                        @for n in &nodes { option value=(n.hostname) selected[n.hostname == sel] { (n.hostname) } }
                    }
                }
                label { "Your address (the destination of the traffic)" input type="text" name="addr" placeholder="192.0.2.7" value=(q.addr.clone().unwrap_or_default()) required; }
                label { "From (UTC)" input type="datetime-local" name="from" value=(q.from.clone().unwrap_or_else(|| fmt_local_input(now - 3600))) required; }
                label { "To (UTC)" input type="datetime-local" name="to" value=(q.to.clone().unwrap_or_else(|| fmt_local_input(now))) required; }
                button type="submit" { "Look up" }
            }
        }
    };
    Ok(respond(
        status,
        Page::new("Who sent this?", Section::Lookup, &viewer).render(body),
    ))
}

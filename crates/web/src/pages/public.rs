//! Pages anyone may read: the platform overview, node pages, site pages and the
//! "who sent this?" lookup. Private parts appear only for viewers the policy allows. Read
//! through `slicelab_central::queries`.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use slicelab_central::ops::OpError;
use slicelab_central::queries::{self, NodeFilter, PersonFilter, SliceFilter, UsageScope};
use slicelab_central::state::AppState;
use slicelab_model::flows::LookupResult;
use slicelab_model::sliver::Sliver;
use slicelab_model::time::{NODE_LIVE_WINDOW, WEEK};
use slicelab_model::{BootState, Node, NodeStatus, Site, SliverState};

use crate::error::{WebError, WebResult};
use crate::layout::{
    badge, fmt_ago, fmt_local_input, fmt_time, ok, ok_notice, parse_local_input, respond, svg,
    Notice, Page, Section,
};
use crate::map::{world_map, Pin};
use crate::pages::{all_nodes, boot_form, PageQuery};
use crate::session::Viewer;
use crate::usage::{plots, Range};

/// Whether a node has missed its reports (flagged on the pages).
pub fn is_stale(n: &Node, now: i64) -> bool {
    n.status == NodeStatus::Down || n.last_contact.is_none_or(|t| now - t > NODE_LIVE_WINDOW)
}

fn status_badge(n: &Node, now: i64) -> Markup {
    html! {
        (badge(n.status.as_str()))
        @if n.status == NodeStatus::Up && is_stale(n, now) { " " (badge("stale")) }
    }
}

fn last_contact(n: &Node, now: i64) -> Markup {
    html! {
        @match n.last_contact {
            Some(t) => span title=(fmt_time(t)) { (fmt_ago(now, t)) },
            None => span.muted { "never" },
        }
    }
}

pub async fn overview(
    State(st): State<AppState>,
    viewer: Viewer,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    let now = slicelab_central::now();
    let (sites, _) = queries::sites(&st, None, queries::ALL).await?;
    let nodes = all_nodes(&st, &NodeFilter::default()).await?;
    let mut running: HashMap<i64, usize> = HashMap::new();
    let mut running_slices = BTreeSet::new();
    for n in &nodes {
        for s in queries::slivers_of_node(&st, n.id).await? {
            if s.state == SliverState::Running {
                *running.entry(n.id).or_default() += 1;
                running_slices.insert(s.slice);
            }
        }
    }
    let up = nodes.iter().filter(|n| n.status == NodeStatus::Up).count();
    let down = nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Down)
        .count();
    let pins: Vec<Pin> = sites
        .iter()
        .filter_map(|s| {
            let (lat, lon) = (s.latitude?, s.longitude?);
            let mine: Vec<&Node> = nodes.iter().filter(|n| n.site_id == s.id).collect();
            Some(Pin {
                label: s.login_base.clone(),
                href: format!("/sites/{}", s.login_base),
                lat,
                lon,
                up: mine.iter().filter(|n| n.status == NodeStatus::Up).count(),
                total: mine.len(),
            })
        })
        .collect();
    let plots = plots(
        &st,
        &UsageScope::Platform,
        Range::parse(q.range.as_deref()),
        "/",
    )
    .await?;
    let body = html! {
        h1 { "Platform overview" }
        p.sub { "Sites contribute machines (nodes); researchers' experiments (slices) run in isolated containers (slivers) on them." }
        div.stats {
            div.stat { b { (sites.len()) } span { "sites" } }
            div.stat { b { (nodes.len()) } span { "nodes" } }
            div.stat { b style="color:var(--ok)" { (up) } span { "nodes up" } }
            div.stat { b style="color:var(--bad)" { (down) } span { "nodes down" } }
            div.stat { b { (running_slices.len()) } span { "slices running" } }
            div.stat { b { (running.values().sum::<usize>()) } span { "slivers running" } }
        }
        div.grid {
            div.card {
                h2 { "Where the nodes are" }
                (svg(world_map(&pins)))
            }
            div.card {
                h2 { "Sites" }
                table {
                    thead { tr { th { "site" } th { "name" } th { "location" } th.num { "nodes up" } } }
                    tbody {
                        @for s in &sites {
                            @let mine: Vec<&Node> = nodes.iter().filter(|n| n.site_id == s.id).collect();
                            tr {
                                td { a href={ "/sites/" (s.login_base) } { (s.login_base) } }
                                td { (s.name) }
                                td { (location(s)) }
                                td.num { (mine.iter().filter(|n| n.status == NodeStatus::Up).count()) " / " (mine.len()) }
                            }
                        }
                    }
                }
            }
        }
        (plots)
        div.card {
            h2 { "Nodes" }
            (node_table(&nodes, &running, now))
        }
    };
    Ok(ok(Page::new("Overview", Section::Overview, &viewer)
        .notice(ok_notice(q.ok.as_deref()))
        .render(body)))
}

fn location(s: &Site) -> Markup {
    html! {
        @match (s.latitude, s.longitude) {
            (Some(lat), Some(lon)) => (format!("{lat:.2}, {lon:.2}")),
            _ => span.muted { "—" },
        }
    }
}

fn node_table(nodes: &[Node], running: &HashMap<i64, usize>, now: i64) -> Markup {
    html! {
        @if nodes.is_empty() { p.muted { "No nodes yet." } } @else {
            table {
                thead { tr { th { "node" } th { "site" } th { "status" } th { "boot state" } th { "last contact" } th.num { "slivers running" } } }
                tbody {
                    @for n in nodes {
                        tr class=[is_stale(n, now).then_some("stale")] {
                            td { a href={ "/nodes/" (n.hostname) } { (n.hostname) } }
                            td { a href={ "/sites/" (n.site) } { (n.site) } }
                            td { (status_badge(n, now)) }
                            td { (badge(n.boot_state.as_str())) }
                            td { (last_contact(n, now)) }
                            td.num { (running.get(&n.id).copied().unwrap_or(0)) }
                        }
                    }
                }
            }
        }
    }
}

pub async fn node_page(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    let m = render_node(&st, &viewer, &key, &q, ok_notice(q.ok.as_deref())).await?;
    Ok(ok(m))
}

/// The node page, also re-rendered with an error when its boot-state form is rejected.
pub async fn render_node(
    st: &AppState,
    viewer: &Viewer,
    key: &str,
    q: &PageQuery,
    notice: Option<Notice>,
) -> WebResult<Markup> {
    let now = slicelab_central::now();
    let n = queries::node(st, key).await?;
    let site = queries::site(st, &n.site_id.to_string()).await?;
    let slivers: Vec<Sliver> = queries::slivers_of_node(st, n.id).await?;
    let running = slivers
        .iter()
        .filter(|s| s.state == SliverState::Running)
        .count();
    let manage = viewer.actor.can_manage_node(n.site_id).is_ok();
    let base = format!("/nodes/{}", n.hostname);
    let plots = plots(
        st,
        &UsageScope::Node {
            id: n.id,
            hostname: n.hostname.clone(),
        },
        Range::parse(q.range.as_deref()),
        &base,
    )
    .await?;
    let body = html! {
        h1 { (n.hostname) }
        p.sub { "A node of the slicelab research testbed, at " a href={ "/sites/" (site.login_base) } { (site.name) } "." }
        div.grid {
            div.card id="what" {
                h2 { "What is this machine?" }
                p {
                    (n.hostname) " is one of the machines of " strong { "slicelab" } ", a shared research testbed "
                    "(like PlanetLab). " (site.name) " hosts it; researchers from many institutions run "
                    "network experiments on it, each in an isolated container."
                }
                p {
                    "Traffic from this machine is most likely sent by one of those experiments, not by "
                    (site.name) "'s own services. Every flow is attributed to the experiment that sent it: "
                    "if you saw unwanted traffic, find out who sent it and whom to contact."
                }
                p { a href={ "/lookup?node=" (crate::session::url_encode(&n.hostname)) } { strong { "Who sent this? →" } } }
            }
            div.card {
                h2 { "Status" }
                dl.kv {
                    dt { "status" } dd { (status_badge(&n, now)) }
                    dt { "boot state" } dd { (badge(n.boot_state.as_str())) }
                    dt { "last contact" } dd { (last_contact(&n, now)) }
                    dt { "site" } dd { a href={ "/sites/" (site.login_base) } { (site.login_base) } }
                    dt { "region" } dd { @if n.region.is_empty() { span.muted { "—" } } @else { (n.region) } }
                    dt { "capacity" } dd { (n.cpu_cores) " cores · " (n.mem_mb) " MB memory · " (n.disk_gb) " GB disk" }
                    dt { "slivers running" } dd id="running-count" { (running) }
                }
                @if manage {
                    h2 style="margin-top:1rem" { "Change boot state" }
                    (boot_form(viewer, &n, &base))
                }
            }
        }
        @if viewer.person.is_some() {
            div.card {
                h2 { "Slivers" }
                @if slivers.is_empty() { p.muted { "No slivers reported." } } @else {
                    table {
                        thead { tr { th { "slice" } th { "state" } th { "message" } th { "reported" } } }
                        tbody {
                            @for s in &slivers {
                                tr { td { (s.slice) } td { (badge(s.state.as_str())) } td.muted { (s.message) } td { (fmt_ago(now, s.updated)) } }
                            }
                        }
                    }
                }
            }
        }
        (plots)
    };
    Ok(Page::new(&n.hostname, Section::None, viewer)
        .notice(notice)
        .render(body))
}

pub async fn site_page(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    let now = slicelab_central::now();
    let site = queries::site(&st, &key).await?;
    let nodes = all_nodes(
        &st,
        &NodeFilter {
            site_id: Some(site.id),
            ..Default::default()
        },
    )
    .await?;
    let mut running = HashMap::new();
    for n in &nodes {
        let c = queries::slivers_of_node(&st, n.id)
            .await?
            .iter()
            .filter(|s| s.state == SliverState::Running)
            .count();
        running.insert(n.id, c);
    }
    let of_site = SliceFilter {
        site_id: Some(site.id),
        ..Default::default()
    };
    let one = queries::Paging {
        limit: 1,
        offset: 0,
    };
    let (_, slice_count) = queries::slices(&st, &of_site, one).await?;
    let base = format!("/sites/{}", site.login_base);
    let plots = plots(
        &st,
        &UsageScope::Site {
            id: site.id,
            login_base: site.login_base.clone(),
        },
        Range::parse(q.range.as_deref()),
        &base,
    )
    .await?;
    let manage = viewer.actor.can_manage_node(site.id).is_ok();
    let body = html! {
        h1 { (site.name) }
        p.sub { (site.login_base) @if !site.url.is_empty() { " · " a href=(site.url) rel="nofollow noopener" { (site.url) } } }
        @if manage { p { a href={ (base) "/manage" } { "Manage this site's persons, nodes and slices →" } } }
        div.stats {
            div.stat { b { (nodes.len()) } span { "nodes" } }
            div.stat { b { (nodes.iter().filter(|n| n.status == NodeStatus::Up).count()) } span { "nodes up" } }
            div.stat { b { (slice_count) } span { "slices" } }
            div.stat { b { (location(&site)) } span { "location" } }
        }
        div.card { h2 { "Nodes" } (node_table(&nodes, &running, now)) }
        (plots)
    };
    Ok(ok(Page::new(&site.name, Section::None, &viewer)
        .notice(ok_notice(q.ok.as_deref()))
        .render(body)))
}

/// A site's private page: its persons, nodes (with boot state forms) and slices. For admins and
/// the site's PIs and techs; others get 403.
pub async fn site_manage(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    viewer.person()?;
    let now = slicelab_central::now();
    let site = queries::site(&st, &key).await?;
    viewer.actor.can_manage_node(site.id).map_err(|_| {
        WebError::Forbidden(format!(
            "only admins and {}'s PIs and techs may see this page",
            site.login_base
        ))
    })?;
    let of_site = PersonFilter {
        site_id: Some(site.id),
        ..Default::default()
    };
    let (persons, _) = queries::persons(&st, &viewer.actor, of_site, queries::ALL).await?;
    let nodes = all_nodes(
        &st,
        &NodeFilter {
            site_id: Some(site.id),
            ..Default::default()
        },
    )
    .await?;
    let of_site = SliceFilter {
        site_id: Some(site.id),
        ..Default::default()
    };
    let (slices, _) = queries::slices(&st, &of_site, queries::ALL).await?;
    let here = format!("/sites/{}/manage", site.login_base);
    let body = html! {
        h1 { "Site " (site.login_base) }
        p.sub { (site.name) " · " a href={ "/sites/" (site.login_base) } { "public page" } }
        div.card {
            h2 { "Nodes" }
            table {
                thead { tr { th { "node" } th { "status" } th { "last contact" } th { "boot state" } } }
                tbody {
                    @for n in &nodes {
                        tr class=[is_stale(n, now).then_some("stale")] {
                            td { a href={ "/nodes/" (n.hostname) } { (n.hostname) } }
                            td { (status_badge(n, now)) }
                            td { (last_contact(n, now)) }
                            td { (boot_form(&viewer, n, &here)) }
                        }
                    }
                }
            }
        }
        div.grid {
            div.card {
                h2 { "Persons" }
                table {
                    thead { tr { th { "email" } th { "name" } th { "roles" } } }
                    tbody {
                        @for p in &persons {
                            tr {
                                td { (p.email) }
                                td { (p.first_name) " " (p.last_name) }
                                td { (p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) @if !p.enabled { " " (badge("disabled")) } }
                            }
                        }
                    }
                }
            }
            div.card {
                h2 { "Slices" }
                @if slices.is_empty() { p.muted { "No slices yet." } } @else {
                    table {
                        thead { tr { th { "slice" } th { "expires" } th.num { "nodes" } } }
                        tbody {
                            @for s in &slices {
                                tr {
                                    td { a href={ "/slices/" (s.name) } { (s.name) } @if !s.enabled { " " (badge("disabled")) } }
                                    td { (fmt_ago(now, s.expires)) }
                                    td.num { (s.nodes.len()) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ok(Page::new(&here, Section::Site, &viewer)
        .notice(ok_notice(q.ok.as_deref()))
        .render(body)))
}

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
        if let Err(wait) = st.take_lookup(peer.ip()) {
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

/// Shown on boot-state forms: what each state means.
pub fn boot_state_help(b: BootState) -> &'static str {
    match b {
        BootState::Boot => "normal: slivers run",
        BootState::Safeboot => "slivers stopped, node manager stays reachable",
        BootState::Reinstall => "being reinstalled, slivers stopped",
        BootState::Disabled => "out of service",
    }
}

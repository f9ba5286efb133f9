//! Pages anyone may read: the platform overview, node pages and site pages (the "who sent
//! this?" lookup is `pages::lookup`). Private parts appear only for viewers the policy allows. Read
//! through `slicelab_central::queries`.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};
use slicelab_central::queries::{self, NodeFilter, PersonFilter, SliceFilter, UsageScope};
use slicelab_central::state::AppState;
use slicelab_model::sliver::Sliver;
use slicelab_model::time::NODE_LIVE_WINDOW;
use slicelab_model::{BootState, Node, NodeStatus, Site, SliverState};

use crate::error::{WebError, WebResult};
use crate::layout::{badge, fmt_ago, fmt_time, ok, ok_notice, svg, Notice, Page, Section};
use crate::map::{world_map, Pin};
use crate::pages::{all_nodes, boot_form, bwlimit_form, PageQuery};
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

/// What the site's `site` images use of its image quota, in the quota's unit (MiB).
fn image_use(s: &Site) -> String {
    let used = s.image_used_bytes as f64 / f64::from(1 << 20);
    format!("{used:.1} of {} MiB", s.image_quota_mb)
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
                    dt title="the site's cap on the total egress of the slivers, shared by their net_share" { "bandwidth cap" }
                    dd id="bwlimit" { @match n.bwlimit { Some(b) => (slicelab_model::tags::format_rate(b)), None => span.muted { "none" } } }
                }
                @if manage {
                    h2 style="margin-top:1rem" { "Change boot state" }
                    (boot_form(viewer, &n, &base))
                    h2 style="margin-top:1rem" { "Bandwidth cap" }
                    (bwlimit_form(viewer, &n, &base))
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
            div.stat title={ (site.image_used_bytes) " bytes of " (site.image_quota_mb) " MiB" } {
                b { (image_use(&site)) } span { "site images / quota" }
            }
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

/// Shown on boot-state forms: what each state means.
pub fn boot_state_help(b: BootState) -> &'static str {
    match b {
        BootState::Boot => "normal: slivers run",
        BootState::Safeboot => "slivers stopped, node manager stays reachable",
        BootState::Reinstall => "being reinstalled, slivers stopped",
        BootState::Disabled => "out of service",
    }
}

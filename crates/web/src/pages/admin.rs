//! Mission control (admins): node health with stale nodes flagged, boot states, slices that can
//! be disabled everywhere in one action, and the event log. Read through
//! `slicelab_central::queries`; the forms post to the slice and node handlers.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use slicelab_central::queries::{self, EventFilter, NodeFilter, Paging, SliceFilter};
use slicelab_central::state::AppState;
use slicelab_model::SliverState;

use crate::error::WebResult;
use crate::layout::{badge, fmt_ago, fmt_time, ok, ok_notice, Page, Section};
use crate::pages::public::is_stale;
use crate::pages::{all_nodes, boot_form, PageQuery};
use crate::session::Viewer;

fn pct(used: u64, total: u64) -> String {
    if total == 0 {
        "—".into()
    } else {
        format!("{:.0}%", used as f64 * 100.0 / total as f64)
    }
}

pub async fn mission_control(
    State(st): State<AppState>,
    viewer: Viewer,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    viewer.person()?;
    viewer.actor.require_admin("open mission control")?;
    let now = slicelab_central::now();
    let nodes = all_nodes(&st, &NodeFilter::default()).await?;
    let mut rows = Vec::with_capacity(nodes.len());
    for n in &nodes {
        let health = queries::node_health(&st, n.id).await?;
        let slivers = queries::slivers_of_node(&st, n.id).await?;
        let running = slivers
            .iter()
            .filter(|s| s.state == SliverState::Running)
            .count();
        rows.push((n, health, slivers.len(), running));
    }
    let stale = nodes.iter().filter(|n| is_stale(n, now)).count();
    let (slices, _) = queries::slices(&st, &SliceFilter::default(), queries::ALL).await?;
    let mut running_by_slice: HashMap<i64, usize> = HashMap::new();
    for s in &slices {
        let c = queries::slivers_of_slice(&st, s.id)
            .await?
            .iter()
            .filter(|x| x.state == SliverState::Running)
            .count();
        running_by_slice.insert(s.id, c);
    }
    let csrf = viewer.csrf();
    let body = html! {
        h1 { "Mission control" }
        p.sub { "Node health as last reported; a node is flagged stale when it missed its reports." }
        div.stats {
            div.stat { b { (nodes.len()) } span { "nodes" } }
            div.stat { b style="color:var(--bad)" { (stale) } span { "stale or down" } }
            div.stat { b { (slices.len()) } span { "slices" } }
            div.stat { b { (slices.iter().filter(|s| !s.enabled).count()) } span { "slices disabled" } }
        }
        div.card {
            h2 { "Node health" }
            table id="health" {
                thead { tr {
                    th { "node" } th { "status" } th { "last contact" } th.num { "load" } th.num { "memory" }
                    th.num { "disk" } th.num { "slivers" } th { "boot state" }
                } }
                tbody {
                    @for (n, h, total, running) in &rows {
                        tr class=[is_stale(n, now).then_some("stale")] data-node=(n.hostname) {
                            td { a href={ "/nodes/" (n.hostname) } { (n.hostname) } br; span.muted { (n.site) } }
                            td { (badge(n.status.as_str())) @if is_stale(n, now) { " " (badge("stale")) } }
                            td { @match n.last_contact { Some(t) => span title=(fmt_time(t)) { (fmt_ago(now, t)) }, None => span.muted { "never" } } }
                            @match h {
                                Some(h) => {
                                    td.num { (format!("{:.2}", h.load1)) }
                                    td.num title={ (h.mem_used_mb) " / " (h.mem_total_mb) " MB" } { (pct(h.mem_used_mb, h.mem_total_mb)) }
                                    td.num title={ (h.disk_used_mb) " / " (h.disk_total_mb) " MB" } { (pct(h.disk_used_mb, h.disk_total_mb)) }
                                }
                                None => { td.num.muted { "—" } td.num.muted { "—" } td.num.muted { "—" } }
                            }
                            td.num.slivers { (running) " running / " (total) }
                            td { (boot_form(&viewer, n, "/admin")) }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "Slices" }
            table id="slices" {
                thead { tr { th { "slice" } th { "site" } th { "expires" } th.num { "slivers running" } th { "" } } }
                tbody {
                    @for s in &slices {
                        tr {
                            td { a href={ "/slices/" (s.name) } { (s.name) } " " @if !s.enabled { (badge("disabled")) } }
                            td { (s.site) }
                            td { (fmt_ago(now, s.expires)) }
                            td.num { (running_by_slice.get(&s.id).copied().unwrap_or(0)) }
                            td {
                                form.inline method="post" action={ "/slices/" (s.name) "/enabled" } data-confirm=[s.enabled.then(|| format!("Disable {} everywhere?", s.name))] {
                                    input type="hidden" name="csrf" value=(csrf);
                                    @if s.enabled {
                                        input type="hidden" name="enabled" value="false";
                                        button.small.danger type="submit" { "Disable everywhere" }
                                    } @else {
                                        input type="hidden" name="enabled" value="true";
                                        button.small type="submit" { "Enable" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        p { a href="/admin/events" { "Event log →" } }
    };
    Ok(ok(Page::new("Mission control", Section::Admin, &viewer)
        .notice(ok_notice(q.ok.as_deref()))
        .refresh(30)
        .render(body)))
}

const EVENTS_PER_PAGE: i64 = 100;

pub async fn events(
    State(st): State<AppState>,
    viewer: Viewer,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    viewer.person()?;
    viewer.actor.require_admin("read the whole event log")?;
    let page = q.page.unwrap_or(0).clamp(0, 100_000);
    let f = EventFilter {
        object: q.object.clone().filter(|s| !s.trim().is_empty()),
        ..Default::default()
    };
    let paging = Paging {
        limit: EVENTS_PER_PAGE,
        offset: page * EVENTS_PER_PAGE,
    };
    let (items, total) = queries::events(&st, &viewer.actor, f, paging).await?;
    let object = q.object.clone().unwrap_or_default();
    let more = (page + 1) * EVENTS_PER_PAGE < total;
    let body = html! {
        h1 { "Event log" }
        p.sub { (total) " events, newest first." }
        form.row method="get" action="/admin/events" {
            label { "Object (name or id)" input type="text" name="object" value=(object); }
            button.ghost type="submit" { "Filter" }
        }
        div.card style="margin-top:1rem" {
            table id="events" {
                thead { tr { th { "time" } th { "actor" } th { "action" } th { "object" } th { "detail" } } }
                tbody {
                    @for e in &items {
                        tr {
                            td { (fmt_time(e.time)) }
                            td { (e.actor) }
                            td { code { (e.action) } }
                            td { (e.object_type) " " strong { (e.object_name) } }
                            td.muted style="max-width:420px;overflow-wrap:anywhere" { (e.detail.to_string()) }
                        }
                    }
                }
            }
            p {
                @if page > 0 { a href={ "/admin/events?page=" (page - 1) "&object=" (crate::session::url_encode(&object)) } { "← newer" } " " }
                @if more { a href={ "/admin/events?page=" (page + 1) "&object=" (crate::session::url_encode(&object)) } { "older →" } }
            }
        }
    };
    Ok(ok(
        Page::new("Event log", Section::Events, &viewer).render(body)
    ))
}

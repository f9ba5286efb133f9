//! Researchers' pages: my slices, a slice (its slivers per node, nodes, persons, expiry, tags),
//! its usage plots, and the create-slice form. The forms of a slice's page are in
//! `pages::slice_forms`; each calls one of central's operations (`slicelab_central::ops`).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};
use slicelab_central::ops;
use slicelab_central::queries::{self, NodeFilter, SliceFilter, UsageScope};
use slicelab_central::state::AppState;
use slicelab_model::tags::ALL_TAGS;
use slicelab_model::time::{DAY, SLICE_MAX_AHEAD};
use slicelab_model::{Slice, SliceCreate, SliverState};

use crate::error::{WebError, WebResult};
use crate::layout::{badge, fmt_ago, fmt_time, ok, ok_notice, respond, Notice, Page, Section};
use crate::pages::{all_nodes, PageQuery};
use crate::session::{see_other, url_encode, FormData, Viewer};
use crate::usage::{plots, Range};

/// The slice and whether the viewer may use it (members, its site's PIs, admins); else 403.
async fn usable_slice(st: &AppState, viewer: &Viewer, key: &str) -> WebResult<(Slice, bool)> {
    viewer.person()?;
    let (sl, member) = ops::slice_and_member(st, &viewer.actor, key).await?;
    viewer.actor.can_use_slice(sl.site_id, member).map_err(|_| {
        WebError::Forbidden(format!(
            "slice {} belongs to another site: only its persons, its site's PIs and admins may see it",
            sl.name
        ))
    })?;
    Ok((sl, member))
}

/// Values typed into the create-slice form, kept when it is shown again with an error.
#[derive(Debug, Default)]
struct CreateValues {
    name: String,
    description: String,
    url: String,
}

pub async fn my_slices(
    State(st): State<AppState>,
    viewer: Viewer,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    let m = render_my(
        &st,
        &viewer,
        ok_notice(q.ok.as_deref()),
        &CreateValues::default(),
    )
    .await?;
    Ok(ok(m))
}

async fn render_my(
    st: &AppState,
    viewer: &Viewer,
    notice: Option<Notice>,
    values: &CreateValues,
) -> WebResult<Markup> {
    let me = viewer.person()?;
    let now = slicelab_central::now();
    let mut slices: BTreeMap<String, Slice> = BTreeMap::new();
    let filters: Vec<SliceFilter> = if viewer.actor.is_admin() {
        vec![SliceFilter::default()]
    } else {
        let mut f = vec![SliceFilter {
            person_id: Some(me.id),
            ..Default::default()
        }];
        for (s, _) in viewer.sites() {
            if viewer.actor.is_pi_of(s) {
                f.push(SliceFilter {
                    site_id: Some(s),
                    ..Default::default()
                });
            }
        }
        f
    };
    for f in &filters {
        for s in queries::slices(st, f, queries::ALL).await?.0 {
            slices.insert(s.name.clone(), s);
        }
    }
    let mut running: HashMap<i64, usize> = HashMap::new();
    for s in slices.values() {
        let c = queries::slivers_of_slice(st, s.id)
            .await?
            .iter()
            .filter(|x| x.state == SliverState::Running)
            .count();
        running.insert(s.id, c);
    }
    let pi_sites: Vec<String> = viewer
        .sites()
        .into_iter()
        .filter(|(id, _)| viewer.actor.is_pi_of(*id))
        .map(|(_, b)| b)
        .collect();
    let can_create = viewer.actor.is_admin() || !pi_sites.is_empty();
    let example = pi_sites
        .first()
        .map(|b| format!("{b}_experiment"))
        .unwrap_or_else(|| "site_experiment".into());
    let body = html! {
        h1 { "My slices" }
        p.sub { "Signed in as " (me.email) " (" (me.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) ")" }
        div.card {
            @if slices.is_empty() { p.muted { "You are in no slice yet." } } @else {
                table id="my-slices" {
                    thead { tr { th { "slice" } th { "site" } th { "expires" } th.num { "nodes" } th.num { "slivers running" } th { "" } } }
                    tbody {
                        @for s in slices.values() {
                            tr {
                                td { a href={ "/slices/" (s.name) } { (s.name) } }
                                td { (s.site) }
                                td title=(fmt_time(s.expires)) { (fmt_ago(now, s.expires)) }
                                td.num { (s.nodes.len()) }
                                td.num { (running.get(&s.id).copied().unwrap_or(0)) }
                                td { @if !s.enabled { (badge("disabled")) } }
                            }
                        }
                    }
                }
            }
        }
        @if can_create {
            div.card {
                h2 { "Create a slice" }
                p.muted { "The name is your site's login base, an underscore and a suffix of lowercase letters, digits and _, e.g. " code { (example) } ". A new slice lives 4 weeks unless renewed." }
                form.stack method="post" action="/slices" id="create-slice" {
                    input type="hidden" name="csrf" value=(viewer.csrf());
                    label { "Name" input type="text" name="name" value=(values.name) placeholder=(example) required; }
                    label { "Description" textarea name="description" rows="2" { (values.description) } }
                    label { "URL (optional)" input type="text" name="url" value=(values.url); }
                    button type="submit" { "Create slice" }
                }
            }
        }
    };
    Ok(Page::new("My slices", Section::Mine, viewer)
        .notice(notice)
        .render(body))
}

/// POST /slices
pub async fn create(
    State(st): State<AppState>,
    viewer: Viewer,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let c = SliceCreate {
        name: form.get("name").trim().to_string(),
        description: form.get("description").trim().to_string(),
        url: form.get("url").trim().to_string(),
    };
    let values = CreateValues {
        name: c.name.clone(),
        description: c.description.clone(),
        url: c.url.clone(),
    };
    match ops::slices::create(&st, &viewer.actor, &c)
        .await
        .map_err(WebError::from)
    {
        Ok(sl) => Ok(see_other(&format!(
            "/slices/{}?ok=created",
            url_encode(&sl.name)
        ))),
        Err(e @ (WebError::BadRequest(_) | WebError::Conflict(_))) => {
            let status = e.status();
            let m = render_my(
                &st,
                &viewer,
                Some(Notice::Error(e.public_message())),
                &values,
            )
            .await?;
            Ok(respond(status, m))
        }
        Err(e) => Err(e),
    }
}

pub async fn slice_page(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    let m = render_slice(&st, &viewer, &key, ok_notice(q.ok.as_deref())).await?;
    Ok(ok(m))
}

pub(crate) async fn render_slice(
    st: &AppState,
    viewer: &Viewer,
    key: &str,
    notice: Option<Notice>,
) -> WebResult<Markup> {
    let (sl, member) = usable_slice(st, viewer, key).await?;
    let me = viewer.person()?;
    let now = slicelab_central::now();
    let admin_slice = viewer.actor.can_admin_slice(sl.site_id).is_ok();
    let slivers: HashMap<String, slicelab_model::sliver::Sliver> =
        queries::slivers_of_slice(st, sl.id)
            .await?
            .into_iter()
            .map(|s| (s.node.clone(), s))
            .collect();
    let nodes = all_nodes(st, &NodeFilter::default()).await?;
    let node_by_host: HashMap<&str, &slicelab_model::Node> =
        nodes.iter().map(|n| (n.hostname.as_str(), n)).collect();
    let free: Vec<&slicelab_model::Node> = nodes
        .iter()
        .filter(|n| !sl.nodes.contains(&n.hostname))
        .collect();
    let slice_tags = queries::slice_tags(st, &sl).await?;
    let limit_hits = queries::slice_events(st, &sl, "sliver.limit_hit", 10).await?;
    let csrf = viewer.csrf();
    let base = format!("/slices/{}", sl.name);
    let body = html! {
        h1 { (sl.name) " " @if sl.enabled { (badge("enabled")) } @else { (badge("disabled")) } }
        p.sub { "Slice of site " a href={ "/sites/" (sl.site) } { (sl.site) } @if member { " · you are a member" } }
        @if !sl.enabled {
            div.notice.error role="alert" { "An admin disabled this slice: its slivers are stopped on every node until it is enabled again." }
        }
        @if !sl.description.is_empty() { p { (sl.description) } }
        div.card {
            div style="display:flex;justify-content:space-between;align-items:baseline;flex-wrap:wrap" {
                h2 { "Slivers" }
                span { a href=(base) { "Refresh" } " · " a href={ (base) "/usage" } id="usage-link" { "Usage plots →" } }
            }
            @if sl.nodes.is_empty() { p.muted { "The slice has no nodes yet: add some below." } } @else {
                table id="slivers" {
                    thead { tr { th { "node" } th { "node status" } th { "sliver" } th { "message" } th { "reported" } th { "" } } }
                    tbody {
                        @for h in &sl.nodes {
                            @let s = slivers.get(h);
                            tr data-node=(h) {
                                td { a href={ "/nodes/" (h) } { (h) } }
                                td { @if let Some(n) = node_by_host.get(h.as_str()) { (badge(n.status.as_str())) " " (badge(n.boot_state.as_str())) } }
                                td.state { @match s { Some(s) => (badge(s.state.as_str())), None => span.badge { "pending" } } }
                                td.muted { @if let Some(s) = s { (s.message) } }
                                td { @if let Some(s) = s { (fmt_ago(now, s.updated)) } }
                                td {
                                    form.inline method="post" action={ (base) "/nodes/" (h) "/remove" } data-confirm={ "Remove " (h) " from " (sl.name) "? Its sliver will be destroyed." } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button.small.ghost type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !limit_hits.is_empty() {
                h3 { "Limits hit" }
                ul id="limit-hits" {
                    @for e in &limit_hits {
                        li {
                            @let limit = e.detail["limit"].as_str().unwrap_or("?");
                            (fmt_ago(now, e.time)) ": the "
                            strong { (limit) }
                            " limit on " (e.detail["node"].as_str().unwrap_or("?"))
                            " (tag " code { (limit_tag(limit)) } ")"
                        }
                    }
                }
            }
            @if !free.is_empty() {
                form method="post" action={ (base) "/nodes" } id="add-nodes" {
                    input type="hidden" name="csrf" value=(csrf);
                    h2 style="margin-top:1rem" { "Add nodes" }
                    div.checks {
                        @for n in &free {
                            label { input type="checkbox" name="node" value=(n.hostname); (n.hostname) " " (badge(n.status.as_str()))
                                @if let Some(a) = &n.authority { " " span.peer title="a peer authority's node: it decides" { "authority " (a) } } }
                        }
                    }
                    button type="submit" { "Add selected nodes" }
                }
            }
        }
        div.grid {
            div.card {
                h2 { "Expiry" }
                p { "Expires " strong { (fmt_time(sl.expires)) } " (" (fmt_ago(now, sl.expires)) ")." }
                form.row method="post" action={ (base) "/renew" } id="renew" {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Renew to this many days from now" input type="number" name="days" value="28" min="1" max=(SLICE_MAX_AHEAD / DAY) required; }
                    button type="submit" { "Renew" }
                }
            }
            div.card {
                h2 { "Persons" }
                table {
                    tbody {
                        @for p in &sl.persons {
                            tr {
                                td { (p) }
                                td {
                                    @if admin_slice || *p == me.email {
                                        form.inline method="post" action={ (base) "/persons/" (p) "/remove" } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button.small.ghost type="submit" { @if *p == me.email { "Leave" } @else { "Remove" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if admin_slice {
                    form.row method="post" action={ (base) "/persons" } id="add-person" {
                        input type="hidden" name="csrf" value=(csrf);
                        label { "Add person (email)" input type="email" name="email" required; }
                        button type="submit" { "Add" }
                    }
                }
            }
        }
        div.card {
            h2 { "Tags" }
            @if slice_tags.is_empty() { p.muted { "No tags: the slice gets the platform defaults." } } @else {
                table {
                    thead { tr { th { "tag" } th { "value" } th { "node" } th { "" } } }
                    tbody {
                        @for t in &slice_tags {
                            tr {
                                td { code { (t.name.as_str()) } }
                                td { code { (t.value) } }
                                td { (t.node.clone().unwrap_or_else(|| "all nodes".into())) }
                                td {
                                    form.inline method="post" action={ (base) "/tags/" (t.name.as_str()) "/remove" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        @if let Some(n) = &t.node { input type="hidden" name="node" value=(n); }
                                        button.small.ghost type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.row method="post" action={ (base) "/tags" } id="set-tag" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Tag" select name="tag" {
                    @for t in ALL_TAGS {
                        @if !t.is_resource() || admin_slice { option value=(t.as_str()) { (t.as_str()) } }
                    }
                } }
                label { "Value" input type="text" name="value" required; }
                label { "Node" select name="node" {
                    option value="" { "all nodes" }
                    @for h in &sl.nodes { option value=(h) { (h) } }
                } }
                button type="submit" { "Set tag" }
            }
            @if !admin_slice { p.muted { "Resource tags (CPU, memory, disk, bandwidth) are set by the site's PIs and admins." } }
        }
        @if viewer.actor.is_admin() {
            div.card id="admin-slice" {
                h2 { "Admin" }
                form.inline method="post" action={ (base) "/enabled" } data-confirm=[sl.enabled.then(|| format!("Disable {} everywhere? All its slivers stop within seconds.", sl.name))] {
                    input type="hidden" name="csrf" value=(csrf);
                    @if sl.enabled {
                        input type="hidden" name="enabled" value="false";
                        button.danger type="submit" { "Disable this slice everywhere" }
                    } @else {
                        input type="hidden" name="enabled" value="true";
                        button type="submit" { "Enable this slice again" }
                    }
                }
            }
        }
    };
    Ok(Page::new(&sl.name, Section::Mine, viewer)
        .notice(notice)
        .render(body))
}

/// GET /slices/{slice}/usage
pub async fn usage_page(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    let (sl, _) = usable_slice(&st, &viewer, &key).await?;
    let base = format!("/slices/{}/usage", sl.name);
    let plots = plots(
        &st,
        &UsageScope::Slice {
            id: sl.id,
            name: sl.name.clone(),
        },
        Range::parse(q.range.as_deref()),
        &base,
    )
    .await?;
    let body = html! {
        h1 { "Usage of " (sl.name) }
        p.sub { a href={ "/slices/" (sl.name) } { "← back to the slice" } " · summed over its slivers on " (sl.nodes.len()) " nodes" }
        (plots)
    };
    Ok(ok(Page::new(&base, Section::Mine, &viewer).render(body)))
}

/// The slice tag that raises a limit named in a `sliver.limit_hit` event.
fn limit_tag(limit: &str) -> &'static str {
    match limit {
        "memory" => "mem_max",
        "pids" => "pids_max",
        "disk" => "disk_max",
        _ => "?",
    }
}

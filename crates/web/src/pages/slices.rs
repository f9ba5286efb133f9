//! Researchers' pages: my slices, a slice (its slivers per node, nodes, persons, expiry, tags),
//! its usage plots, and the forms that change it.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};
use slicelab_central::state::AppState;
use slicelab_model::policy::check_renewal;
use slicelab_model::tags::ALL_TAGS;
use slicelab_model::time::{DAY, SLICE_DEFAULT_LIFETIME, SLICE_MAX_AHEAD};
use slicelab_model::{names, tags, Role, Slice, SliceCreate, SliceUpdate, SliverState, TagName};
use slicelab_store::{NodeFilter, Paging, SliceFilter, StoreError, UsageScope};

use crate::error::{WebError, WebResult};
use crate::layout::{badge, fmt_ago, fmt_time, ok, ok_notice, respond, Notice, Page, Section};
use crate::pages::{all_nodes, PageQuery};
use crate::session::{see_other, url_encode, FormData, Viewer};
use crate::usage::{plots, Range};

/// The slice and whether the viewer may use it (members, its site's PIs, admins); else 403.
async fn usable_slice(st: &AppState, viewer: &Viewer, key: &str) -> WebResult<(Slice, bool)> {
    let me = viewer.person()?;
    let sl = st.store.slice(key).await?;
    let member = st.store.is_slice_member(sl.id, me.person.id).await?;
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
    let all = Paging {
        limit: 1000,
        offset: 0,
    };
    let mut slices: BTreeMap<String, Slice> = BTreeMap::new();
    let filters: Vec<SliceFilter> = if viewer.actor.is_admin() {
        vec![SliceFilter::default()]
    } else {
        let mut f = vec![SliceFilter {
            person_id: Some(me.person.id),
            ..Default::default()
        }];
        for s in &me.site_ids {
            if viewer.actor.is_pi_of(*s) {
                f.push(SliceFilter {
                    site_id: Some(*s),
                    ..Default::default()
                });
            }
        }
        f
    };
    for f in &filters {
        for s in st.store.list_slices(f, all).await?.0 {
            slices.insert(s.name.clone(), s);
        }
    }
    let mut running: HashMap<i64, usize> = HashMap::new();
    for s in slices.values() {
        let c = st
            .store
            .slivers_of_slice(s.id)
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
        p.sub { "Signed in as " (me.person.email) " (" (me.person.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) ")" }
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
    match create_slice(&st, &viewer, &c).await {
        Ok(sl) => Ok(see_other(&format!(
            "/slices/{}?ok=created",
            url_encode(&sl.name)
        ))),
        Err(
            e @ (WebError::BadRequest(_)
            | WebError::Conflict(_)
            | WebError::Store(StoreError::Conflict(_))),
        ) => {
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

async fn create_slice(st: &AppState, viewer: &Viewer, c: &SliceCreate) -> WebResult<Slice> {
    let base = names::slice_login_base(&c.name).ok_or_else(|| {
        WebError::BadRequest(format!(
            "name: {:?} must be <login_base>_<suffix>, e.g. mysite_experiment",
            c.name
        ))
    })?;
    let site = match st.store.site(base).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => {
            return Err(WebError::BadRequest(format!(
                "name: {:?} must start with a site's login base; there is no site {base:?}",
                c.name
            )))
        }
        Err(e) => return Err(e.into()),
    };
    viewer.actor.can_create_slice(site.id)?;
    c.validate(&site.login_base)?;
    if !site.enabled {
        return Err(WebError::Conflict(format!(
            "site {} is disabled",
            site.login_base
        )));
    }
    let now = slicelab_central::now();
    Ok(st
        .store
        .create_slice(
            &viewer.label(),
            now,
            c,
            site.id,
            site.max_slices,
            now + SLICE_DEFAULT_LIFETIME,
        )
        .await?)
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

async fn render_slice(
    st: &AppState,
    viewer: &Viewer,
    key: &str,
    notice: Option<Notice>,
) -> WebResult<Markup> {
    let (sl, member) = usable_slice(st, viewer, key).await?;
    let me = viewer.person()?;
    let now = slicelab_central::now();
    let admin_slice = viewer.actor.can_admin_slice(sl.site_id).is_ok();
    let slivers: HashMap<String, slicelab_model::sliver::Sliver> = st
        .store
        .slivers_of_slice(sl.id)
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
    let slice_tags = st.store.slice_tags(&sl).await?;
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
            @if !free.is_empty() {
                form method="post" action={ (base) "/nodes" } id="add-nodes" {
                    input type="hidden" name="csrf" value=(csrf);
                    h2 style="margin-top:1rem" { "Add nodes" }
                    div.checks {
                        @for n in &free {
                            label { input type="checkbox" name="node" value=(n.hostname); (n.hostname) " " (badge(n.status.as_str())) }
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
                                    @if admin_slice || *p == me.person.email {
                                        form.inline method="post" action={ (base) "/persons/" (p) "/remove" } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button.small.ghost type="submit" { @if *p == me.person.email { "Leave" } @else { "Remove" } }
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

/// Ends a slice form: redirect with a success code, or the slice page again with the error
/// (bad input, conflicts) so the person sees what to fix. Other errors become error pages.
async fn finish(
    st: &AppState,
    viewer: &Viewer,
    key: &str,
    r: WebResult<&'static str>,
) -> WebResult<Response> {
    match r {
        Ok(code) => Ok(see_other(&format!("/slices/{}?ok={code}", url_encode(key)))),
        Err(
            e @ (WebError::BadRequest(_)
            | WebError::Conflict(_)
            | WebError::Store(StoreError::Conflict(_))),
        ) => {
            let status = e.status();
            let m = render_slice(st, viewer, key, Some(Notice::Error(e.public_message()))).await?;
            Ok(respond(status, m))
        }
        Err(e) => Err(e),
    }
}

async fn resolve_node(st: &AppState, name: &str) -> WebResult<(i64, String)> {
    match st.store.node(name).await {
        Ok(n) => Ok((n.id, n.hostname)),
        Err(StoreError::NotFound(_)) => Err(WebError::BadRequest(format!("unknown node {name:?}"))),
        Err(e) => Err(e.into()),
    }
}

/// POST /slices/{slice}/nodes
pub async fn add_nodes(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let (sl, _) = usable_slice(&st, &viewer, &key).await?;
    let r = async {
        let names = form.all("node");
        if names.is_empty() {
            return Err(WebError::BadRequest(
                "choose at least one node to add".into(),
            ));
        }
        let mut nodes = Vec::new();
        for n in names {
            nodes.push(resolve_node(&st, n.trim()).await?);
        }
        slicelab_central::broker::admit_nodes(&st, &sl, &nodes).await?;
        st.store
            .add_slice_nodes(&viewer.label(), slicelab_central::now(), &sl, &nodes)
            .await?;
        st.changed_nodes(nodes.iter().map(|(_, h)| h));
        Ok("nodes")
    }
    .await;
    finish(&st, &viewer, &sl.name, r).await
}

/// POST /slices/{slice}/nodes/{node}/remove
pub async fn remove_node(
    State(st): State<AppState>,
    viewer: Viewer,
    Path((key, node)): Path<(String, String)>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let (sl, _) = usable_slice(&st, &viewer, &key).await?;
    let r = async {
        let (id, host) = resolve_node(&st, &node).await?;
        match st
            .store
            .remove_slice_node(&viewer.label(), slicelab_central::now(), &sl, (id, &host))
            .await
        {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(WebError::BadRequest(format!("{host} is not in the slice")))
            }
            Err(e) => return Err(e.into()),
        }
        st.changed_nodes([&host]);
        Ok("node_removed")
    }
    .await;
    finish(&st, &viewer, &sl.name, r).await
}

/// POST /slices/{slice}/persons: the slice's site PIs and admins.
pub async fn add_person(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let (sl, _) = usable_slice(&st, &viewer, &key).await?;
    viewer.actor.can_admin_slice(sl.site_id)?;
    let r = async {
        let email = form.get("email").trim();
        names::email(email)?;
        let p = match st.store.person(email).await {
            Ok(p) => p,
            Err(StoreError::NotFound(_)) => {
                return Err(WebError::BadRequest(format!(
                    "there is no person {email:?}"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        st.store
            .add_slice_persons(
                &viewer.label(),
                slicelab_central::now(),
                &sl,
                &[(p.person.id, p.person.email.clone())],
            )
            .await?;
        st.changed_nodes(&sl.nodes);
        Ok("persons")
    }
    .await;
    finish(&st, &viewer, &sl.name, r).await
}

/// POST /slices/{slice}/persons/{person}/remove: PIs and admins, or the person leaving.
pub async fn remove_person(
    State(st): State<AppState>,
    viewer: Viewer,
    Path((key, person)): Path<(String, String)>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let (sl, _) = usable_slice(&st, &viewer, &key).await?;
    let p = st.store.person(&person).await?;
    if viewer.actor.person_id() != Some(p.person.id) {
        viewer.actor.can_admin_slice(sl.site_id)?;
    }
    let r = async {
        match st
            .store
            .remove_slice_person(
                &viewer.label(),
                slicelab_central::now(),
                &sl,
                (p.person.id, &p.person.email),
            )
            .await
        {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(WebError::BadRequest(format!(
                    "{} is not in the slice",
                    p.person.email
                )))
            }
            Err(e) => return Err(e.into()),
        }
        st.changed_nodes(&sl.nodes);
        Ok("person_removed")
    }
    .await;
    if viewer.actor.person_id() == Some(p.person.id)
        && r.is_ok()
        && !viewer.actor.is_admin()
        && !viewer.actor.has_role_at(Role::Pi, sl.site_id)
    {
        // Having left, the person may no longer see the slice.
        return Ok(see_other("/my"));
    }
    finish(&st, &viewer, &sl.name, r).await
}

/// POST /slices/{slice}/renew
pub async fn renew(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let (sl, _) = usable_slice(&st, &viewer, &key).await?;
    let r = async {
        let raw = form.get("days").trim();
        let days: i64 = raw
            .parse()
            .map_err(|_| WebError::BadRequest(format!("days: {raw:?} is not a whole number")))?;
        if days < 1 {
            return Err(WebError::BadRequest(
                "days: renew by at least one day".into(),
            ));
        }
        let now = slicelab_central::now();
        let expires = check_renewal(now, now.saturating_add(days.saturating_mul(DAY)))?;
        st.store
            .renew_slice(&viewer.label(), now, &sl, expires)
            .await?;
        st.changed_nodes(&sl.nodes);
        Ok("renewed")
    }
    .await;
    finish(&st, &viewer, &sl.name, r).await
}

/// POST /slices/{slice}/tags
pub async fn set_tag(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let (sl, member) = usable_slice(&st, &viewer, &key).await?;
    let r = async {
        let tag = TagName::parse(form.get("tag").trim())?;
        viewer.actor.can_set_tag(tag, sl.site_id, member)?;
        let value = tags::validate(tag, form.get("value"))?;
        let node = match form.opt("node") {
            Some(n) => Some(resolve_node(&st, n).await?),
            None => None,
        };
        slicelab_central::broker::admit_tag(&st, &sl, tag, &value, node.as_ref().map(|n| n.0))
            .await?;
        st.store
            .set_slice_tag(
                &viewer.label(),
                slicelab_central::now(),
                &sl,
                tag,
                &value,
                node.as_ref().map(|(id, h)| (*id, h.as_str())),
            )
            .await?;
        st.changed_nodes(&sl.nodes);
        Ok("tag")
    }
    .await;
    finish(&st, &viewer, &sl.name, r).await
}

/// POST /slices/{slice}/tags/{tag}/remove
pub async fn remove_tag(
    State(st): State<AppState>,
    viewer: Viewer,
    Path((key, tag)): Path<(String, String)>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let (sl, member) = usable_slice(&st, &viewer, &key).await?;
    let r = async {
        let tag = TagName::parse(&tag)?;
        viewer.actor.can_set_tag(tag, sl.site_id, member)?;
        let node = match form.opt("node") {
            Some(n) => Some(resolve_node(&st, n).await?),
            None => None,
        };
        match st
            .store
            .delete_slice_tag(
                &viewer.label(),
                slicelab_central::now(),
                &sl,
                tag,
                node.as_ref().map(|(id, h)| (*id, h.as_str())),
            )
            .await
        {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(WebError::BadRequest(format!("the slice has no tag {tag}")))
            }
            Err(e) => return Err(e.into()),
        }
        st.changed_nodes(&sl.nodes);
        Ok("tag_removed")
    }
    .await;
    finish(&st, &viewer, &sl.name, r).await
}

/// POST /slices/{slice}/enabled: admins disable (or re-enable) a slice everywhere at once.
/// Node managers stop its slivers on their next poll (desired `run=false`); the change is in
/// the event log, which is how the slice's persons are told for now.
pub async fn set_enabled(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    viewer.actor.require_admin("enable or disable a slice")?;
    let sl = st.store.slice(&key).await?;
    let r = async {
        let enabled = match form.get("enabled") {
            "true" => true,
            "false" => false,
            other => {
                return Err(WebError::BadRequest(format!(
                    "enabled: {other:?} must be true or false"
                )))
            }
        };
        let u = SliceUpdate {
            enabled: Some(enabled),
            ..Default::default()
        };
        st.store
            .update_slice(&viewer.label(), slicelab_central::now(), &sl, &u)
            .await?;
        st.changed_nodes(&sl.nodes);
        Ok(if enabled { "enabled" } else { "disabled" })
    }
    .await;
    finish(&st, &viewer, &sl.name, r).await
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

//! Images published at central: the list of those the viewer may use, an image's page (its
//! manifest: config and layers; the slices whose `image` tag names it), and its delete form,
//! which calls `slicelab_central::ops::images::delete` as the API does.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};
use slicelab_central::ops;
use slicelab_central::queries;
use slicelab_central::state::AppState;
use slicelab_model::image::Visibility;

use crate::error::{WebError, WebResult};
use crate::layout::{badge, fmt_time, ok, ok_notice, respond, Notice, Page, Section};
use crate::pages::PageQuery;
use crate::session::{see_other, url_encode, FormData, Viewer};
use crate::usage::fmt_bytes;

/// Site ids → login bases (sites are public).
async fn site_names(st: &AppState) -> WebResult<HashMap<i64, String>> {
    Ok(queries::sites(st, None, queries::ALL)
        .await?
        .0
        .into_iter()
        .map(|s| (s.id, s.login_base))
        .collect())
}

fn site_cell(sites: &HashMap<i64, String>, id: i64) -> Markup {
    match sites.get(&id) {
        Some(b) => html! { a href={ "/sites/" (b) } { (b) } },
        None => html! { (id) },
    }
}

fn visibility(v: Visibility) -> Markup {
    badge(v.as_str())
}

/// GET /images
pub async fn list(
    State(st): State<AppState>,
    viewer: Viewer,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    viewer.person()?;
    let images = queries::images(&st, &viewer.actor).await?;
    let sites = site_names(&st).await?;
    let body = html! {
        h1 { "Images" }
        p.sub { "Root filesystems a slice can name in its " code { "image" } " tag: the platform's, and your sites' own. Slices without one get the built-in " code { (slicelab_model::image::BUILTIN_IMAGE) } "." }
        div.card {
            @if images.is_empty() { p.muted { "No image is published yet. Publish one with the API (PUT /api/v1/blobs, POST /api/v1/images)." } } @else {
                table id="images" {
                    thead { tr { th { "name" } th { "visibility" } th { "site" } th { "owner" } th.num { "size" } th { "created" } } }
                    tbody {
                        @for i in &images {
                            tr {
                                td { a href={ "/images/" (url_encode(&i.name)) } { (i.name) } }
                                td { (visibility(i.visibility)) }
                                td { (site_cell(&sites, i.site_id)) }
                                td { @if i.owner.is_empty() { span.muted { "(deleted)" } } @else { (i.owner) } }
                                td.num { (fmt_bytes(i.size)) }
                                td { (fmt_time(i.created)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ok(Page::new("Images", Section::Images, &viewer)
        .notice(ok_notice(q.ok.as_deref()))
        .render(body)))
}

/// GET /images/{name}
pub async fn show(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> WebResult<Response> {
    Ok(ok(render_image(&st, &viewer, &name, None).await?))
}

async fn render_image(
    st: &AppState,
    viewer: &Viewer,
    name: &str,
    notice: Option<Notice>,
) -> WebResult<Markup> {
    viewer.person()?;
    let d = queries::image_detail(st, &viewer.actor, name).await?;
    let sites = site_names(st).await?;
    let i = &d.image;
    let c = &i.manifest.config;
    let command = c.command().join(" ");
    let body = html! {
        h1 { (i.name) " " (visibility(i.visibility)) }
        p.sub { a href="/images" { "← all images" } }
        div.grid {
            div.card {
                h2 { "Image" }
                table id="image-facts" {
                    tbody {
                        tr { th { "digest" } td { code.digest { (i.digest) } } }
                        tr { th { "site" } td { (site_cell(&sites, i.site_id)) } }
                        tr { th { "owner" } td { @if i.owner.is_empty() { span.muted { "(deleted)" } } @else { (i.owner) } } }
                        tr { th { "size" } td { (fmt_bytes(i.size)) " (" (i.size) " bytes)" } }
                        tr { th { "created" } td { (fmt_time(i.created)) } }
                    }
                }
            }
            div.card {
                h2 { "Config" }
                p.muted { "What runs in a sliver made from it when its slice has no " code { "initscript" } " tag." }
                table id="image-config" {
                    tbody {
                        tr { th { "command" } td { @if command.is_empty() { span.muted { "none" } } @else { code { (command) } } } }
                        tr { th { "env" } td { @for e in &c.env { code { (e) } br; } } }
                        tr { th { "working dir" } td { @if let Some(w) = &c.working_dir { code { (w) } } } }
                        tr { th { "user" } td { @if let Some(u) = &c.user { code { (u) } } } }
                    }
                }
            }
        }
        div.card {
            h2 { "Layers" }
            p.muted { "Bottom first; each is fetched by nodes by its digest and checked." }
            table id="layers" {
                thead { tr { th.num { "#" } th { "digest" } th.num { "size" } th { "media type" } } }
                tbody {
                    @for (n, l) in i.manifest.layers.iter().enumerate() {
                        tr { td.num { (n) } td { code.digest { (l.digest) } } td.num { (fmt_bytes(l.size)) } td { (l.media_type) } }
                    }
                }
            }
        }
        div.card {
            h2 { "Used by" }
            @if d.used_by.is_empty() { p.muted { "No slice names this image." } } @else {
                ul id="image-users" {
                    @for s in &d.used_by { li { a href={ "/slices/" (url_encode(s)) } { (s) } } }
                }
            }
            @if d.may_delete {
                form.inline method="post" action={ "/images/" (url_encode(&i.name)) "/delete" } id="delete-image"
                    data-confirm={ "Delete image " (i.name) "? Its blobs no other image uses are removed too." } {
                    input type="hidden" name="csrf" value=(viewer.csrf());
                    button.danger type="submit" { "Delete this image" }
                }
                @if !d.used_by.is_empty() { p.muted { "It can be deleted once no slice's image tag names it." } }
            }
        }
    };
    Ok(Page::new(&i.name, Section::Images, viewer)
        .notice(notice)
        .render(body))
}

/// POST /images/{name}/delete: its publisher, its site's PIs and admins
/// (`ops::images::delete`); refused while a slice names it, shown on the image's page.
pub async fn delete(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    match ops::images::delete(&st, &viewer.actor, &name)
        .await
        .map_err(WebError::from)
    {
        Ok(()) => Ok(see_other("/images?ok=image_deleted")),
        Err(e @ (WebError::BadRequest(_) | WebError::Conflict(_))) => {
            let status = e.status();
            let m =
                render_image(&st, &viewer, &name, Some(Notice::Error(e.public_message()))).await?;
            Ok(respond(status, m))
        }
        Err(e) => Err(e),
    }
}

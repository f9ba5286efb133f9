//! The forms of a slice's page: nodes, persons, renewal, tags, and (admins) enabling. Each form
//! checks its CSRF token, parses its fields and calls one of central's operations
//! (`ops::slices`, `ops::tags`), the same the JSON API calls; bad input and conflicts come back
//! on the slice's page with the message, other refusals (403, 404) as error pages.

use axum::extract::{Path, State};
use axum::response::Response;
use slicelab_central::ops::{self, OpError};
use slicelab_central::state::AppState;
use slicelab_model::{Role, SliceRenew, SliceUpdate, TagName};

use crate::error::{WebError, WebResult};
use crate::layout::{respond, Notice};
use crate::pages::slices::render_slice;
use crate::session::{see_other, url_encode, FormData, Viewer};

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
        Err(e @ (WebError::BadRequest(_) | WebError::Conflict(_))) => {
            let status = e.status();
            let m = render_slice(st, viewer, key, Some(Notice::Error(e.public_message()))).await?;
            Ok(respond(status, m))
        }
        Err(e) => Err(e),
    }
}

/// For removals: what the form names is not in the slice (or gone), a mistake to show on the
/// form. A missing slice still ends as a 404 page: the form's page cannot be shown again.
fn absent_is_input(e: OpError) -> WebError {
    match e {
        OpError::NotFound(m) => WebError::BadRequest(m),
        e => e.into(),
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
    let names: Vec<String> = form
        .all("node")
        .iter()
        .map(|n| n.trim().to_string())
        .collect();
    let r = if names.is_empty() {
        Err(WebError::BadRequest(
            "choose at least one node to add".into(),
        ))
    } else {
        ops::slices::add_nodes(&st, &viewer.actor, &key, &names)
            .await
            .map(|_| "nodes")
            .map_err(WebError::from)
    };
    finish(&st, &viewer, &key, r).await
}

/// POST /slices/{slice}/nodes/{node}/remove
pub async fn remove_node(
    State(st): State<AppState>,
    viewer: Viewer,
    Path((key, node)): Path<(String, String)>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let r = ops::slices::remove_node(&st, &viewer.actor, &key, &node)
        .await
        .map(|_| "node_removed")
        .map_err(absent_is_input);
    finish(&st, &viewer, &key, r).await
}

/// POST /slices/{slice}/persons: the slice's site PIs and admins.
pub async fn add_person(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let email = form.get("email").trim().to_string();
    let r = ops::slices::add_persons(&st, &viewer.actor, &key, &[email])
        .await
        .map(|_| "persons")
        .map_err(WebError::from);
    finish(&st, &viewer, &key, r).await
}

/// POST /slices/{slice}/persons/{person}/remove: PIs and admins, or the person leaving.
pub async fn remove_person(
    State(st): State<AppState>,
    viewer: Viewer,
    Path((key, person)): Path<(String, String)>,
    form: FormData,
) -> WebResult<Response> {
    let me = viewer.check_form(&form)?;
    let leaving = person == me.email || person == me.id.to_string();
    let r = ops::slices::remove_person(&st, &viewer.actor, &key, &person).await;
    if let Ok(sl) = &r {
        if leaving && !viewer.actor.is_admin() && !viewer.actor.has_role_at(Role::Pi, sl.site_id) {
            // Having left, the person may no longer see the slice.
            return Ok(see_other("/my"));
        }
    }
    let r = r.map(|_| "person_removed").map_err(absent_is_input);
    finish(&st, &viewer, &key, r).await
}

/// POST /slices/{slice}/renew
pub async fn renew(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let raw = form.get("days").trim();
    let r = match raw.parse::<i64>() {
        Ok(days) => {
            let r = SliceRenew {
                expires: None,
                days: Some(days),
            };
            ops::slices::renew(&st, &viewer.actor, &key, &r)
                .await
                .map(|_| "renewed")
                .map_err(WebError::from)
        }
        Err(_) => Err(WebError::BadRequest(format!(
            "days: {raw:?} is not a whole number"
        ))),
    };
    finish(&st, &viewer, &key, r).await
}

/// POST /slices/{slice}/tags
pub async fn set_tag(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let r = match TagName::parse(form.get("tag").trim()) {
        Ok(tag) => {
            let (value, node) = (form.get("value"), form.opt("node"));
            ops::tags::set(&st, &viewer.actor, &key, tag, value, node)
                .await
                .map(|_| "tag")
                .map_err(WebError::from)
        }
        Err(e) => Err(e.into()),
    };
    finish(&st, &viewer, &key, r).await
}

/// POST /slices/{slice}/tags/{tag}/remove
pub async fn remove_tag(
    State(st): State<AppState>,
    viewer: Viewer,
    Path((key, tag)): Path<(String, String)>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let r = match TagName::parse(&tag) {
        Ok(tag) => ops::tags::delete(&st, &viewer.actor, &key, tag, form.opt("node"))
            .await
            .map(|_| "tag_removed")
            .map_err(absent_is_input),
        Err(e) => Err(e.into()),
    };
    finish(&st, &viewer, &key, r).await
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
    let enabled = match form.get("enabled") {
        "true" => true,
        "false" => false,
        other => {
            let e = format!("enabled: {other:?} must be true or false");
            return finish(&st, &viewer, &key, Err(WebError::BadRequest(e))).await;
        }
    };
    let u = SliceUpdate {
        enabled: Some(enabled),
        ..Default::default()
    };
    let r = ops::slices::update(&st, &viewer.actor, &key, &u)
        .await
        .map(|_| if enabled { "enabled" } else { "disabled" })
        .map_err(WebError::from);
    finish(&st, &viewer, &key, r).await
}

//! The pages and their forms. Pages read through `slicelab_central::queries` (checking who may
//! see them with `model::policy`); every form calls one of central's operations
//! (`slicelab_central::ops`), the same the JSON API calls: policy, validation, the store
//! transaction with its event and the node wake-ups are central's, never repeated here.

pub mod admin;
pub mod images;
pub mod lookup;
pub mod public;
pub mod slice_forms;
pub mod slices;

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use slicelab_central::ops;
use slicelab_central::queries::{self, NodeFilter};
use slicelab_central::state::AppState;
use slicelab_model::{BootState, Node, NodeUpdate};

use crate::error::WebResult;
use crate::layout::{respond, Notice};
use crate::session::{see_other, FormData, Viewer};

/// Query parameters every page understands.
#[derive(Debug, Deserialize, Default)]
pub struct PageQuery {
    /// Fixed success message code (see `layout::ok_notice`).
    pub ok: Option<String>,
    /// Plot window: `6h`, `24h`, `7d`.
    pub range: Option<String>,
    pub page: Option<i64>,
    pub object: Option<String>,
}

/// Every node matching `f` (testbeds are small; pages list them all).
pub async fn all_nodes(st: &AppState, f: &NodeFilter) -> WebResult<Vec<Node>> {
    Ok(queries::nodes(st, f, queries::ALL).await?.0)
}

/// Only local paths: forms say where to come back to.
pub fn local_path(p: &str, fallback: &str) -> String {
    if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') {
        p.split('?').next().unwrap_or(fallback).to_string()
    } else {
        fallback.to_string()
    }
}

/// The boot-state buttons of a node, for those who may manage it.
pub fn boot_form(viewer: &Viewer, n: &Node, back: &str) -> Markup {
    if viewer.actor.can_manage_node(n.site_id).is_err() {
        return html! { (crate::layout::badge(n.boot_state.as_str())) };
    }
    html! {
        form.row.boot method="post" action={ "/nodes/" (n.hostname) "/boot_state" } {
            input type="hidden" name="csrf" value=(viewer.csrf());
            input type="hidden" name="back" value=(back);
            select name="boot_state" aria-label="boot state" {
                @for b in [BootState::Boot, BootState::Safeboot, BootState::Reinstall, BootState::Disabled] {
                    option value=(b.as_str()) title=(public::boot_state_help(b)) selected[b == n.boot_state] { (b.as_str()) }
                }
            }
            button.small type="submit" { "Apply" }
        }
    }
}

/// The site's bandwidth cap of a node, with a form for those who may manage it.
pub fn bwlimit_form(viewer: &Viewer, n: &Node, back: &str) -> Markup {
    let shown = n.bwlimit.map(slicelab_model::tags::format_rate);
    if viewer.actor.can_manage_node(n.site_id).is_err() {
        return html! { @match &shown { Some(r) => (r), None => span.muted { "none" } } };
    }
    html! {
        form.row method="post" action={ "/nodes/" (n.hostname) "/bwlimit" } {
            input type="hidden" name="csrf" value=(viewer.csrf());
            input type="hidden" name="back" value=(back);
            input type="text" name="bwlimit" aria-label="bandwidth cap" size="10"
                placeholder="none" value=(shown.as_deref().unwrap_or(""))
                title="the slivers' total egress, e.g. 30mbit; empty or none: no cap";
            button.small type="submit" { "Set" }
        }
    }
}

/// POST /nodes/{node}/bwlimit: admins and the node's site techs and PIs (`ops::nodes::update`).
/// Empty or `none` removes the cap.
pub async fn set_bwlimit(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let typed = form.get("bwlimit").trim();
    let parsed = if typed.is_empty() {
        Ok(None)
    } else {
        slicelab_model::parse_bwlimit(typed)
    };
    let update = parsed.map(|b| NodeUpdate {
        bwlimit: Some(b),
        ..Default::default()
    });
    update_node(
        &st,
        &viewer,
        &key,
        &form,
        update.map_err(|e| e.to_string()),
        "bwlimit",
    )
    .await
}

/// POST /nodes/{node}/boot_state: admins and the node's site techs and PIs (`ops::nodes::update`).
pub async fn set_boot_state(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let update = BootState::parse(form.get("boot_state").trim()).map(|b| NodeUpdate {
        boot_state: Some(b),
        ..Default::default()
    });
    update_node(
        &st,
        &viewer,
        &key,
        &form,
        update.map_err(|e| e.to_string()),
        "boot_state",
    )
    .await
}

/// One node form's change through `ops::nodes::update`: back where the form came from with
/// `?ok=WHAT`, or the node's page again with the error (422) when the value is wrong.
async fn update_node(
    st: &AppState,
    viewer: &Viewer,
    key: &str,
    form: &FormData,
    update: Result<NodeUpdate, String>,
    what: &str,
) -> WebResult<Response> {
    let u = match update {
        Ok(u) => u,
        Err(e) => {
            let q = PageQuery::default();
            let m = public::render_node(st, viewer, key, &q, Some(Notice::Error(e))).await?;
            return Ok(respond(axum::http::StatusCode::UNPROCESSABLE_ENTITY, m));
        }
    };
    let n = ops::nodes::update(st, &viewer.actor, key, &u).await?;
    let back = local_path(form.get("back"), &format!("/nodes/{}", n.hostname));
    Ok(see_other(&format!("{back}?ok={what}")))
}

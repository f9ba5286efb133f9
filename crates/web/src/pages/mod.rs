//! The pages and their forms. Every handler authorises with the same `model::policy` rules as
//! the API, validates with `model`, and writes through the store (which logs the event).

pub mod admin;
pub mod public;
pub mod slices;

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use slicelab_central::state::AppState;
use slicelab_model::{BootState, Node, NodeUpdate};
use slicelab_store::{NodeFilter, Paging};

use crate::error::{WebError, WebResult};
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
    Ok(st
        .store
        .list_nodes(
            f,
            Paging {
                limit: 1000,
                offset: 0,
            },
        )
        .await?
        .0)
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

/// POST /nodes/{node}/boot_state: admins and the node's site techs and PIs.
pub async fn set_boot_state(
    State(st): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    let n = st.store.node(&key).await?;
    viewer.actor.can_manage_node(n.site_id)?;
    let back = local_path(form.get("back"), &format!("/nodes/{}", n.hostname));
    let b = match BootState::parse(form.get("boot_state").trim()) {
        Ok(b) => b,
        Err(e) => {
            let q = PageQuery::default();
            let m = public::render_node(&st, &viewer, &key, &q, Some(Notice::Error(e.to_string())))
                .await?;
            return Ok(respond(axum::http::StatusCode::UNPROCESSABLE_ENTITY, m));
        }
    };
    let u = NodeUpdate {
        boot_state: Some(b),
        ..Default::default()
    };
    u.validate().map_err(WebError::from)?;
    st.store
        .update_node(&viewer.label(), slicelab_central::now(), &n, &u)
        .await?;
    st.changed_nodes([&n.hostname]);
    Ok(see_other(&format!("{back}?ok=boot_state")))
}

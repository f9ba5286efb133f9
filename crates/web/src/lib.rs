//! The web interface of central: server-rendered HTML (maud), one stylesheet and a little
//! vanilla JS shipped in the binary, SVG plots drawn in Rust. Pages follow the API's permission
//! rules (`slicelab_model::policy`); sessions are HttpOnly SameSite=Strict cookies and every
//! POST form carries a per-session CSRF token.
//!
//! Central serves it next to the API: `slicelab_central::start_with_routes(cfg, slicelab_web::router())`.

#![forbid(unsafe_code)]

pub mod chart;
pub mod error;
pub mod layout;
pub mod map;
pub mod pages;
pub mod session;
pub mod usage;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use slicelab_central::state::AppState;

pub use error::{WebError, WebResult};

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");

async fn style() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
}

/// The web routes, to merge into central's application.
pub fn router() -> Router<AppState> {
    use pages::{admin, images, lookup, public, slice_forms as forms, slices};
    Router::new()
        .route("/", get(public::overview))
        .route("/assets/style.css", get(style))
        .route("/assets/app.js", get(script))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/lookup", get(lookup::lookup))
        .route("/nodes/{node}", get(public::node_page))
        .route("/nodes/{node}/boot_state", post(pages::set_boot_state))
        .route("/nodes/{node}/bwlimit", post(pages::set_bwlimit))
        .route("/sites/{site}", get(public::site_page))
        .route("/sites/{site}/manage", get(public::site_manage))
        .route("/my", get(slices::my_slices))
        .route("/slices", post(slices::create))
        .route("/slices/{slice}", get(slices::slice_page))
        .route("/slices/{slice}/usage", get(slices::usage_page))
        .route("/slices/{slice}/nodes", post(forms::add_nodes))
        .route(
            "/slices/{slice}/nodes/{node}/remove",
            post(forms::remove_node),
        )
        .route("/slices/{slice}/persons", post(forms::add_person))
        .route(
            "/slices/{slice}/persons/{person}/remove",
            post(forms::remove_person),
        )
        .route("/slices/{slice}/renew", post(forms::renew))
        .route("/slices/{slice}/tags", post(forms::set_tag))
        .route("/slices/{slice}/tags/{tag}/remove", post(forms::remove_tag))
        .route("/slices/{slice}/enabled", post(forms::set_enabled))
        .route("/images", get(images::list))
        .route("/images/{name}", get(images::show))
        .route("/images/{name}/delete", post(images::delete))
        .route("/admin", get(admin::mission_control))
        .route("/admin/events", get(admin::events))
}

//! The REST API under `/api/v1`. Every handler authenticates (`Caller`), parses its JSON and
//! query, calls one operation (`crate::ops`: policy → validation → store transaction with its
//! event → wake-ups) or read (`crate::queries`), and answers; errors map once to JSON
//! (`crate::error`). The node protocol's endpoints (`node`, ingest of usage and flows, fetches
//! of image manifests and blobs) are the API's own.

pub mod auth;
pub mod blobs;
pub mod captures;
pub mod defaults;
pub mod events;
pub mod flows;
pub mod images;
pub mod leases;
pub mod node;
pub mod nodes;
pub mod openapi;
pub mod peers;
pub mod persons;
pub mod range;
pub mod sites;
pub mod slices;
pub mod usage;

use crate::queries::Paging;
use axum::routing::{delete, get, head, post, put};
use axum::Router;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/whoami", get(auth::whoami))
        .route("/tokens", get(auth::list_tokens).post(auth::create_token))
        .route("/tokens/{id}", delete(auth::delete_token))
        .route("/sites", get(sites::list).post(sites::create))
        .route(
            "/sites/{site}",
            get(sites::show).patch(sites::update).delete(sites::remove),
        )
        .route("/persons", get(persons::list).post(persons::create))
        .route(
            "/persons/{person}",
            get(persons::show)
                .patch(persons::update)
                .delete(persons::remove),
        )
        .route(
            "/persons/{person}/keys",
            get(persons::list_keys).post(persons::add_key),
        )
        .route("/keys/{id}", delete(persons::delete_key))
        .route("/nodes", get(nodes::list).post(nodes::create))
        .route(
            "/nodes/{node}",
            get(nodes::show).patch(nodes::update).delete(nodes::remove),
        )
        .route("/nodes/{node}/key", post(nodes::rekey))
        .route("/nodes/{node}/join-token", post(nodes::join_token))
        .route("/nodes/{node}/slivers", get(nodes::slivers))
        .route("/slices", get(slices::list).post(slices::create))
        .route(
            "/slices/{slice}",
            get(slices::show)
                .patch(slices::update)
                .delete(slices::remove),
        )
        .route("/slices/{slice}/renew", post(slices::renew))
        .route("/slices/{slice}/captures", post(captures::create))
        .route("/slices/{slice}/nodes", post(slices::add_nodes))
        .route("/slices/{slice}/nodes/select", post(slices::select_nodes))
        .route("/slices/{slice}/nodes/{node}", delete(slices::remove_node))
        .route("/slices/{slice}/persons", post(slices::add_persons))
        .route(
            "/slices/{slice}/persons/{person}",
            delete(slices::remove_person),
        )
        .route("/slices/{slice}/slivers", get(slices::slivers))
        .route("/slices/{slice}/tags", get(slices::tags))
        .route(
            "/slices/{slice}/tags/{tag}",
            put(slices::set_tag).delete(slices::delete_tag),
        )
        .route("/events", get(events::list))
        .route("/defaults", get(defaults::list))
        .route(
            "/defaults/{tag}",
            put(defaults::set).delete(defaults::delete),
        )
        .route(
            "/nodes/{node}/defaults/{tag}",
            put(defaults::set_node).delete(defaults::delete_node),
        )
        .route("/peers", get(peers::list).post(peers::create))
        .route(
            "/peers/{peer}",
            get(peers::show).patch(peers::update).delete(peers::remove),
        )
        .route("/peers/{peer}/suspend", post(peers::suspend))
        .route("/peers/{peer}/resume", post(peers::resume))
        .route("/leases", get(leases::list).post(leases::create))
        .route("/leases/{id}", delete(leases::remove))
        .route("/node/join", post(nodes::join))
        .route("/node/slivers", get(node::slivers))
        .route("/node/report", post(node::report))
        .route("/node/usage", post(usage::ingest))
        .route("/node/flows", post(flows::ingest))
        .route("/flows", get(flows::list))
        .route("/flows/totals", get(flows::totals))
        .route("/lookup", get(flows::lookup))
        .route("/usage", get(usage::series))
        .route("/usage/top", get(usage::top))
        .route("/blobs/{digest}", head(blobs::head).put(blobs::upload))
        .route("/images", get(images::list).post(images::create))
        .route("/images/{name}", get(images::show).delete(images::remove))
        .route("/node/manifests/{digest}", get(images::node_manifest))
        .route("/node/blobs/{digest}", get(blobs::node_blob))
        // Every route above needs credentials unless the document marks it public.
        .route_layer(axum::middleware::from_fn(openapi::require_credentials))
        .route("/openapi.json", get(openapi::serve))
}

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

pub fn paging(limit: Option<i64>, offset: Option<i64>) -> Result<Paging, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let offset = offset.unwrap_or(0);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be 1..={MAX_LIMIT}"),
        ));
    }
    if offset < 0 {
        return Err(ApiError::invalid("offset", "offset must not be negative"));
    }
    Ok(Paging { limit, offset })
}

/// A numeric id from the path (`what` names it in the error): 400 unless it is a number.
pub(crate) fn path_id(what: &str, id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{what} id {id:?} is not a number")))
}

/// `?node=HOST` for tag deletion.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NodeParam {
    pub node: Option<String>,
}

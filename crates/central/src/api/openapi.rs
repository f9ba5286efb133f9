//! The OpenAPI document of `/api/v1`, served at `/api/v1/openapi.json`.
//!
//! Each handler's `#[utoipa::path]` lists its security and the answers its own logic gives (403,
//! 404, 409, 422 from validation, 429). The answers that come from the shared machinery are added
//! here, once, by the shape of the operation, exactly as that machinery behaves:
//!
//! - a JSON body (`ApiJson`): 400 malformed JSON, 413 body too large, 422 wrong or unknown field
//!   (a raw body, a blob upload: 400 and 413 only);
//! - query parameters (`ApiQuery`): 400 unknown or malformed parameter;
//! - credentials accepted (`Caller`): 401 missing, malformed, unknown or expired credentials;
//! - every operation: 500 when the database fails.
//!
//! Every error answer carries an [`ErrorBody`]. The document's security is also enforced from
//! here ([`require_credentials`]): an operation not marked public answers a request without
//! credentials with 401 before it looks anything up. `tests/openapi.rs` holds the document to the
//! router; `scripts/fuzz-api.sh` holds it to the running server.

use std::collections::HashSet;
use std::sync::OnceLock;

use axum::extract::{MatchedPath, Request};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use slicelab_model::objects::ErrorBody;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, Response};
use utoipa::{Modify, OpenApi};

use super::{
    auth, blobs, captures, defaults, events, flows, images, leases, node, nodes, peers, persons,
    sites, slices, usage,
};

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let comps = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        comps.add_security_scheme(
            "token",
            bearer("A person's session token (`POST /auth/login`) or API token (`slt_...`)."),
        );
        comps.add_security_scheme(
            "node_key",
            bearer("A node manager's key (`sln_...`), from `POST /nodes` or `/nodes/{node}/key`."),
        );
    }
}

/// The answers every operation of a shape gives (see the module doc), and the error body and a
/// description on every error answer.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let global_security = doc.security.clone().unwrap_or_default();
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.head,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let accepts_credentials = op
                    .security
                    .as_ref()
                    .unwrap_or(&global_security)
                    .iter()
                    .any(|r| !is_public(std::slice::from_ref(r)));
                add_common(op, accepts_credentials);
            }
        }
    }
}

/// Whether an operation's security requirements accept a request with no credentials.
fn is_public(security: &[utoipa::openapi::security::SecurityRequirement]) -> bool {
    security
        .iter()
        .any(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
}

fn add_common(op: &mut Operation, accepts_credentials: bool) {
    let has_query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == ParameterIn::Query);
    let mut codes = vec![500];
    if let Some(body) = &op.request_body {
        codes.extend([400, 413]);
        if body.content.contains_key("application/json") {
            codes.push(422);
        }
    }
    if has_query {
        codes.push(400);
    }
    if accepts_credentials {
        codes.push(401);
    }
    let answers = &mut op.responses.responses;
    for code in codes {
        answers
            .entry(code.to_string())
            .or_insert_with(|| RefOr::T(Response::new("")));
    }
    for (code, answer) in answers.iter_mut() {
        let RefOr::T(answer) = answer else { continue };
        if code.starts_with('2') && answer.description.is_empty() {
            answer.description = describe(code).to_string();
        }
        if !code.starts_with('4') && !code.starts_with('5') {
            continue;
        }
        if answer.description.is_empty() {
            answer.description = describe(code).to_string();
        }
        if answer.content.is_empty() {
            answer
                .content
                .insert("application/json".into(), Content::new(Some(error_body())));
        }
    }
}

fn error_body() -> RefOr<utoipa::openapi::schema::Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody"))
}

fn describe(code: &str) -> &'static str {
    match code {
        "200" => "Done.",
        "201" => "Created.",
        "204" => "Done; no content.",
        "400" => "Malformed JSON body, or an unknown or malformed query parameter (`bad_request`).",
        "401" => "Missing, malformed, unknown or expired credentials (`unauthorized`).",
        "403" => "The caller may not do this (`forbidden`).",
        "404" => "No such object (`not_found`).",
        "409" => "The registry's state forbids it (`conflict`).",
        "413" => "Request body over 4 MiB (`too_large`).",
        "416" => "The range asked for is not in the object (`bad_range`).",
        "422" => "A value breaks a rule; `field` names it (`invalid`).",
        "429" => "Too many requests from this client; try again later (`rate_limited`).",
        "500" => "Internal error: the database failed (`internal`).",
        "503" => {
            "Central sheds this request; try again after `Retry-After` seconds (`unavailable`)."
        }
        _ => "Error.",
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "slicelab central API", description = "Registry of sites, persons, keys, nodes, slices and images; the node protocol; the audit log."),
    modifiers(&Security, &CommonAnswers),
    security(("token" = [])),
    paths(
        auth::login, auth::logout, auth::whoami, auth::list_tokens, auth::create_token, auth::delete_token,
        sites::list, sites::create, sites::show, sites::update, sites::remove,
        persons::list, persons::create, persons::show, persons::update, persons::remove,
        persons::list_keys, persons::add_key, persons::delete_key,
        nodes::list, nodes::create, nodes::show, nodes::update, nodes::remove, nodes::rekey, nodes::join_token, nodes::join, nodes::slivers,
        slices::list, slices::create, slices::show, slices::update, slices::remove, slices::renew,
        slices::add_nodes, slices::select_nodes, slices::remove_node, slices::add_persons, slices::remove_person,
        slices::slivers, slices::tags, slices::set_tag, slices::delete_tag, captures::create,
        events::list,
        defaults::list, defaults::set, defaults::delete, defaults::set_node, defaults::delete_node,
        leases::list, leases::create, leases::remove,
        peers::list, peers::create, peers::show, peers::update, peers::remove, peers::suspend, peers::resume,
        node::slivers, node::report,
        usage::series, usage::top, usage::ingest,
        flows::ingest, flows::list, flows::totals, flows::lookup,
        blobs::head, blobs::upload, blobs::node_blob,
        images::list, images::create, images::show, images::remove, images::node_manifest,
    ),
    components(schemas(ErrorBody, usage::TopBy, slicelab_model::tags::Resources, slicelab_model::tags::PortForward,
        slicelab_model::sliver::SliverSpec, slicelab_model::sliver::SliverKey, slicelab_model::SliverStatus,
        slicelab_model::NodeHealth))
)]
pub struct ApiDoc;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `(METHOD, path)` of the operations the document marks public (`security(())`).
fn public_operations() -> &'static HashSet<(String, String)> {
    static PUBLIC: OnceLock<HashSet<(String, String)>> = OnceLock::new();
    PUBLIC.get_or_init(|| {
        let doc = ApiDoc::openapi();
        let global = doc.security.clone().unwrap_or_default();
        let mut public = HashSet::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                ("GET", &item.get),
                ("HEAD", &item.head),
                ("PUT", &item.put),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                if is_public(op.security.as_ref().unwrap_or(&global)) {
                    public.insert((method.to_string(), path.clone()));
                }
            }
        }
        public
    })
}

/// Route middleware: a request without an `Authorization` header to an operation the document
/// does not mark public is answered 401 at once (credentials that are present are checked by
/// the `Caller` extractor).
pub async fn require_credentials(req: Request, next: Next) -> HttpResponse {
    if !req.headers().contains_key(AUTHORIZATION) {
        let path = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_string());
        let public = path
            .is_some_and(|p| public_operations().contains(&(req.method().as_str().to_string(), p)));
        if !public {
            return crate::error::ApiError::unauthorized(
                "log in first (Authorization: Bearer <token>)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

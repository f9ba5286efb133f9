use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{auth, defaults, events, flows, leases, node, nodes, persons, sites, slices, usage};

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let comps = doc.components.get_or_insert_with(Default::default);
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        comps.add_security_scheme("token", bearer());
        comps.add_security_scheme("node_key", bearer());
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "slicelab central API", description = "Registry of sites, persons, keys, nodes and slices; the node protocol; the audit log."),
    modifiers(&Security),
    security(("token" = [])),
    paths(
        auth::login, auth::logout, auth::whoami, auth::list_tokens, auth::create_token, auth::delete_token,
        sites::list, sites::create, sites::show, sites::update, sites::remove,
        persons::list, persons::create, persons::show, persons::update, persons::remove,
        persons::list_keys, persons::add_key, persons::delete_key,
        nodes::list, nodes::create, nodes::show, nodes::update, nodes::remove, nodes::rekey, nodes::slivers,
        slices::list, slices::create, slices::show, slices::update, slices::remove, slices::renew,
        slices::add_nodes, slices::select_nodes, slices::remove_node, slices::add_persons, slices::remove_person,
        slices::slivers, slices::tags, slices::set_tag, slices::delete_tag,
        events::list,
        defaults::list, defaults::set, defaults::delete, defaults::set_node, defaults::delete_node,
        leases::list, leases::create, leases::remove,
        node::slivers, node::report,
        usage::series, usage::top, usage::ingest,
        flows::ingest, flows::list, flows::totals, flows::lookup,
    ),
    components(schemas(slicelab_model::tags::Resources, slicelab_model::tags::PortForward,
        slicelab_model::sliver::SliverSpec, slicelab_model::sliver::SliverKey, slicelab_model::SliverStatus,
        slicelab_model::NodeHealth))
)]
pub struct ApiDoc;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

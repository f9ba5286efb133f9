//! Packet auditing: flow ingest from nodes, flow queries, and the public "who sent this?" lookup.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use slicelab_model::flows::LookupResult;
use slicelab_model::sliver::ReportAck;
use slicelab_model::time::DAY;
use slicelab_model::{Flow, FlowBatch, FlowTotal};
use slicelab_store::FlowFilter;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::queries;
use crate::state::AppState;

/// Raw flows are kept this long, then folded into per-slice daily totals.
pub const FLOW_RETENTION: i64 = 30 * DAY;
/// The longest window one lookup or query may cover.
const MAX_WINDOW: i64 = 31 * DAY;

/// A node's flow records. Repeats of an acknowledged `seq` are ignored (nothing stored twice).
#[utoipa::path(post, path = "/api/v1/node/flows", tag = "node", operation_id = "ingest_flows",
    request_body = FlowBatch, security(("node_key" = [])),
    responses((status = 200, body = ReportAck), (status = 403, description = "Not a node key."),
        (status = 422, description = "A value breaks a rule, or a flow ends before it starts or in the future.")))]
pub async fn ingest(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<FlowBatch>,
) -> ApiResult<Json<ReportAck>> {
    let node = caller.node_or_403()?.clone();
    b.validate(crate::now())?;
    let acked_seq = st.store.store_flows(&node, &b).await?;
    Ok(Json(ReportAck { acked_seq }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FlowQuery {
    /// Slice name.
    pub slice: Option<String>,
    /// Node hostname or id.
    pub node: Option<String>,
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_unix_time")]
    #[param(minimum = 0, maximum = 253402300799_i64)]
    pub from: Option<i64>,
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_unix_time")]
    #[param(minimum = 0, maximum = 253402300799_i64)]
    pub to: Option<i64>,
    /// At most this many flows (default 1000).
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<i64>,
}

fn window(from: Option<i64>, to: Option<i64>) -> ApiResult<(i64, i64)> {
    let now = crate::now();
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - DAY);
    if from > to {
        return Err(ApiError::invalid("from", "must not be after to"));
    }
    if to - from > MAX_WINDOW {
        return Err(ApiError::invalid(
            "from",
            "the window may span at most 31 days",
        ));
    }
    Ok((from, to))
}

/// Flows of a slice (its persons, its site's PIs, admins) or of a node (its site's techs and PIs,
/// admins), newest first.
#[utoipa::path(get, path = "/api/v1/flows", tag = "flows", operation_id = "list_flows",
    params(FlowQuery),
    responses((status = 200, body = Vec<Flow>), (status = 403), (status = 404, description = "No such node."),
        (status = 422, description = "from after to, or a window over 31 days.")))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<FlowQuery>,
) -> ApiResult<Json<Vec<Flow>>> {
    let me = caller.person()?;
    let (from, to) = window(q.from, q.to)?;
    let mut f = FlowFilter {
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    let mut allowed = caller.actor.is_admin();
    if let Some(s) = &q.slice {
        // The slice may be gone; its records are its site's business.
        let site = match st.store.slice(s).await {
            Ok(sl) => {
                let member = st.store.is_slice_member(sl.id, me.person.id).await?;
                allowed |= caller.actor.can_use_slice(sl.site_id, member).is_ok();
                Some(sl.site_id)
            }
            Err(slicelab_store::StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if site.is_none() {
            if let Some(base) = slicelab_model::names::slice_login_base(s) {
                if let Ok(site) = st.store.site(base).await {
                    allowed |= caller.actor.is_pi_of(site.id);
                }
            }
        }
        f.slice = Some(s.clone());
    }
    if let Some(n) = &q.node {
        let node = st.store.node(n).await?;
        if q.slice.is_none() {
            allowed |= caller.actor.can_manage_node(node.site_id).is_ok();
        }
        f.node_id = Some(node.id);
    }
    if !allowed {
        return Err(ApiError::forbidden(
            "flows are visible to admins, a slice's persons and site PIs, and a node's site techs and PIs; name the slice or node",
        ));
    }
    let limit = q.limit.unwrap_or(1000);
    if !(1..=100_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1..=100000"));
    }
    Ok(Json(st.store.list_flows(&f, limit).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TotalsQuery {
    pub slice: Option<String>,
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_unix_time")]
    #[param(minimum = 0, maximum = 253402300799_i64)]
    pub from: Option<i64>,
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_unix_time")]
    #[param(minimum = 0, maximum = 253402300799_i64)]
    pub to: Option<i64>,
}

/// Per-slice daily traffic totals, kept after raw flows expire.
#[utoipa::path(get, path = "/api/v1/flows/totals", tag = "flows", operation_id = "flow_totals",
    params(TotalsQuery), responses((status = 200, body = Vec<FlowTotal>)))]
pub async fn totals(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TotalsQuery>,
) -> ApiResult<Json<Vec<FlowTotal>>> {
    caller.person()?;
    let now = crate::now();
    let to = q.to.unwrap_or(now);
    let from = q.from.unwrap_or(to - 365 * DAY);
    Ok(Json(
        st.store.flow_totals(q.slice.as_deref(), from, to).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    /// The node (hostname or id) the traffic came from.
    pub node: String,
    /// The complainant's address: the remote end of the traffic.
    pub remote: String,
    /// The remote port.
    #[param(minimum = 0, maximum = 65535)]
    pub port: Option<u16>,
    /// Unix seconds (default: a day before `to`).
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_unix_time")]
    #[param(minimum = 0, maximum = 253402300799_i64)]
    pub from: Option<i64>,
    /// Unix seconds (default: now).
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_unix_time")]
    #[param(minimum = 0, maximum = 253402300799_i64)]
    pub to: Option<i64>,
}

/// "Who sent this?": for anyone, no login. Given the node and the remote address that received
/// traffic, names the slice(s) responsible and their PIs. It reveals nothing about traffic to any
/// other address, and is rate-limited per client.
#[utoipa::path(get, path = "/api/v1/lookup", tag = "flows", operation_id = "lookup",
    params(LookupQuery), security(()),
    responses((status = 200, body = LookupResult), (status = 404, description = "No such node."),
        (status = 422, description = "remote is not an IP address; from after to, or a window over 31 days."),
        (status = 429, description = "Too many lookups from this client; try again later.")))]
pub async fn lookup(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiQuery(q): ApiQuery<LookupQuery>,
) -> ApiResult<Json<LookupResult>> {
    if let Err(wait) = st.take_lookup(peer.ip()).await {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many lookups from {}; try again in {wait}s", peer.ip()),
        ));
    }
    let remote: IpAddr =
        q.remote.trim().parse().map_err(|_| {
            ApiError::invalid("remote", format!("{:?} is not an IP address", q.remote))
        })?;
    let window = window(q.from, q.to)?;
    let node = queries::node(&st, &q.node).await?;
    Ok(Json(
        queries::lookup(&st, &node, remote, q.port, window).await?,
    ))
}

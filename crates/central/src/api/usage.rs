//! Usage under `/api/v1/usage` (series and top consumers, read through `crate::queries`) and
//! the node's usage batches (`/api/v1/node/usage`).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use slicelab_model::sliver::ReportAck;
use slicelab_model::time::{DAY, HOUR};
use slicelab_model::{UsageBatch, UsageSeries, UsageTotal};
use slicelab_store::UsageRank;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::queries::{self, UsageScope};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Slice name or id (needs a login).
    pub slice: Option<String>,
    /// Node hostname or id: its own totals.
    pub node: Option<String>,
    /// Site login_base or id: totals of its nodes.
    pub site: Option<String>,
    /// Unix seconds (default: a day ago).
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_unix_time")]
    #[param(minimum = 0, maximum = 253402300799_i64)]
    pub from: Option<i64>,
    /// Unix seconds (default: now).
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_unix_time")]
    #[param(minimum = 0, maximum = 253402300799_i64)]
    pub to: Option<i64>,
    /// Seconds per point (default: about 100 points over the window).
    #[param(minimum = 1)]
    pub step: Option<i64>,
}

const MAX_POINTS: i64 = 10_000;

/// What `/usage/top` ranks by (the document's name for the values `by` takes).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // only ever named in the document
pub enum TopBy {
    Cpu,
    Tx,
    Rx,
}

/// Usage over time of the platform (no filter), a site, a node or a slice. Platform, site and
/// node totals are public, like PlanetLab's; a slice's usage needs a login.
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", operation_id = "usage_series",
    params(UsageQuery), security((), ("token" = [])),
    responses((status = 200, body = UsageSeries), (status = 401, description = "A slice's usage needs a login."),
        (status = 404, description = "No such slice, node or site."),
        (status = 422, description = "More than one of slice, node and site; from not before to; too many points.")))]
pub async fn series(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<UsageSeries>> {
    let now = crate::now();
    let to = q.to.unwrap_or(now + 1);
    let from = q.from.unwrap_or(to - DAY);
    if from >= to {
        return Err(ApiError::invalid("from", "must be before to"));
    }
    let step = q.step.unwrap_or(((to - from) / 100).max(60));
    if step < 1 || (to - from) / step > MAX_POINTS {
        return Err(ApiError::invalid(
            "step",
            format!("must be at least 1 and give at most {MAX_POINTS} points"),
        ));
    }
    let given = [q.slice.is_some(), q.node.is_some(), q.site.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if given > 1 {
        return Err(ApiError::invalid(
            "slice",
            "give at most one of slice, node, site",
        ));
    }
    let scope = if let Some(s) = &q.slice {
        caller.person()?;
        let sl = queries::slice(&st, s).await?;
        UsageScope::Slice {
            id: sl.id,
            name: sl.name,
        }
    } else if let Some(n) = &q.node {
        let n = queries::node(&st, n).await?;
        UsageScope::Node {
            id: n.id,
            hostname: n.hostname,
        }
    } else if let Some(s) = &q.site {
        let s = queries::site(&st, s).await?;
        UsageScope::Site {
            id: s.id,
            login_base: s.login_base,
        }
    } else {
        UsageScope::Platform
    };
    Ok(Json(
        queries::usage_series(&st, &scope, from, to, step).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TopQuery {
    /// `cpu` (default), `tx` or `rx`.
    #[param(value_type = Option<TopBy>)]
    pub by: Option<String>,
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_unix_time")]
    #[param(minimum = 0, maximum = 253402300799_i64)]
    pub from: Option<i64>,
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_unix_time")]
    #[param(minimum = 0, maximum = 253402300799_i64)]
    pub to: Option<i64>,
    /// At most this many slices (default 10).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The slices that used the most CPU or bandwidth over a window (default: the last day).
#[utoipa::path(get, path = "/api/v1/usage/top", tag = "usage", operation_id = "usage_top",
    params(TopQuery), responses((status = 200, body = Vec<UsageTotal>), (status = 422)))]
pub async fn top(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TopQuery>,
) -> ApiResult<Json<Vec<UsageTotal>>> {
    caller.person()?;
    let by = match q.by.as_deref().unwrap_or("cpu") {
        "cpu" => UsageRank::Cpu,
        "tx" => UsageRank::Tx,
        "rx" => UsageRank::Rx,
        other => {
            return Err(ApiError::invalid(
                "by",
                format!("{other:?} must be cpu, tx or rx"),
            ))
        }
    };
    let now = crate::now();
    let to = q.to.unwrap_or(now + 1);
    let from = q.from.unwrap_or(to - DAY);
    let limit = q.limit.unwrap_or(10);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1..=1000"));
    }
    Ok(Json(st.store.usage_top(from, to, by, limit).await?))
}

/// A node's usage samples. Repeats of an acknowledged `seq` are ignored (nothing counted twice).
#[utoipa::path(post, path = "/api/v1/node/usage", tag = "node", operation_id = "ingest_usage",
    request_body = UsageBatch, security(("node_key" = [])),
    responses((status = 200, body = ReportAck), (status = 403, description = "Not a node key."),
        (status = 422, description = "A value breaks a rule, or a sample's time is outside 7 days back to 5 minutes ahead.")))]
pub async fn ingest(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<UsageBatch>,
) -> ApiResult<Json<ReportAck>> {
    let node = caller.node_or_403()?.clone();
    let now = crate::now();
    b.validate(now)?;
    let acked_seq = st.store.store_usage(&node, &b).await?;
    Ok(Json(ReportAck { acked_seq }))
}

/// How often raw samples older than a day are rolled up into hourly rows.
pub const ROLLUP_EVERY: i64 = HOUR;

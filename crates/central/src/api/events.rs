//! The audit log under `/api/v1/events`, read through `crate::queries::events`.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use slicelab_model::objects::Page;
use slicelab_model::Event;

use crate::api::paging;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::ApiQuery;
use crate::queries::{self, EventFilter};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// `site`, `person`, `node` or `slice`.
    pub object_type: Option<String>,
    /// Object id or name.
    pub object: Option<String>,
    /// e.g. `person:alice@example.org` or `node:node1.example.org`.
    pub actor: Option<String>,
    /// Unix seconds.
    pub since: Option<i64>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// The audit log, newest first. Admins see everything; others see their own actions and the
/// events of their sites' objects.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", operation_id = "list_events",
    params(EventQuery), responses((status = 200, body = Page<Event>), (status = 422)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<Page<Event>>> {
    caller.person()?;
    let p = paging(q.limit, q.offset)?;
    let f = EventFilter {
        object_type: q.object_type,
        object: q.object,
        actor: q.actor,
        since: q.since,
        visible_to: None,
    };
    let (items, total) = queries::events(&st, &caller.actor, f, p).await?;
    Ok(Json(Page {
        items,
        total,
        limit: p.limit,
        offset: p.offset,
    }))
}

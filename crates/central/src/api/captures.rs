//! `POST /api/v1/slices/{slice}/captures`: may the caller capture the slice's sliver on a node,
//! and how does it get there. The work is `crate::ops::captures`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use slicelab_model::capture::{CaptureCreate, CaptureTicket};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::ops;
use crate::state::AppState;

/// Allows a capture of the slice's sliver on `node` and records it (event
/// `sliver.capture_request`): for the slice's persons, the PIs and techs of the node's site and
/// admins. The packets come from the node over SSH as the answer says (`ssh_user`, `via`);
/// the node checks the login again and reports the capture (event `sliver.capture`).
#[utoipa::path(post, path = "/api/v1/slices/{slice}/captures", tag = "slices", operation_id = "create_capture",
    request_body = CaptureCreate, params(("slice" = String, Path, description = "id or name")),
    responses((status = 201, body = CaptureTicket),
        (status = 403, description = "Not a person of the slice, a PI or tech of the node's site, or an admin."),
        (status = 404, description = "No such slice."),
        (status = 409, description = "The slice has no sliver on that node."),
        (status = 422, description = "An unknown node, or a bound out of range (duration, packets, filter size).")))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    Path(slice): Path<String>,
    ApiJson(c): ApiJson<CaptureCreate>,
) -> ApiResult<(StatusCode, Json<CaptureTicket>)> {
    caller.person()?;
    let ticket = ops::captures::authorize(&st, &caller.actor, &slice, &c).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

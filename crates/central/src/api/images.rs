//! Images under `/api/v1/images` (publish, list, show, delete: `crate::ops::images` and
//! `crate::queries`), and the node's fetch of a manifest by digest (`/api/v1/node/manifests`).

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use slicelab_model::image::{Image, ImageManifest, NewImage};

use crate::api::blobs::IMMUTABLE;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::ops;
use crate::queries;
use crate::state::AppState;

/// The images the caller may use: `platform` images and its sites' (admins: all), by name.
#[utoipa::path(get, path = "/api/v1/images", tag = "images", operation_id = "list_images",
    responses((status = 200, body = Vec<Image>)))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Image>>> {
    caller.person()?;
    Ok(Json(queries::images(&st, &caller.actor).await?))
}

/// Publishes an image whose layer blobs were uploaded (`PUT /blobs/{digest}`). Its digest is
/// the sha256 of the manifest's canonical JSON.
#[utoipa::path(post, path = "/api/v1/images", tag = "images", operation_id = "create_image",
    request_body = NewImage,
    responses((status = 201, body = Image),
        (status = 403, description = "Platform images are for admins; site images for the site's persons."),
        (status = 409, description = "The name is taken (`conflict`)."),
        (status = 422, description = "A bad name or manifest, an unknown site, a layer blob not uploaded with that size (the message names it), or the site's image quota exceeded (`field` is `quota`).")))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewImage>,
) -> ApiResult<(StatusCode, Json<Image>)> {
    caller.person()?;
    let img = ops::images::create(&st, &caller.actor, &new).await?;
    Ok((StatusCode::CREATED, Json(img)))
}

#[utoipa::path(get, path = "/api/v1/images/{name}", tag = "images", operation_id = "show_image",
    params(("name" = String, Path)),
    responses((status = 200, body = Image), (status = 404, description = "No such image, or one of another site.")))]
pub async fn show(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Image>> {
    caller.person()?;
    Ok(Json(queries::image(&st, &caller.actor, &name).await?))
}

/// Deletes an image no slice's `image` tag names; the blobs no other image uses go with it.
#[utoipa::path(delete, path = "/api/v1/images/{name}", tag = "images", operation_id = "delete_image",
    params(("name" = String, Path)),
    responses((status = 204),
        (status = 403, description = "Only its publisher, its site's PIs and admins may delete it."),
        (status = 404, description = "No such image, or one of another site."),
        (status = 409, description = "Slices name it in their `image` tag; the message names every one.")))]
pub async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.person()?;
    ops::images::delete(&st, &caller.actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The manifest with this digest, as the exact bytes the digest is the sha256 of (the node
/// checks them before it uses them).
#[utoipa::path(get, path = "/api/v1/node/manifests/{digest}", tag = "node", operation_id = "node_manifest",
    params(("digest" = String, Path, description = "`sha256:` and 64 lowercase hex digits", pattern = "^sha256:[0-9a-f]{64}$")),
    security(("node_key" = [])),
    responses((status = 200, body = ImageManifest,
            headers(("Cache-Control" = String, description = "Manifests are immutable."))),
        (status = 400, description = "Not a digest."),
        (status = 403, description = "Not a node key."),
        (status = 404, description = "No image has this digest.")))]
pub async fn node_manifest(
    State(st): State<AppState>,
    caller: Caller,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    caller.node_or_403()?;
    let digest = ops::blobs::checked_digest(&digest)?;
    let json = queries::image_manifest(&st, digest)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("manifest {digest} not found")))?;
    Ok((
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, IMMUTABLE),
        ],
        json,
    )
        .into_response())
}

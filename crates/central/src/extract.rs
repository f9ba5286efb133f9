//! Request extractors whose rejections are our JSON errors, never axum's plain-text ones.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body: malformed JSON is 400; wrong fields, types or unknown fields are 422.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "request body is too large",
                )
            } else {
                ApiError::bad_request(format!("cannot read request body: {e}"))
            }
        })?;
        // Every body of this API is an object; serde would also read a struct from an array.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "the request body must be a JSON object, not an array",
            ));
        }
        match serde_json::from_slice::<T>(&bytes) {
            Ok(v) => Ok(ApiJson(v)),
            Err(e) => {
                use serde_json::error::Category;
                match e.classify() {
                    // JSON does not tell `2` from `2.0`; only the second parse pays for that.
                    Category::Data => with_integral_floats(&bytes).ok_or_else(|| {
                        ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "invalid",
                            format!("invalid request body: {e}"),
                        )
                    }),
                    _ => Err(ApiError::bad_request(format!("malformed JSON: {e}"))),
                }
            }
        }
    }
}

/// The body parsed again with every integral number written as a float (`2.0`, `1e3`) read as
/// the integer it is, as JSON (and JSON Schema's `integer`) means it.
fn with_integral_floats<T: DeserializeOwned>(bytes: &[u8]) -> Option<ApiJson<T>> {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                    // In range of i64 (or u64) the cast is exact: f is integral.
                    if f >= i64::MIN as f64 && f < i64::MAX as f64 {
                        *n = (f as i64).into();
                    } else if f >= 0.0 && f < u64::MAX as f64 {
                        *n = (f as u64).into();
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            serde_json::Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    walk(&mut value);
    serde_json::from_value(value).ok().map(ApiJson)
}

/// Query parameters; unknown or malformed ones are 400.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::bad_request(format!("bad query parameters: {}", e.body_text())))
    }
}

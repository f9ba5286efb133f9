//! The web layer's errors, each rendered once as an HTML page with its status. Errors of
//! central's operations (`OpError`) map here once; form handlers show bad input and conflicts
//! again on their form instead (`pages::slices::finish`).

use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use slicelab_central::ops::OpError;
use slicelab_model::{Denied, ValidationError};
use thiserror::Error;

use crate::layout::{respond, Page, Section};
use crate::session::Viewer;

#[derive(Debug, Error)]
pub enum WebError {
    /// Not allowed for this person (or anonymous): another site's private page, say.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The page needs a login; the browser is sent to the login form, then back to `next`.
    #[error("log in first")]
    LoginRequired { next: String },
    /// A POST without the session's form token: a cross-site request or a stale page.
    #[error("this form has expired or did not come from this site; reload the page and try again")]
    Csrf,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type WebResult<T> = Result<T, WebError>;

impl From<Denied> for WebError {
    fn from(d: Denied) -> Self {
        WebError::Forbidden(d.message)
    }
}

impl From<ValidationError> for WebError {
    fn from(e: ValidationError) -> Self {
        WebError::BadRequest(e.to_string())
    }
}

impl From<OpError> for WebError {
    fn from(e: OpError) -> Self {
        match e {
            // Pages ask for a login before calling an operation; a lost session is refused.
            OpError::Unauthorized(m) | OpError::Forbidden(m) => WebError::Forbidden(m),
            OpError::Invalid { message, .. }
            | OpError::BadRequest(message)
            | OpError::TooLarge(message) => WebError::BadRequest(message),
            OpError::NotFound(m) => WebError::NotFound(m),
            OpError::Conflict(m) => WebError::Conflict(m),
            OpError::Internal(m) => WebError::Internal(m),
        }
    }
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::Forbidden(_) | WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::LoginRequired { .. } => StatusCode::SEE_OTHER,
            WebError::BadRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message for people: internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            WebError::Internal(_) => {
                "something went wrong on the server; it has been logged".into()
            }
            e => e.to_string(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::LoginRequired { next } = &self {
            let to = format!("/login?next={}", crate::session::url_encode(next));
            return (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response();
        }
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "web page failed");
        }
        let heading = match status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::UNPROCESSABLE_ENTITY => "Invalid input",
            _ => "Error",
        };
        let viewer = Viewer::anonymous();
        let body = html! {
            div.card {
                h1 { (status.as_u16()) " · " (heading) }
                div.notice.error role="alert" { (self.public_message()) }
                p { a href="/" { "Back to the overview" } " · " a href="/login" { "Log in as someone else" } }
            }
        };
        respond(
            status,
            Page::new(heading, Section::None, &viewer).render(body),
        )
    }
}

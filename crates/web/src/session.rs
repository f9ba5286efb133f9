//! Browser sessions: a login form, an HttpOnly SameSite=Strict cookie holding a session token
//! (the same kind of token the API's login issues; central stores only its hash), and a
//! per-session CSRF token that every POST form carries.
//!
//! Cookies are read by the web routes only: the JSON API keeps accepting bearer tokens alone,
//! so a cross-site page cannot drive it with a person's cookie. Logging in and out and finding
//! who a cookie belongs to are central's operations (`slicelab_central::ops::session`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use slicelab_central::new_secret;
use slicelab_central::ops::session::{self, SESSION_LIFETIME};
use slicelab_central::ops::OpError;
use slicelab_central::state::AppState;
use slicelab_model::{Actor, Person};

use crate::error::{WebError, WebResult};
use crate::layout::{respond, Notice, Page, Section};

pub const SESSION_COOKIE: &str = "slicelab_session";
/// Double-submit token of the login form (there is no session to bind it to yet).
const LOGIN_COOKIE: &str = "slicelab_login";

/// Who is looking at a page: a logged-in person or anonymous.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub actor: Actor,
    pub person: Option<Person>,
    token: Option<String>,
    token_id: Option<i64>,
    /// Path and query of the request, to come back to after logging in.
    pub here: String,
}

impl Viewer {
    pub fn anonymous() -> Viewer {
        Viewer {
            actor: Actor::Anonymous,
            person: None,
            token: None,
            token_id: None,
            here: "/".into(),
        }
    }

    /// The CSRF token of this session: derived from the secret session token, so it cannot be
    /// guessed by another site and needs no storage.
    pub fn csrf(&self) -> String {
        match &self.token {
            Some(t) => csrf_for(t),
            None => String::new(),
        }
    }

    /// The logged-in person, or a redirect to the login form.
    pub fn person(&self) -> WebResult<&Person> {
        self.person.as_ref().ok_or_else(|| WebError::LoginRequired {
            next: self.here.clone(),
        })
    }

    /// For POST handlers: the person, once the form's CSRF token matched the session's.
    pub fn check_form(&self, form: &FormData) -> WebResult<&Person> {
        let me = self.person()?;
        let sent = form.get("csrf");
        if sent.is_empty() || !constant_time_eq(sent.as_bytes(), self.csrf().as_bytes()) {
            return Err(WebError::Csrf);
        }
        Ok(me)
    }

    pub fn label(&self) -> String {
        self.actor.label()
    }

    /// (site id, login_base) of the viewer's sites.
    pub fn sites(&self) -> Vec<(i64, String)> {
        match (&self.actor, &self.person) {
            (Actor::Person { site_ids, .. }, Some(p)) => site_ids
                .iter()
                .copied()
                .zip(p.sites.iter().cloned())
                .collect(),
            _ => Vec::new(),
        }
    }
}

pub fn csrf_for(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"slicelab-web-csrf\0");
    h.update(session_token.as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> WebResult<Viewer> {
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let mut v = Viewer::anonymous();
        v.here = here;
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(v);
        };
        let Some(s) = session::authenticate(st, &token).await? else {
            return Ok(v);
        };
        v.actor = s.actor;
        v.person = Some(s.person);
        v.token = Some(token);
        v.token_id = Some(s.token_id);
        Ok(v)
    }
}

/// An `application/x-www-form-urlencoded` body, keeping repeated fields (checkbox lists).
#[derive(Debug, Clone, Default)]
pub struct FormData(pub Vec<(String, String)>);

/// Largest form accepted (an initscript tag is at most 64 KiB).
const FORM_MAX: usize = 256 * 1024;

impl FormData {
    pub fn parse(body: &[u8]) -> FormData {
        FormData(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
    /// The trimmed first value, `None` if empty.
    pub fn opt(&self, name: &str) -> Option<&str> {
        Some(self.get(name).trim()).filter(|s| !s.is_empty())
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> WebResult<FormData> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| WebError::BadRequest(format!("cannot read the form: {e}")))?;
        if body.len() > FORM_MAX {
            return Err(WebError::BadRequest("the form is too large".into()));
        }
        Ok(FormData::parse(&body))
    }
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A 303 to `to` (after a successful POST).
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_string())]).into_response()
}

/// Only local paths: `next` must not send people to another site after login.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/my"
    }
}

fn set_cookie(name: &str, value: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn login_page(
    viewer: &Viewer,
    next: &str,
    email: &str,
    login_token: &str,
    notice: Option<Notice>,
) -> maud::Markup {
    Page::new("Log in", Section::Login, viewer)
        .notice(notice)
        .render(html! {
            div.card style="max-width:480px;margin:2rem auto" {
                h1 { "Log in" }
                p.muted { "Researchers, PIs, techs and admins log in with their registry email and password." }
                form.stack method="post" action="/login" id="login" {
                    input type="hidden" name="login_token" value=(login_token);
                    input type="hidden" name="next" value=(next);
                    label { "Email" input type="email" name="email" value=(email) required autocomplete="username"; }
                    label { "Password" input type="password" name="password" required autocomplete="current-password"; }
                    button type="submit" { "Log in" }
                }
            }
        })
}

pub async fn login_form(viewer: Viewer, Query(q): Query<LoginQuery>) -> Response {
    let token = new_secret("");
    let next = safe_next(q.next.as_deref().unwrap_or("/my")).to_string();
    let mut r = respond(StatusCode::OK, login_page(&viewer, &next, "", &token, None));
    r.headers_mut()
        .append(SET_COOKIE, set_cookie(LOGIN_COOKIE, &token, 3600));
    r
}

pub async fn login(
    State(st): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    form: FormData,
) -> WebResult<Response> {
    let next = safe_next(form.get("next")).to_string();
    let email = form.get("email").trim().to_string();
    let sent = form.get("login_token");
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let retry = |status: StatusCode, msg: &str| {
        let token = new_secret("");
        let mut r = respond(
            status,
            login_page(
                &viewer,
                &next,
                &email,
                &token,
                Some(Notice::Error(msg.into())),
            ),
        );
        r.headers_mut()
            .append(SET_COOKIE, set_cookie(LOGIN_COOKIE, &token, 3600));
        r
    };
    if sent.is_empty() || !constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
        return Ok(retry(
            StatusCode::FORBIDDEN,
            "the login form expired or did not come from this site; try again",
        ));
    }
    if email.is_empty() || form.get("password").is_empty() {
        return Ok(retry(
            StatusCode::UNPROCESSABLE_ENTITY,
            "enter your email and password",
        ));
    }
    let login = match session::login(&st, &email, form.get("password"), "web").await {
        Ok(l) => l,
        Err(OpError::Unauthorized(m)) => return Ok(retry(StatusCode::UNAUTHORIZED, &m)),
        Err(e) => return Err(e.into()),
    };
    let mut r = see_other(&next);
    r.headers_mut().append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, &login.token, SESSION_LIFETIME),
    );
    r.headers_mut()
        .append(SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0));
    Ok(r)
}

pub async fn logout(
    State(st): State<AppState>,
    viewer: Viewer,
    form: FormData,
) -> WebResult<Response> {
    viewer.check_form(&form)?;
    if let Some(id) = viewer.token_id {
        match session::logout(&st, &viewer.actor, id).await {
            Ok(()) | Err(OpError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut r = see_other("/");
    r.headers_mut()
        .append(SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_forms_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; slicelab_session=slt_abc ; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("slt_abc"));
        assert_eq!(cookie(&h, "c"), None);
        let f = FormData::parse(b"node=a&node=b&name=x+y&csrf=%2F");
        assert_eq!(f.all("node"), vec!["a", "b"]);
        assert_eq!(f.get("name"), "x y");
        assert_eq!(f.get("csrf"), "/");
        assert_eq!(f.get("missing"), "");
        assert_eq!(f.opt("missing"), None);
    }

    #[test]
    fn csrf_is_per_session_and_next_stays_local() {
        assert_ne!(csrf_for("slt_a"), csrf_for("slt_b"));
        assert_eq!(csrf_for("slt_a"), csrf_for("slt_a"));
        assert_eq!(safe_next("//evil.example/"), "/my");
        assert_eq!(safe_next("https://evil.example/"), "/my");
        assert_eq!(safe_next("/slices/x"), "/slices/x");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}

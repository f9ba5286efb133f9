//! What an HTTPS central adds to every answer: HSTS (browsers stay on HTTPS for a year) and the
//! `Secure` attribute on every cookie the web sets, so a session never crosses in clear. One
//! layer over all front ends, so no page can forget it.

use axum::http::header::{HeaderValue, SET_COOKIE, STRICT_TRANSPORT_SECURITY};
use axum::response::Response;

const HSTS: &str = "max-age=31536000";

pub(crate) async fn harden(mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    let cookies: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    if !cookies.is_empty() {
        headers.remove(SET_COOKIE);
        for c in cookies {
            headers.append(SET_COOKIE, secure_cookie(c));
        }
    }
    resp
}

/// The cookie with `; Secure` (unless it has it already).
fn secure_cookie(c: HeaderValue) -> HeaderValue {
    let Ok(text) = c.to_str() else { return c };
    if text
        .split(';')
        .any(|a| a.trim().eq_ignore_ascii_case("secure"))
    {
        return c;
    }
    HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cookies_get_secure_and_answers_hsts() {
        let mut resp = Response::new(axum::body::Body::empty());
        resp.headers_mut()
            .append(SET_COOKIE, HeaderValue::from_static("a=1; HttpOnly"));
        resp.headers_mut()
            .append(SET_COOKIE, HeaderValue::from_static("b=2; Secure"));
        let resp = harden(resp).await;
        let got: Vec<_> = resp.headers().get_all(SET_COOKIE).iter().collect();
        assert_eq!(got, ["a=1; HttpOnly; Secure", "b=2; Secure"]);
        assert_eq!(resp.headers()[STRICT_TRANSPORT_SECURITY], HSTS);
    }
}

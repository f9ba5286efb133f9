//! Registry authentication: parsing `WWW-Authenticate` challenges (pure) and the Bearer token
//! flow (a token from the challenge's realm, with Basic credentials if given).

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::ImageError;

/// Credentials for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    Anonymous,
    Basic { user: String, password: String },
}

/// What a registry's 401 asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value: a scheme, then `key="value"` (or bare `key=value`)
/// parameters separated by commas; quoted values may hold commas.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

/// Fetches a Bearer token from `realm` for `service` and `scope`.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    auth: &RegistryAuth,
    realm: &str,
    service: Option<&str>,
    scope: &str,
) -> Result<String, ImageError> {
    let mut query: Vec<(&str, &str)> = vec![("scope", scope)];
    if let Some(s) = service {
        query.push(("service", s));
    }
    let mut req = http.get(realm).query(&query);
    if let RegistryAuth::Basic { user, password } = auth {
        req = req.basic_auth(user, Some(password));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| ImageError::Registry(format!("token from {realm}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let hint = match (status.as_u16(), auth) {
            (401 | 403, RegistryAuth::Anonymous) => " (the registry wants credentials)",
            (401 | 403, _) => " (wrong credentials?)",
            _ => "",
        };
        return Err(ImageError::Registry(format!(
            "token from {realm}: {status}{hint}"
        )));
    }
    let answer: TokenAnswer = resp
        .json()
        .await
        .map_err(|e| ImageError::Registry(format!("token from {realm}: {e}")))?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ImageError::Registry(format!("token from {realm}: no token in the answer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull,push""#;
        assert_eq!(
            parse_challenge(h),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/debian:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge("bearer realm=http://h/t, service=x"),
            Some(Challenge::Bearer {
                realm: "http://h/t".into(),
                service: Some("x".into()),
                scope: None,
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="r""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(""), None);
    }
}

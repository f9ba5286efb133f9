//! JSON Schema of the strings `names` validates, for the OpenAPI document (`#[schema(schema_with =
//! ...)]` on request fields). Each pattern says in ECMA-262 what its validator checks; the tests
//! below hold every pattern and length to its validator, so the document cannot drift from the
//! rules.

use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

use crate::names;

/// Control characters other than tab and newline (what `names::text` refuses).
const CONTROL: &str = r"\x00-\x08\x0b-\x1f\x7f-\x9f";
/// Control characters and white space (`char::is_whitespace`): what `trim` removes or text refuses.
const BLANK: &str = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// Free text: no control characters but tab and newline.
pub fn text_pattern() -> String {
    format!("^[^{CONTROL}]*$")
}

/// Free text with at least one character that is not white space.
pub fn required_text_pattern() -> String {
    format!("^[^{CONTROL}]*[^{BLANK}][^{CONTROL}]*$")
}

pub const LOGIN_BASE_PATTERN: &str = "^[a-z][a-z0-9]*$";
/// `<login_base>_<suffix>`; that the site exists is checked by the server.
pub const SLICE_NAME_PATTERN: &str = "^[a-z][a-z0-9]{0,19}_[a-z0-9_]+$";
pub const HOSTNAME_PATTERN: &str = "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";
pub const REGION_PATTERN: &str = "^[a-z0-9-]*$";
/// An image's name (`names::image`); that it is not the built-in image's is checked by the server.
pub const IMAGE_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]*$";
/// A content digest (`image::check_digest`).
pub const DIGEST_PATTERN: &str = "^sha256:[0-9a-f]{64}$";
/// Exactly one `@` with something on each side; no white space or control characters.
pub fn email_pattern() -> String {
    format!("^[^@{BLANK}]+@[^@{BLANK}]+$")
}

fn string(pattern: Option<String>, min: Option<usize>, max: usize, nullable: bool) -> Object {
    let ty = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(ty)
        .pattern(pattern)
        .min_length(min)
        .max_length(Some(max))
        .build()
}

pub fn login_base() -> Object {
    string(
        Some(LOGIN_BASE_PATTERN.into()),
        None,
        names::LOGIN_BASE_MAX,
        false,
    )
}

pub fn slice_name() -> Object {
    string(
        Some(SLICE_NAME_PATTERN.into()),
        None,
        names::SLICE_NAME_MAX,
        false,
    )
}

pub fn hostname() -> Object {
    string(
        Some(HOSTNAME_PATTERN.into()),
        None,
        names::HOSTNAME_MAX,
        false,
    )
}

pub fn email() -> Object {
    string(Some(email_pattern()), None, names::EMAIL_MAX, false)
}

/// A person's or site's name: required text.
pub fn name() -> Object {
    string(Some(required_text_pattern()), None, names::TEXT_MAX, false)
}

pub fn name_or_null() -> Object {
    string(Some(required_text_pattern()), None, names::TEXT_MAX, true)
}

/// A token's name.
pub fn token_name() -> Object {
    string(
        Some(required_text_pattern()),
        None,
        names::TOKEN_NAME_MAX,
        false,
    )
}

pub fn url() -> Object {
    string(Some(text_pattern()), None, names::TEXT_MAX, false)
}

pub fn url_or_null() -> Object {
    string(Some(text_pattern()), None, names::TEXT_MAX, true)
}

pub fn description() -> Object {
    string(Some(text_pattern()), None, names::DESCRIPTION_MAX, false)
}

pub fn description_or_null() -> Object {
    string(Some(text_pattern()), None, names::DESCRIPTION_MAX, true)
}

/// A capture's filter expression (free text, at most `capture::MAX_FILTER_LEN`), or null.
pub fn capture_filter() -> Object {
    string(
        Some(text_pattern()),
        None,
        crate::capture::MAX_FILTER_LEN,
        true,
    )
}

pub fn region() -> Object {
    string(Some(REGION_PATTERN.into()), None, names::REGION_MAX, false)
}

pub fn region_or_null() -> Object {
    string(Some(REGION_PATTERN.into()), None, names::REGION_MAX, true)
}

pub fn image_name() -> Object {
    string(
        Some(IMAGE_NAME_PATTERN.into()),
        None,
        names::IMAGE_NAME_MAX,
        false,
    )
}

pub fn digest() -> Object {
    string(Some(DIGEST_PATTERN.into()), None, 71, false)
}

pub fn password_or_null() -> Object {
    string(None, Some(names::PASSWORD_MIN), names::PASSWORD_MAX, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    /// Strings near every rule's edges.
    fn corpus() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            " ",
            "  ",
            "\t",
            "\n",
            "a",
            "A",
            "0",
            "-",
            "_",
            "a_",
            "_a",
            "a_b",
            "ab_c_d",
            "a-b",
            "-a",
            "a-",
            "a.b",
            "a..b",
            ".a",
            "a.",
            "a b",
            " a",
            "a ",
            "a\n",
            "\na",
            "a\tb",
            "a\u{7}b",
            "a\u{0}",
            "\u{85}",
            "a\u{85}",
            "\u{a0}",
            "\u{a0}x",
            "\u{2003}",
            "\u{3000}a",
            "\u{feff}",
            "\u{200b}",
            "é",
            "aé",
            "x@y",
            "@y",
            "x@",
            "x@y@z",
            "x y@z",
            "x@y z",
            "x@\u{a0}",
            "\u{1f600}@b",
            "Ab",
            "aB",
            "a1",
            "1a",
            "princeton",
            "princeton_exp",
            "princeton_Exp",
            "node1.princeton.edu",
            "-bad.edu",
            "a\u{7f}",
            "a\u{9f}",
            "a\u{a1}",
            "\u{2028}",
            "\u{205f}b",
            "x\u{2029}y",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [
            19, 20, 21, 31, 32, 33, 63, 64, 65, 199, 200, 201, 253, 254, 255,
        ] {
            v.push("a".repeat(n));
            v.push(format!("{}@b", "é".repeat(n.saturating_sub(2))));
            v.push(format!("a_{}", "b".repeat(n.saturating_sub(2))));
        }
        v.push(format!("{}.b", "a".repeat(63)));
        v.push(format!("{}.b", "a".repeat(64)));
        for d in ["sha256:", "sha512:", "SHA256:", "sha256:x"] {
            for n in [63, 64, 65] {
                v.push(format!("{d}{}", "a".repeat(n)));
                v.push(format!("{d}{}", "0F".repeat(n / 2)));
            }
        }
        v.push(format!("sha256:{}\n", "a".repeat(64)));
        v.push(format!(" sha256:{}", "a".repeat(64)));
        v.push(format!("sha256:{}g", "a".repeat(63)));
        v
    }

    /// What the schema says of `s`: the pattern matches and the length (in characters) is in bounds.
    fn schema_accepts(o: &Object, s: &str) -> bool {
        let len = s.chars().count();
        let pattern_ok = o
            .pattern
            .as_ref()
            .is_none_or(|p| Regex::new(p).expect("pattern compiles").is_match(s));
        pattern_ok && o.min_length.is_none_or(|m| len >= m) && o.max_length.is_none_or(|m| len <= m)
    }

    fn agrees(what: &str, o: Object, validator: impl Fn(&str) -> bool) {
        for s in corpus() {
            assert_eq!(
                schema_accepts(&o, &s),
                validator(&s),
                "{what}: schema and validator disagree on {s:?}"
            );
        }
    }

    #[test]
    fn patterns_accept_what_validators_accept() {
        agrees("login_base", login_base(), |s| names::login_base(s).is_ok());
        agrees("hostname", hostname(), |s| names::hostname(s).is_ok());
        agrees("email", email(), |s| names::email(s).is_ok());
        agrees("name", name(), |s| {
            names::required_text("n", s, names::TEXT_MAX).is_ok()
        });
        agrees("token name", token_name(), |s| {
            names::required_text("n", s, names::TOKEN_NAME_MAX).is_ok()
        });
        agrees("url", url(), |s| {
            names::text("u", s, names::TEXT_MAX).is_ok()
        });
        agrees("description", description(), |s| {
            names::text("d", s, names::DESCRIPTION_MAX).is_ok()
        });
        agrees("region", region(), |s| names::region(s).is_ok());
        agrees("capture filter", capture_filter(), |s| {
            crate::capture::CaptureRequest {
                filter: Some(s.to_string()),
                ..Default::default()
            }
            .validate()
            .is_ok()
        });
        agrees("image name", image_name(), |s| names::image(s).is_ok());
        agrees("digest", digest(), |s| {
            crate::image::check_digest(s).is_ok()
        });
        agrees("password", password_or_null(), |s| {
            names::password(s).is_ok()
        });
        // A slice name also needs its site: the schema is the rule given the login_base before `_`.
        agrees("slice name", slice_name(), |s| {
            names::slice_login_base(s).is_some_and(|base| {
                names::login_base(base).is_ok() && names::slice_name(s, base).is_ok()
            })
        });
    }
}

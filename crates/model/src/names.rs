//! Names of registry objects and their rules; [`SliceName`], the slice name as a type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Invalid, ValidationError};

pub const LOGIN_BASE_MAX: usize = 20;
pub const SLICE_NAME_MAX: usize = 32;
pub const HOSTNAME_MAX: usize = 253;
pub const EMAIL_MAX: usize = 254;
pub const TEXT_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 2000;
pub const REGION_MAX: usize = 64;
pub const TOKEN_NAME_MAX: usize = 64;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 256;

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A site's `login_base`: lowercase letters and digits, starting with a letter (PlanetLab's rule; it
/// prefixes slice names, so `_` is not allowed in it).
pub fn login_base(s: &str) -> Invalid<()> {
    let f = "login_base";
    if s.is_empty() {
        return Err(ValidationError::new(f, "must not be empty"));
    }
    if s.len() > LOGIN_BASE_MAX {
        return Err(ValidationError::new(
            f,
            format!(
                "is {} characters long, at most {LOGIN_BASE_MAX} allowed",
                s.len()
            ),
        ));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) || !s.chars().all(is_lower_alnum) {
        return Err(ValidationError::new(
            f,
            format!("{s:?} must be lowercase letters and digits, starting with a letter"),
        ));
    }
    Ok(())
}

/// The one name no slice may take: nodes' SSH gateways answer `ssh site_admin@NODE` with the
/// admin context of the node's site (PlanetLab's `site_admin` account).
pub const RESERVED_SLICE_NAME: &str = "site_admin";

/// A slice's name: `<login_base>_<suffix>`, where `login_base` is a site's (see [`login_base`])
/// and the suffix is lowercase letters, digits and `_`. The whole is short enough to be a hostname
/// label and to prefix kernel object names (veth names are 15 bytes, so nodes hash longer ones).
///
/// Valid by construction: [`SliceName::parse`] is the one rule for slice names, used by central
/// (with [`slice_name`], which also ties the name to its site) and by the node manager (which
/// adds the limits of its kernel objects). Serialises as the bare string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String)]
pub struct SliceName(String);

impl SliceName {
    /// The rule for slice names (field `name` in errors).
    pub fn parse(s: &str) -> Invalid<SliceName> {
        let f = "name";
        if s.len() > SLICE_NAME_MAX {
            return Err(ValidationError::new(
                f,
                format!(
                    "is {} characters long, at most {SLICE_NAME_MAX} allowed",
                    s.len()
                ),
            ));
        }
        if s == RESERVED_SLICE_NAME {
            return Err(ValidationError::new(
                f,
                format!("{s:?} is reserved: it is the node's admin context (ssh {s}@NODE)"),
            ));
        }
        let Some((base, suffix)) = s.split_once('_') else {
            return Err(ValidationError::new(
                f,
                format!("{s:?} must be a site's login_base, an underscore and a suffix"),
            ));
        };
        if let Err(e) = login_base(base) {
            return Err(ValidationError::new(
                f,
                format!("{s:?} must start with a site's login_base: {}", e.message),
            ));
        }
        if suffix.is_empty() {
            return Err(ValidationError::new(
                f,
                "needs a suffix after the underscore",
            ));
        }
        if !suffix.chars().all(|c| is_lower_alnum(c) || c == '_') {
            return Err(ValidationError::new(
                f,
                format!("suffix {suffix:?} must be lowercase letters, digits and underscores"),
            ));
        }
        Ok(SliceName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `login_base` of the slice's site.
    pub fn login_base(&self) -> &str {
        self.0.split_once('_').map_or("", |(base, _)| base)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SliceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SliceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for SliceName {
    type Err = ValidationError;
    fn from_str(s: &str) -> Invalid<SliceName> {
        SliceName::parse(s)
    }
}

impl TryFrom<String> for SliceName {
    type Error = ValidationError;
    fn try_from(s: String) -> Invalid<SliceName> {
        SliceName::parse(&s)
    }
}

impl From<SliceName> for String {
    fn from(n: SliceName) -> String {
        n.0
    }
}

/// A new slice's name for the site with `site_login_base`: a valid [`SliceName`] that starts
/// with that site's `login_base` and an underscore.
pub fn slice_name(s: &str, site_login_base: &str) -> Invalid<()> {
    let name = SliceName::parse(s);
    let of_site = s
        .strip_prefix(site_login_base)
        .is_some_and(|rest| rest.starts_with('_'));
    if s.len() <= SLICE_NAME_MAX && !of_site {
        return Err(ValidationError::new(
            "name",
            format!("{s:?} must start with the site's login_base and an underscore: \"{site_login_base}_...\""),
        ));
    }
    name.map(drop)
}

/// The `login_base` part of a slice name, if it has one.
pub fn slice_login_base(name: &str) -> Option<&str> {
    name.split_once('_').map(|(base, _)| base)
}

/// A node hostname: DNS labels of letters, digits and `-`, dot-separated.
pub fn hostname(s: &str) -> Invalid<()> {
    let f = "hostname";
    if s.is_empty() || s.len() > HOSTNAME_MAX {
        return Err(ValidationError::new(
            f,
            format!("must be 1 to {HOSTNAME_MAX} characters"),
        ));
    }
    for label in s.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(ValidationError::new(
                f,
                format!("{s:?} is not a valid hostname (label {label:?})"),
            ));
        }
    }
    Ok(())
}

pub fn email(s: &str) -> Invalid<()> {
    let f = "email";
    let len = s.chars().count();
    if len > EMAIL_MAX {
        return Err(ValidationError::new(
            f,
            format!("is {len} characters long, at most {EMAIL_MAX} allowed"),
        ));
    }
    let valid = match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !valid {
        return Err(ValidationError::new(
            f,
            format!("{s:?} is not an email address"),
        ));
    }
    Ok(())
}

/// Free text such as a person's or site's name: bounded, no control characters.
pub fn text(field: &str, s: &str, max: usize) -> Invalid<()> {
    if s.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!(
                "is {} characters long, at most {max} allowed",
                s.chars().count()
            ),
        ));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Non-empty bounded text.
pub fn required_text(field: &str, s: &str, max: usize) -> Invalid<()> {
    if s.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    text(field, s, max)
}

/// Longest image name.
pub const IMAGE_NAME_MAX: usize = 64;

/// An image name as slices give it in their `image` tag and `slicelab image import` takes it.
pub fn image(s: &str) -> Invalid<()> {
    let ok = !s.is_empty()
        && s.len() <= IMAGE_NAME_MAX
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !ok {
        return Err(ValidationError::new(
            "image",
            format!("{s:?} must be 1-64 of a-z 0-9 . _ - starting with a letter or digit"),
        ));
    }
    Ok(())
}

/// A password: long enough to resist guessing, short enough to hash cheaply.
pub fn password(s: &str) -> Invalid<()> {
    let n = s.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        return Err(ValidationError::new(
            "password",
            format!("must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"),
        ));
    }
    Ok(())
}

/// A node's placement region: lowercase letters, digits and `-` (may be empty).
pub fn region(r: &str) -> Invalid<()> {
    text("region", r, REGION_MAX)?;
    if !r
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ValidationError::new(
            "region",
            format!("{r:?} must be lowercase letters, digits and -"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_base_rules() {
        assert!(login_base("princeton").is_ok());
        assert!(login_base("mit2").is_ok());
        assert!(login_base("").is_err());
        assert!(login_base("Princeton").is_err());
        assert!(login_base("2mit").is_err());
        assert!(login_base("a_b").is_err());
        assert!(login_base(&"a".repeat(LOGIN_BASE_MAX + 1)).is_err());
    }

    #[test]
    fn slice_names_carry_their_site() {
        assert!(slice_name("princeton_codeen", "princeton").is_ok());
        assert!(slice_name("princeton_my_exp2", "princeton").is_ok());
        let e = slice_name("mit_codeen", "princeton").unwrap_err();
        assert!(e.message.contains("princeton_"), "{e}");
        assert!(slice_name("princeton_", "princeton").is_err());
        assert!(slice_name("princetonx_a", "princeton").is_err());
        assert!(slice_name("princeton_Big", "princeton").is_err());
        assert!(slice_name("princeton_a-b", "princeton").is_err());
        assert!(slice_name(&format!("princeton_{}", "a".repeat(40)), "princeton").is_err());
        assert_eq!(slice_login_base("princeton_codeen"), Some("princeton"));
        // The node's admin context keeps its name even for a site called "site".
        let e = slice_name("site_admin", "site").unwrap_err();
        assert!(e.message.contains("reserved"), "{e}");
        assert!(slice_name("site_admins", "site").is_ok());
    }

    #[test]
    fn slice_name_is_one_rule() {
        let n = SliceName::parse("princeton_my_exp2").unwrap();
        assert_eq!(
            (n.as_str(), n.login_base()),
            ("princeton_my_exp2", "princeton")
        );
        for bad in [
            "",
            "nounderscore",
            "_x",
            "Princeton_x",
            "2mit_x",
            "princeton_",
            "princeton_a-b",
            "../etc",
            "pl_web/..",
        ] {
            let e = SliceName::parse(bad).unwrap_err();
            assert_eq!(e.field, "name", "{bad:?}");
        }
        assert!(SliceName::parse(&format!("pl_{}", "a".repeat(SLICE_NAME_MAX - 3))).is_ok());
        assert!(SliceName::parse(&format!("pl_{}", "a".repeat(SLICE_NAME_MAX - 2))).is_err());
        // Everything `slice_name` accepts is a `SliceName`.
        assert!(slice_name("princeton_codeen", "princeton").is_ok());
        assert!("princeton_codeen".parse::<SliceName>().is_ok());
    }

    #[test]
    fn slice_name_json_is_the_bare_string_and_is_checked() {
        let n: SliceName = serde_json::from_str("\"pl_web\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"pl_web\"");
        assert!(serde_json::from_str::<SliceName>("\"../etc\"").is_err());
    }

    #[test]
    fn hostnames_and_emails() {
        assert!(hostname("node1.princeton.edu").is_ok());
        assert!(hostname("-bad.edu").is_err());
        assert!(hostname("a..b").is_err());
        assert!(hostname("a b").is_err());
        assert!(email("pi@princeton.edu").is_ok());
        assert!(email("nobody").is_err());
        assert!(email("a@b@c").is_err());
        assert!(email("a b@c").is_err());
    }

    #[test]
    fn text_is_bounded() {
        assert!(text("name", "Princeton University", TEXT_MAX).is_ok());
        assert!(text("name", &"x".repeat(TEXT_MAX + 1), TEXT_MAX).is_err());
        assert!(text("name", "a\u{7}b", TEXT_MAX).is_err());
        assert!(required_text("name", "  ", TEXT_MAX).is_err());
    }
}

//! Who may log in: the user name is the slice (the key must be one of the slice's persons' keys)
//! or [`SITE_ADMIN`] (a key of a PI or tech of the node's site, or of an admin).
//!
//! Messages: the SSH protocol has no per-attempt failure text, so when the gateway refuses a
//! login it sends `SSH_MSG_DISCONNECT` (reason "no more auth methods available") carrying the
//! reason, which OpenSSH's client prints as
//! `Received disconnect from HOST port PORT:14: slice X has no sliver on this node`.

use russh::keys::PublicKey;

use crate::service::{AuthorizedKey, Login, SITE_ADMIN};

/// Why a login is refused; the `Display` text is what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoSliver {
        slice: String,
    },
    KeyNotAuthorized {
        slice: String,
    },
    /// `site_admin`, but the node has no admin context (an older central sent no staff).
    NoAdminContext,
    /// `site_admin` with a key of nobody who administers this node.
    NotStaff,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoSliver { slice } => write!(
                f,
                "slice {slice:?} has no sliver on this node (log in as SLICE@NODE with a slice that runs here)"
            ),
            Refusal::KeyNotAuthorized { slice } => write!(
                f,
                "key not authorized for slice {slice:?}: it is not a key of any person in the slice"
            ),
            Refusal::NoAdminContext => write!(f, "this node offers no {SITE_ADMIN} context"),
            Refusal::NotStaff => write!(
                f,
                "key not authorized for {SITE_ADMIN}: it is not a key of a PI or tech of this node's site, nor of an admin"
            ),
        }
    }
}

/// Does the `authorized_keys`-style `line` (`algorithm base64 [comment]`) name the same key as
/// `offered`? Compares the key data (algorithm and public key), ignoring comments; lines that do
/// not parse never match.
pub fn key_matches(line: &str, offered: &PublicKey) -> bool {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return false;
    }
    match PublicKey::from_openssh(line) {
        Ok(k) => k.key_data() == offered.key_data(),
        Err(_) => false,
    }
}

/// Why `user` cannot log in at all (no sliver, no admin context), before any key is looked at.
pub fn unknown_user(user: &str) -> Refusal {
    if user == SITE_ADMIN {
        Refusal::NoAdminContext
    } else {
        Refusal::NoSliver {
            slice: user.to_string(),
        }
    }
}

/// Decides whether `offered` may log in as `user` (a slice, or [`SITE_ADMIN`]), given the keys
/// the access object knows now; the login names the person whose key matched.
pub fn check(
    keys: Option<Vec<AuthorizedKey>>,
    user: &str,
    offered: &PublicKey,
) -> Result<Login, Refusal> {
    let Some(keys) = keys else {
        return Err(unknown_user(user));
    };
    match keys.into_iter().find(|k| key_matches(&k.key, offered)) {
        Some(k) if user == SITE_ADMIN => Ok(Login::SiteAdmin { person: k.person }),
        Some(k) => Ok(Login::Slice {
            slice: user.to_string(),
            person: k.person,
        }),
        None if user == SITE_ADMIN => Err(Refusal::NotStaff),
        None => Err(Refusal::KeyNotAuthorized {
            slice: user.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6mwuiCgEj5IOErDJ69hnStVLbIEwiAnpCShyp6iSC/ a@example";

    fn key(line: &str) -> PublicKey {
        PublicKey::from_openssh(line).unwrap()
    }

    fn other_key() -> PublicKey {
        use russh::keys::ssh_key::private::Ed25519Keypair;
        russh::keys::PrivateKey::from(Ed25519Keypair::from_seed(&[7u8; 32]))
            .public_key()
            .clone()
    }

    #[test]
    fn matches_ignoring_comment_and_whitespace() {
        let offered = key(ED_A);
        assert!(key_matches(ED_A, &offered));
        let no_comment: String = ED_A.rsplit_once(' ').unwrap().0.to_string();
        assert!(key_matches(&format!("  {no_comment}  \n"), &offered));
        assert!(key_matches(&format!("{no_comment} someone else"), &offered));
    }

    #[test]
    fn different_key_or_garbage_does_not_match() {
        let offered = key(ED_A);
        let other = other_key();
        assert!(!key_matches(ED_A, &other));
        assert!(!key_matches("", &offered));
        assert!(!key_matches("# ssh-ed25519 AAAA", &offered));
        assert!(!key_matches("ssh-ed25519 !!!", &offered));
        let other_line = other.to_openssh().unwrap();
        assert!(key_matches(&other_line, &other));
        assert!(!key_matches(&other_line, &offered));
    }

    fn keys(lines: &[&str]) -> Vec<AuthorizedKey> {
        lines
            .iter()
            .map(|l| AuthorizedKey {
                person: "a@example".into(),
                key: l.to_string(),
            })
            .collect()
    }

    #[test]
    fn check_says_why() {
        let offered = key(ED_A);
        assert_eq!(
            check(None, "pl_x", &offered),
            Err(Refusal::NoSliver {
                slice: "pl_x".into()
            })
        );
        let e = check(Some(vec![]), "pl_x", &offered).unwrap_err();
        assert!(e
            .to_string()
            .contains("key not authorized for slice \"pl_x\""));
        assert_eq!(
            check(Some(keys(&["junk", ED_A])), "pl_x", &offered),
            Ok(Login::Slice {
                slice: "pl_x".into(),
                person: "a@example".into()
            })
        );
    }

    #[test]
    fn site_admin_is_its_own_login() {
        let offered = key(ED_A);
        assert_eq!(
            check(None, SITE_ADMIN, &offered),
            Err(Refusal::NoAdminContext)
        );
        assert_eq!(
            check(Some(keys(&["junk"])), SITE_ADMIN, &offered),
            Err(Refusal::NotStaff)
        );
        assert_eq!(
            check(Some(keys(&[ED_A])), SITE_ADMIN, &offered),
            Ok(Login::SiteAdmin {
                person: "a@example".into()
            })
        );
    }
}

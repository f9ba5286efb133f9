//! Who may log in: the user name is the slice; the key must be one of the slice's persons' keys.
//!
//! Messages: the SSH protocol has no per-attempt failure text, so when the gateway refuses a
//! login it sends `SSH_MSG_DISCONNECT` (reason "no more auth methods available") carrying the
//! reason, which OpenSSH's client prints as
//! `Received disconnect from HOST port PORT:14: slice X has no sliver on this node`.

use russh::keys::PublicKey;

/// Why a login is refused; the `Display` text is what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoSliver { slice: String },
    KeyNotAuthorized { slice: String },
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

/// Decides whether `offered` may log into `slice`, given what the access object knows now.
pub fn check(keys: Option<Vec<String>>, slice: &str, offered: &PublicKey) -> Result<(), Refusal> {
    let Some(keys) = keys else {
        return Err(Refusal::NoSliver {
            slice: slice.to_string(),
        });
    };
    if keys.iter().any(|line| key_matches(line, offered)) {
        Ok(())
    } else {
        Err(Refusal::KeyNotAuthorized {
            slice: slice.to_string(),
        })
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
        assert!(check(Some(vec!["junk".into(), ED_A.into()]), "pl_x", &offered).is_ok());
    }
}

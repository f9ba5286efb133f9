//! OpenSSH public keys (`authorized_keys` line format), checked well enough that a key stored in the
//! registry is one that sshd-style code can later parse: known algorithm, valid base64 blob whose
//! embedded algorithm name matches, and sane sizes.

use base64::Engine;

use crate::error::{Invalid, ValidationError};

const ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A validated public key, normalised to `algorithm base64 [comment]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub algorithm: String,
    pub blob: Vec<u8>,
    pub comment: String,
}

impl PublicKey {
    pub fn to_openssh(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.blob);
        if self.comment.is_empty() {
            format!("{} {}", self.algorithm, b64)
        } else {
            format!("{} {} {}", self.algorithm, b64, self.comment)
        }
    }
}

fn read_string<'a>(blob: &mut &'a [u8]) -> Option<&'a [u8]> {
    if blob.len() < 4 {
        return None;
    }
    let n = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    let rest = &blob[4..];
    if rest.len() < n {
        return None;
    }
    let (s, tail) = rest.split_at(n);
    *blob = tail;
    Some(s)
}

pub fn parse(line: &str) -> Invalid<PublicKey> {
    let bad = |m: String| ValidationError::new("key", m);
    let line = line.trim();
    if line.len() > 16 * 1024 {
        return Err(bad("is longer than 16 KiB".into()));
    }
    if line.contains('\n') {
        return Err(bad("must be a single line".into()));
    }
    let mut parts = line.splitn(3, char::is_whitespace);
    let algorithm = parts.next().unwrap_or_default();
    let b64 = parts.next().unwrap_or_default();
    let comment = parts.next().unwrap_or_default().trim();
    if !ALGORITHMS.contains(&algorithm) {
        return Err(bad(format!(
            "unknown key type {algorithm:?}; expected one of {}",
            ALGORITHMS.join(", ")
        )));
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad("key data is not valid base64".into()))?;
    let mut rest = blob.as_slice();
    let inner = read_string(&mut rest).ok_or_else(|| bad("key data is truncated".into()))?;
    if inner != algorithm.as_bytes() {
        return Err(bad(format!(
            "key data says {:?} but the line says {algorithm:?}",
            String::from_utf8_lossy(inner)
        )));
    }
    match algorithm {
        "ssh-ed25519" => {
            let k = read_string(&mut rest).ok_or_else(|| bad("key data is truncated".into()))?;
            if k.len() != 32 || !rest.is_empty() {
                return Err(bad("ed25519 key must hold 32 bytes".into()));
            }
        }
        "ssh-rsa" => {
            let _e = read_string(&mut rest).ok_or_else(|| bad("key data is truncated".into()))?;
            let n = read_string(&mut rest).ok_or_else(|| bad("key data is truncated".into()))?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return Err(bad(format!(
                    "RSA key is {bits} bits; at least 2048 required"
                )));
            }
        }
        _ => {
            if rest.is_empty() {
                return Err(bad("key data is truncated".into()));
            }
        }
    }
    if comment.chars().any(|c| c.is_control()) {
        return Err(bad("comment must not contain control characters".into()));
    }
    Ok(PublicKey {
        algorithm: algorithm.to_string(),
        blob,
        comment: comment.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real ed25519 public key made with ssh-keygen for these tests.
    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6mwuiCgEj5IOErDJ69hnStVLbIEwiAnpCShyp6iSC/ test@example";

    #[test]
    fn accepts_ed25519_and_normalises() {
        let k = parse(&format!("  {ED}\n")).unwrap();
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.comment, "test@example");
        assert_eq!(k.to_openssh(), ED);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("").is_err());
        assert!(parse("ssh-dss AAAA")
            .unwrap_err()
            .message
            .contains("unknown key type"));
        assert!(parse("ssh-ed25519 !!!notbase64")
            .unwrap_err()
            .message
            .contains("base64"));
        // ed25519 line with an RSA-labelled blob
        let e = parse("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQ==").unwrap_err();
        assert!(e.message.contains("says"), "{e}");
        // a 1024-bit RSA key is too weak
        let e = parse("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCg1JLrEkEWOQQDsHiUmcMJ4Hpwgce2xQL9T76xcNSTjZRhcasjkWoGuiVPeG3gSfGAvosUI92abTA4Z5Xc6Plth+GH6PSVJLg+2ruPyLqpWsSdWMcZqmjFn0J5rMkqixnJraUCcBr+aqmdL4uO9NKUjmqn0vPEmIUqCIC7YUHU0w==").unwrap_err();
        assert!(e.message.contains("2048"), "{e}");
        // truncated ed25519 blob
        assert!(parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6mwuiC").is_err());
    }
}

//! The gateway's host key: loaded from a file, or created there (ed25519, mode 0600) on first run.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::RngCore;
use russh::keys::ssh_key::{private::Ed25519Keypair, LineEnding};
use russh::keys::PrivateKey;

use crate::GatewayError;

/// Loads the OpenSSH private key at `path`, creating a new ed25519 key there first if the file
/// does not exist. An existing file is never overwritten.
pub fn load_or_create(path: &Path) -> Result<PrivateKey, GatewayError> {
    let io = |source| GatewayError::HostKeyIo {
        path: path.to_path_buf(),
        source,
    };
    let bad = |message: String| GatewayError::HostKey {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return PrivateKey::from_openssh(text.as_bytes()).map_err(|e| bad(e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment("slicelab-sshgw host key");
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| bad(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // create_new: two gateways racing on one path cannot clobber each other's key.
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(io)?;
            return PrivateKey::from_openssh(text.as_bytes()).map_err(|e| bad(e.to_string()));
        }
        Err(e) => return Err(io(e)),
    };
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_once_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/host_key");
        let a = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_create(&path).unwrap();
        assert_eq!(a.public_key().key_data(), b.public_key().key_data());
    }

    #[test]
    fn garbage_is_an_error_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_key");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(GatewayError::HostKey { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }
}

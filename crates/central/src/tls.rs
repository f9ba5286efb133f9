//! TLS for everything central serves (API, web, node protocol): certificates from PEM files, or
//! a CA of central's own, made on the first start in a directory of its state.
//!
//! The own CA (`ca.pem`, `ca.key`, mode 0600) stays; the server certificate is signed by it at
//! every start for the names central answers to (so a new `--tls-name` needs no new CA), and the
//! chain central presents includes the CA, so a client that pins the CA's fingerprint (from
//! `slicelab login` or a join token) can check it. Replicas of one central share the CA: copy
//! `ca.pem` and `ca.key` to each (or point them at one directory).

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Where central's certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// A certificate chain and its key, PEM (e.g. from an ACME client or a site's CA).
    Files { cert: PathBuf, key: PathBuf },
    /// Central's own CA in `dir` (made if missing), signing a server certificate for `names`
    /// (host names or addresses; `localhost` and the loopback addresses are always added).
    OwnCa { dir: PathBuf, names: Vec<String> },
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A loaded TLS setup: what the server presents, and the CA's fingerprint when it is our own.
#[derive(Clone)]
pub struct Tls {
    pub(crate) server: Arc<rustls::ServerConfig>,
    /// `sha256:<hex>` of the CA certificate (DER), when central made it.
    pub ca_fingerprint: Option<String>,
    /// The CA certificate's file, when central made it.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// `sha256:<hex>` of a certificate's DER: how a CA is named to the people who must trust it.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// The TLS provider everything here uses (ring: no C toolchain beyond cc).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads (or, for `OwnCa`, makes) the certificate and builds the server's TLS configuration.
pub fn load(source: &TlsSource) -> Result<Tls, TlsError> {
    let (chain, key, ca) = match source {
        TlsSource::Files { cert, key } => (read_chain(cert)?, read_key(key)?, None),
        TlsSource::OwnCa { dir, names } => {
            let (chain, key, ca_der) = own_ca(dir, names)?;
            (chain, key, Some((ca_der, dir.join("ca.pem"))))
        }
    };
    let mut server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        server: Arc::new(server),
        ca_fingerprint: ca.as_ref().map(|(der, _)| fingerprint(der)),
        ca_file: ca.map(|(_, path)| path),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Io {
        what: "read",
        path: path.into(),
        source,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.into(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: path.into(),
            message: "no CERTIFICATE block".into(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| TlsError::Pem {
        path: path.into(),
        message: format!("no usable private key: {e}"),
    })
}

/// The CA in `dir` (made on first use) and a fresh server certificate it signs for `names`:
/// the chain to present (server, CA), the server's key, and the CA's DER.
type OwnChain = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    Vec<u8>,
);

fn own_ca(dir: &Path, names: &[String]) -> Result<OwnChain, TlsError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { what, path, source }
    };
    fs::create_dir_all(dir).map_err(io("create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io("protect", dir))?;
    let (ca_pem, ca_key_pem) = (dir.join("ca.pem"), dir.join("ca.key"));
    let ca_key = if ca_key_pem.exists() && ca_pem.exists() {
        let pem = fs::read_to_string(&ca_key_pem).map_err(io("read", &ca_key_pem))?;
        KeyPair::from_pem(&pem)?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params(&key)?.self_signed(&key)?;
        write_private(&ca_key_pem, key.serialize_pem().as_bytes())?;
        fs::write(&ca_pem, cert.pem()).map_err(io("write", &ca_pem))?;
        key
    };
    // The stored CA certificate is what clients pin; the issuer below only lends its name
    // (deterministic from the key) and key to the server certificate.
    let ca_der = read_chain(&ca_pem)?.remove(0).to_vec();
    let issuer = ca_params(&ca_key)?.self_signed(&ca_key)?;
    let leaf_key = KeyPair::generate()?;
    let leaf = server_params(names)?.signed_by(&leaf_key, &issuer, &ca_key)?;
    let chain = vec![leaf.der().clone(), CertificateDer::from(ca_der.clone())];
    let key = PrivateKeyDer::try_from(leaf_key.serialize_der()).map_err(|e| TlsError::Pem {
        path: dir.into(),
        message: e.to_string(),
    })?;
    Ok((chain, key, ca_der))
}

fn ca_params(key: &KeyPair) -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let id = hex::encode(&Sha256::digest(key.public_key_der())[..6]);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "slicelab");
    dn.push(DnType::CommonName, format!("slicelab central CA {id}"));
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(p)
}

fn server_params(names: &[String]) -> Result<CertificateParams, TlsError> {
    let mut all: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for n in names {
        let n = n.trim();
        // Addresses in any spelling (`::0001`) become one canonical SAN.
        let n = n
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .unwrap_or(n.to_string());
        if !n.is_empty() && !all.contains(&n) {
            all.push(n);
        }
    }
    let mut p = CertificateParams::new(all)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "slicelab central");
    p.distinguished_name = dn;
    p.use_authority_key_identifier_extension = true;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // Made anew at every start: valid from a year ago (skewed clocks) for three years.
    let year = 1970 + (slicelab_model::time::now() / 31_556_952) as i32;
    p.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    p.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
    Ok(p)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let err = |source| TlsError::Io {
        what: "write",
        path: path.into(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_ca_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let src = TlsSource::OwnCa {
            dir: dir.path().join("tls"),
            names: vec!["central.example".into(), "10.0.0.1".into()],
        };
        let a = load(&src).unwrap();
        let b = load(&src).unwrap();
        assert!(a.ca_fingerprint.as_deref().unwrap().starts_with("sha256:"));
        assert_eq!(
            a.ca_fingerprint, b.ca_fingerprint,
            "the CA survives a restart"
        );
        let mode = fs::metadata(dir.path().join("tls/ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the CA key is private");
    }

    #[test]
    fn a_bad_pem_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        fs::write(&cert, "not pem").unwrap();
        let e = load(&TlsSource::Files {
            cert: cert.clone(),
            key: cert.clone(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("c.pem"), "{e}");
    }
}

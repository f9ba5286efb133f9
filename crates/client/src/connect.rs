//! How a client reaches central: which URLs (several replicas, tried in turn), which CA it
//! trusts, and the refusal of plain HTTP across a network.
//!
//! Trust is one of: the system's roots (a central with a public certificate), a CA file, or a
//! CA *fingerprint* (`sha256:<hex>`): central presents its CA in its chain, the client accepts the
//! chain only if that CA hashes to the fingerprint, and then verifies the server certificate
//! against it as usual (names, dates, signatures). The fingerprint comes from a join token or
//! from `slicelab login`, so no file has to be copied to a new machine.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::ClientError;

/// Which certificate authority a client trusts for central's HTTPS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's (webpki) roots.
    #[default]
    System,
    /// The CA certificate(s) in this PEM text.
    CaPem(Vec<u8>),
    /// The CA whose certificate (DER) hashes to this SHA-256.
    Fingerprint([u8; 32]),
}

impl Trust {
    /// Parses `sha256:<64 hex>` (colons between byte pairs allowed, any case).
    pub fn fingerprint(text: &str) -> Result<Trust, ClientError> {
        let bad = || {
            ClientError::Config(format!(
                "{text:?} is not a CA fingerprint (sha256:<64 hex digits>)"
            ))
        };
        let hexpart = text
            .trim()
            .strip_prefix("sha256:")
            .or_else(|| text.trim().strip_prefix("SHA256:"))
            .unwrap_or(text.trim())
            .replace(':', "");
        let bytes = hex::decode(hexpart.to_ascii_lowercase()).map_err(|_| bad())?;
        Ok(Trust::Fingerprint(bytes.try_into().map_err(|_| bad())?))
    }
}

/// `sha256:<hex>` of a certificate's DER.
pub fn fingerprint_of(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// Where central is and how to trust it.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// Central's URLs (replicas), tried in turn; at least one.
    pub urls: Vec<String>,
    pub trust: Trust,
    /// Allow `http://` to an address other than loopback (credentials would cross in clear).
    pub allow_plain_http: bool,
}

impl Endpoint {
    /// `urls` is one URL or several separated by commas (replicas of one central).
    pub fn new(urls: &str) -> Endpoint {
        Endpoint {
            urls: split_urls(urls),
            ..Endpoint::default()
        }
    }

    pub fn trust(mut self, trust: Trust) -> Endpoint {
        self.trust = trust;
        self
    }

    pub fn allow_plain_http(mut self, allow: bool) -> Endpoint {
        self.allow_plain_http = allow;
        self
    }

    /// Refuses no URL, a URL that is neither `https://` nor `http://`, and `http://` to a host
    /// that is not loopback unless allowed.
    pub fn check(&self) -> Result<(), ClientError> {
        if self.urls.is_empty() {
            return Err(ClientError::Config("no central URL given".into()));
        }
        for u in &self.urls {
            if u.starts_with("https://") {
                continue;
            }
            let Some(rest) = u.strip_prefix("http://") else {
                return Err(ClientError::Config(format!(
                    "{u}: central's URL must start with https:// (or http:// on loopback)"
                )));
            };
            if !self.allow_plain_http && !is_loopback(host_of(rest)) {
                return Err(ClientError::PlainHttp { url: u.clone() });
            }
        }
        Ok(())
    }
}

/// Splits a comma-separated list of URLs, dropping empty parts and trailing slashes.
pub fn split_urls(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
        .collect()
}

/// The host of `host[:port][/path]` (brackets of an IPv6 literal removed).
fn host_of(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS client configuration for `trust`.
pub(crate) fn tls_config(trust: &Trust) -> Result<rustls::ClientConfig, ClientError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let config = match trust {
        Trust::System => {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::CaPem(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ClientError::Config(format!("CA file: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Config(format!("CA file: {e}")))?;
            }
            if roots.is_empty() {
                return Err(ClientError::Config(
                    "the CA file holds no certificate".into(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCa {
                fingerprint: *fp,
                provider: provider(),
            }))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Accepts a chain only through the CA with the pinned fingerprint, verified as usual from there.
#[derive(Debug)]
struct PinnedCa {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = || {
            intermediates
                .iter()
                .chain(std::iter::once(end_entity))
                .map(|c| fingerprint_of(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(ca) = intermediates
            .iter()
            .chain(std::iter::once(end_entity))
            .find(|c| Sha256::digest(c.as_ref()).as_slice() == self.fingerprint)
        else {
            return Err(rustls::Error::General(format!(
                "central's certificate is not from the CA with fingerprint sha256:{} \
                 (it presented {}): refused",
                hex::encode(self.fingerprint),
                presented()
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The fingerprint of the last certificate (the CA) in the chain the server at `url` presents,
/// without trusting it: what `slicelab login` shows a person before asking to trust it.
pub async fn presented_ca(url: &str) -> Result<Option<String>, ClientError> {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recorder {
            seen: seen.clone(),
            provider: provider(),
        }))
        .with_no_client_auth();
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(10))
        .use_preconfigured_tls(config)
        .build()
        .map_err(|e| ClientError::Config(e.to_string()))?;
    // The recorder refuses every chain: the request fails once the chain is seen.
    let _ = http.get(format!("{url}/healthz")).send().await;
    let fp = seen.lock().ok().and_then(|s| s.clone());
    Ok(fp)
}

/// Records the presented chain's last certificate and refuses it.
#[derive(Debug)]
struct Recorder {
    seen: Arc<std::sync::Mutex<Option<String>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let last = intermediates.last().unwrap_or(end_entity);
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(fingerprint_of(last));
        }
        Err(rustls::Error::General("only recording the chain".into()))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("only recording the chain".into()))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("only recording the chain".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:80/x",
            "https://10.0.0.1",
            "https://a,http://127.0.0.2:1",
        ] {
            Endpoint::new(ok).check().unwrap();
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://central.example",
            "http://[2001:db8::1]",
        ] {
            let e = Endpoint::new(bad).check().unwrap_err();
            assert!(matches!(e, ClientError::PlainHttp { .. }), "{bad}: {e}");
            Endpoint::new(bad).allow_plain_http(true).check().unwrap();
        }
        assert!(Endpoint::new("ftp://x").check().is_err());
        assert!(Endpoint::new(" , ").check().is_err());
    }

    #[test]
    fn fingerprints_parse_in_both_spellings() {
        let hexs = "ab".repeat(32);
        let a = Trust::fingerprint(&format!("sha256:{hexs}")).unwrap();
        let colons = vec!["AB"; 32].join(":");
        let b = Trust::fingerprint(&format!("SHA256:{colons}")).unwrap();
        assert_eq!(a, b);
        assert!(Trust::fingerprint("sha256:abcd").is_err());
    }
}

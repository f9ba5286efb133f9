//! Calls between peer centrals (`model::peer`): each is signed with the secret both admins
//! set (HMAC-SHA-256 over `model::peer::signing::canonical`, with a timestamp and a nonce so
//! the callee refuses a replay), and goes over HTTPS to the peer's pinned CA. The callee checks
//! with [`verify`].

use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use slicelab_model::peer::{signing, ForeignSlice, ForeignSliceAck, PeerRegistry, PeerStatus};

use crate::connect::{self, Endpoint, Trust};
use crate::{error_of, transport, ClientError, Result};

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, canonical: &str) -> HmacSha256 {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    m.update(canonical.as_bytes());
    m
}

/// Hex SHA-256 of a body (the empty body too).
pub fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The hex signature of a call.
pub fn sign(
    secret: &str,
    method: &str,
    path_and_query: &str,
    time: i64,
    nonce: &str,
    caller: &str,
    body: &[u8],
) -> String {
    let text = signing::canonical(
        method,
        path_and_query,
        time,
        nonce,
        caller,
        &body_hash(body),
    );
    hex::encode(mac(secret, &text).finalize().into_bytes())
}

/// Whether `signature` (hex) signs this call with `secret` (compared in constant time).
#[allow(clippy::too_many_arguments)]
pub fn verify(
    secret: &str,
    method: &str,
    path_and_query: &str,
    time: i64,
    nonce: &str,
    caller: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    let Ok(sig) = hex::decode(signature) else {
        return false;
    };
    let text = signing::canonical(
        method,
        path_and_query,
        time,
        nonce,
        caller,
        &body_hash(body),
    );
    mac(secret, &text).verify_slice(&sig).is_ok()
}

/// A client of one peer central, signing as authority `me`.
#[derive(Debug, Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    base: String,
    me: String,
    secret: String,
}

impl PeerClient {
    /// `ca_fingerprint`: the peer's CA, pinned; without it the system roots are trusted.
    pub fn connect(
        url: &str,
        ca_fingerprint: Option<&str>,
        me: &str,
        secret: &str,
    ) -> Result<PeerClient> {
        let trust = match ca_fingerprint {
            Some(f) => Trust::fingerprint(f)?,
            None => Trust::System,
        };
        let endpoint = Endpoint::new(url).trust(trust);
        endpoint.check()?;
        let tls = connect::tls_config(&endpoint.trust)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| ClientError::Config(format!("cannot make an HTTP client: {e}")))?;
        Ok(PeerClient {
            http,
            base: url.trim_end_matches('/').to_string(),
            me: me.to_string(),
            secret: secret.to_string(),
        })
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b)
                .map_err(|e| ClientError::Config(format!("cannot encode the call: {e}")))?,
            None => Vec::new(),
        };
        let time = slicelab_model::time::now();
        let mut n = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut n);
        let nonce = hex::encode(n);
        let sig = sign(
            &self.secret,
            method.as_str(),
            path_and_query,
            time,
            &nonce,
            &self.me,
            &bytes,
        );
        let url = format!("{}{path_and_query}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .header(signing::PEER, &self.me)
            .header(signing::TIME, time.to_string())
            .header(signing::NONCE, &nonce)
            .header(signing::SIGNATURE, sig);
        if body.is_some() {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let resp = req.send().await.map_err(|e| transport(&url, e))?;
        if !resp.status().is_success() {
            return Err(error_of(resp, &url).await);
        }
        let bytes = resp.bytes().await.map_err(|e| transport(&url, e))?;
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes)
            .map_err(|e| ClientError::Decode(format!("{path_and_query}: {e}")))
    }

    /// The peer's own nodes.
    pub async fn registry(&self) -> Result<PeerRegistry> {
        self.call::<(), _>(Method::GET, "/peer/v1/registry", None)
            .await
    }

    /// Creates or changes one of our slices on the peer's nodes (no nodes: ends it there).
    pub async fn put_slice(&self, f: &ForeignSlice) -> Result<ForeignSliceAck> {
        let path = format!("/peer/v1/slices/{}", crate::encode(&f.name));
        self.call(Method::PUT, &path, Some(f)).await
    }

    /// What became of our slices on the peer's nodes since the cursors.
    pub async fn status(&self, usage_after: i64, flows_after: i64) -> Result<PeerStatus> {
        let path = format!("/peer/v1/status?usage_after={usage_after}&flows_after={flows_after}");
        self.call::<(), _>(Method::GET, &path, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_binds_every_part_of_the_call() {
        let s = "k".repeat(32);
        let sig = sign(&s, "PUT", "/peer/v1/slices/a_b", 100, "n1", "ple", b"{}");
        assert!(verify(
            &s,
            "PUT",
            "/peer/v1/slices/a_b",
            100,
            "n1",
            "ple",
            b"{}",
            &sig
        ));
        assert!(!verify(
            &s,
            "GET",
            "/peer/v1/slices/a_b",
            100,
            "n1",
            "ple",
            b"{}",
            &sig
        ));
        assert!(!verify(
            &s,
            "PUT",
            "/peer/v1/slices/a_c",
            100,
            "n1",
            "ple",
            b"{}",
            &sig
        ));
        assert!(!verify(
            &s,
            "PUT",
            "/peer/v1/slices/a_b",
            101,
            "n1",
            "ple",
            b"{}",
            &sig
        ));
        assert!(!verify(
            &s,
            "PUT",
            "/peer/v1/slices/a_b",
            100,
            "n2",
            "ple",
            b"{}",
            &sig
        ));
        assert!(!verify(
            &s,
            "PUT",
            "/peer/v1/slices/a_b",
            100,
            "n1",
            "plc",
            b"{}",
            &sig
        ));
        assert!(!verify(
            &s,
            "PUT",
            "/peer/v1/slices/a_b",
            100,
            "n1",
            "ple",
            b"{ }",
            &sig
        ));
        assert!(!verify(
            &"x".repeat(32),
            "PUT",
            "/peer/v1/slices/a_b",
            100,
            "n1",
            "ple",
            b"{}",
            &sig
        ));
        assert!(!verify(
            &s,
            "PUT",
            "/peer/v1/slices/a_b",
            100,
            "n1",
            "ple",
            b"{}",
            "zz"
        ));
    }
}

//! One pull's conversation with a registry: requests carry the credentials the registry asked
//! for (Basic, or a Bearer token fetched once on the first 401), manifests are read with a size
//! cap and checked when fetched by digest, blobs are streamed to disk and checked.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::auth::{fetch_token, parse_challenge, Challenge, RegistryAuth};
use crate::digest::{check, format_digest};
use crate::error::ImageError;
use crate::platform::{OCI_INDEX, OCI_MANIFEST};

/// The manifest types asked for (`platform`'s four).
const ACCEPTED: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

enum Credentials {
    None,
    Basic,
    Bearer(String),
}

pub(crate) struct Session {
    http: reqwest::Client,
    auth: RegistryAuth,
    repository: String,
    creds: Credentials,
}

fn reg_err(what: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Registry(format!("{what}: {e}"))
}

impl Session {
    pub(crate) fn new(auth: RegistryAuth, repository: &str) -> Result<Session, ImageError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("slicelab/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| reg_err("creating the HTTP client", e))?;
        Ok(Session {
            http,
            auth,
            repository: repository.to_string(),
            creds: Credentials::None,
        })
    }

    async fn send(&self, url: &str, accept: Option<&str>) -> Result<Response, ImageError> {
        let mut req = self.http.get(url);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        req = match (&self.creds, &self.auth) {
            (Credentials::Bearer(t), _) => req.bearer_auth(t),
            (Credentials::Basic, RegistryAuth::Basic { user, password }) => {
                req.basic_auth(user, Some(password))
            }
            _ => req,
        };
        req.send()
            .await
            .map_err(|e| reg_err(&format!("GET {url}"), e))
    }

    /// GET with the credentials the registry asks for; any non-2xx answer is an error.
    async fn get(&mut self, url: &str, accept: Option<&str>) -> Result<Response, ImageError> {
        let mut resp = self.send(url, accept).await?;
        if resp.status() == StatusCode::UNAUTHORIZED && matches!(self.creds, Credentials::None) {
            let header = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            self.creds = match parse_challenge(header) {
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }) => {
                    let scope =
                        scope.unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                    let token =
                        fetch_token(&self.http, &self.auth, &realm, service.as_deref(), &scope)
                            .await?;
                    Credentials::Bearer(token)
                }
                Some(Challenge::Basic) if matches!(self.auth, RegistryAuth::Basic { .. }) => {
                    Credentials::Basic
                }
                Some(Challenge::Basic) => {
                    return Err(reg_err(url, "401: the registry wants credentials (Basic)"))
                }
                None => return Err(reg_err(url, format!("401 with challenge {header:?}"))),
            };
            resp = self.send(url, accept).await?;
        }
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(reg_err(&format!("GET {url}"), format!("{status}: {body}")));
        }
        Ok(resp)
    }

    /// A manifest or index by tag or digest: its bytes and media type (the document's own
    /// `mediaType`, else the Content-Type). Checked against the digest when fetched by one.
    pub(crate) async fn manifest(
        &mut self,
        base: &str,
        reference: &str,
        max: usize,
    ) -> Result<(Vec<u8>, String), ImageError> {
        let url = format!("{base}/manifests/{reference}");
        let mut resp = self.get(&url, Some(ACCEPTED)).await?;
        let header_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| reg_err(&url, e))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > max {
                return Err(reg_err(&url, format!("manifest larger than {max} bytes")));
            }
        }
        if reference.starts_with("sha256:") {
            check(
                &format!("manifest {reference}"),
                reference,
                format_digest(Sha256::new_with_prefix(&bytes)),
            )?;
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| reg_err(&url, e))?;
        let media_type = doc
            .get("mediaType")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or(header_type);
        let media_type = match media_type.as_str() {
            // No type anywhere: an index has `manifests`, a manifest `layers`.
            "" | "application/json" if doc.get("manifests").is_some() => OCI_INDEX.to_string(),
            "" | "application/json" if doc.get("layers").is_some() => OCI_MANIFEST.to_string(),
            _ => media_type,
        };
        Ok((bytes, media_type))
    }

    /// Streams a blob to `dest`, refusing more bytes than `size`; checks size and digest.
    pub(crate) async fn blob(
        &mut self,
        base: &str,
        digest: &str,
        size: u64,
        dest: &Path,
    ) -> Result<(), ImageError> {
        let url = format!("{base}/blobs/{digest}");
        let mut resp = self.get(&url, None).await?;
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| ImageError::io(format!("creating {}", dest.display()), e))?;
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| reg_err(&url, e))? {
            got += chunk.len() as u64;
            if got > size {
                return Err(reg_err(
                    &url,
                    format!("more than the {size} bytes announced"),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| ImageError::io(format!("writing {}", dest.display()), e))?;
        }
        file.flush()
            .await
            .map_err(|e| ImageError::io(format!("writing {}", dest.display()), e))?;
        if got != size {
            return Err(reg_err(&url, format!("{got} bytes, {size} announced")));
        }
        check(&format!("blob {digest}"), digest, format_digest(hasher))
    }
}

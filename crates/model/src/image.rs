//! Images: content-addressed root filesystems published at central and fetched by nodes.
//!
//! An image is a *manifest* (its runtime config and an ordered list of layers, bottom first)
//! plus the layers' *blobs* (tar archives, gzip- or zstd-compressed or not), each named by the
//! sha256 of its bytes. The manifest is itself named by the sha256 of its canonical JSON
//! ([`ImageManifest::to_canonical_json`]), so a node that fetched it by digest can check every
//! byte it runs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Invalid, ValidationError};

/// The built-in image (a static busybox tree every node builds itself).
pub const BUILTIN_IMAGE: &str = crate::tags::DEFAULT_IMAGE;

/// Media types of layer blobs a node can unpack.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker's name for a gzip layer (archives from `docker save` and v2 registries).
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Most layers an image may have (overlayfs stacks them; the kernel's limit is ~500).
pub const MAX_LAYERS: usize = 128;

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression of `media_type`, or `None` if a node cannot unpack it.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        LAYER_TAR | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        LAYER_TAR_GZIP | DOCKER_LAYER_GZIP => Some(Compression::Gzip),
        LAYER_TAR_ZSTD => Some(Compression::Zstd),
        _ => None,
    }
}

/// `sha256:` and 64 lowercase hex digits: the only digest form slicelab accepts.
pub fn check_digest(s: &str) -> Invalid<()> {
    let ok = s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "digest",
            format!("{s:?} is not a digest (sha256: followed by 64 lowercase hex digits)"),
        ))
    }
}

/// The hex part of a checked digest (a file name in blob stores).
pub fn digest_hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// What runs in a sliver made from the image when its slice has no `initscript` tag: the OCI
/// config's Env, Entrypoint, Cmd, WorkingDir and User.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct ImageConfig {
    /// `NAME=value` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved in the image's /etc/passwd and
    /// /etc/group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl ImageConfig {
    /// The service command: Entrypoint followed by Cmd (empty: none).
    pub fn command(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct LayerRef {
    /// sha256 of the blob as stored (compressed).
    #[schema(schema_with = crate::schema::digest)]
    pub digest: String,
    /// Bytes of the blob.
    pub size: u64,
    pub media_type: String,
}

/// What a node needs to run an image: fetched by its digest from central.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct ImageManifest {
    pub config: ImageConfig,
    /// Bottom layer first.
    #[schema(min_items = 1, max_items = 128)] // MAX_LAYERS
    pub layers: Vec<LayerRef>,
}

impl ImageManifest {
    /// The bytes the manifest's digest is computed over (serde_json's field order, no spaces).
    pub fn to_canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Total bytes of its blobs.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }

    /// Every layer digest well formed and every media type unpackable, 1..=MAX_LAYERS layers.
    pub fn validate(&self) -> Invalid<()> {
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return Err(ValidationError::new(
                "layers",
                format!(
                    "an image has 1 to {MAX_LAYERS} layers, not {}",
                    self.layers.len()
                ),
            ));
        }
        for l in &self.layers {
            check_digest(&l.digest)?;
            if layer_compression(&l.media_type).is_none() {
                return Err(ValidationError::new(
                    "media_type",
                    format!(
                        "layer {} has media type {:?}, which a node cannot unpack",
                        l.digest, l.media_type
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Who may use an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Every slice (published by an admin).
    Platform,
    /// Slices of the owner's site only.
    Site,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Platform => "platform",
            Visibility::Site => "site",
        }
    }

    pub fn parse(s: &str) -> Invalid<Self> {
        match s {
            "platform" => Ok(Self::Platform),
            "site" => Ok(Self::Site),
            _ => Err(ValidationError::new(
                "visibility",
                format!("{s:?} is not a visibility (platform or site)"),
            )),
        }
    }
}

/// An image as central lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Image {
    pub image_id: i64,
    pub name: String,
    /// sha256 of the manifest's canonical JSON.
    pub digest: String,
    pub visibility: Visibility,
    /// The site whose quota it counts against and whose slices may use a `site` image.
    pub site_id: i64,
    /// Email of the person who published it.
    pub owner: String,
    /// Bytes of its blobs.
    pub size: u64,
    pub created: i64,
    pub manifest: ImageManifest,
}

/// `POST /images`: publish an image whose blobs were uploaded (`PUT /blobs/{digest}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewImage {
    #[schema(schema_with = crate::schema::image_name)]
    pub name: String,
    pub visibility: Visibility,
    /// The site it belongs to; default: the caller's first site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<i64>,
    pub manifest: ImageManifest,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(d: &str) -> LayerRef {
        LayerRef {
            digest: d.into(),
            size: 10,
            media_type: LAYER_TAR_GZIP.into(),
        }
    }

    #[test]
    fn digests_are_checked() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(check_digest(&good).is_ok());
        assert_eq!(digest_hex(&good), "a".repeat(64));
        for bad in [
            "",
            "sha256:",
            "sha512:aa",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}/..", "a".repeat(61)),
        ] {
            assert!(check_digest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifests_validate_and_hash_stably() {
        let good = format!("sha256:{}", "b".repeat(64));
        let m = ImageManifest {
            config: ImageConfig {
                cmd: vec!["/bin/sh".into()],
                ..Default::default()
            },
            layers: vec![layer(&good)],
        };
        assert!(m.validate().is_ok());
        assert_eq!(m.size(), 10);
        assert_eq!(m.to_canonical_json(), m.clone().to_canonical_json());
        let back: ImageManifest = serde_json::from_slice(&m.to_canonical_json()).unwrap();
        assert_eq!(back, m);
        assert!(ImageManifest::default().validate().is_err());
        let mut odd = m.clone();
        odd.layers[0].media_type = "text/plain".into();
        assert!(odd.validate().is_err());
        assert_eq!(
            ImageConfig {
                entrypoint: vec!["a".into()],
                cmd: vec!["b".into()],
                ..Default::default()
            }
            .command(),
            vec!["a".to_string(), "b".to_string()]
        );
    }
}

//! The node's store of published images, content-addressed, under `<state_dir>/store` (mode 0700:
//! no host user but root reaches the trees, whose owners are the image's own ids, 0-65535; slivers
//! only see them through an idmapped mount into their slice's range).
//!
//! * `layers/<hex>/` — one layer blob unpacked as an overlayfs lower layer (OCI whiteouts turned
//!   into overlay whiteouts by `slicelab_image::unpack`), named by the blob's digest: a layer common
//!   to several images is fetched and stored once; `layers/<hex>.size` holds its unpacked bytes.
//! * `manifests/<hex>.json` — the manifest an image was fetched for, byte for byte as central
//!   hashed it; its mtime is the image's last use (GC removes the least recently used first).
//! * `blobs/<hex>.partial` — a download in progress (resumed where it stopped); removed once the
//!   layer is unpacked.
//! * `staging/` — layers being unpacked; a crash leaves them there and the next open removes them.
//!
//! Every name here comes from a checked digest, so no path built from one can climb out.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};
use slicelab_model::image::{check_digest, digest_hex, ImageConfig, ImageManifest};

use crate::error::{IoContext, NodeError};

/// The node's image store (see the module doc).
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// What [`ImageStore::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub images: Vec<String>,
    pub layers: usize,
    pub bytes: u64,
}

/// The lower layers of an image, top first (overlayfs' `lowerdir` order), and its config.
#[derive(Debug, Clone)]
pub struct ImageLowers {
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

fn checked(digest: &str) -> Result<&str, NodeError> {
    check_digest(digest).map_err(|e| NodeError::Invalid {
        what: "image digest",
        message: e.message,
    })?;
    Ok(digest_hex(digest))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ImageStore {
    /// Opens (creating) the store under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, NodeError> {
        let root = state_dir.join("store");
        for d in ["layers", "manifests", "blobs", "staging"] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx(|| format!("creating {}", p.display()))?;
        }
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
            .ctx(|| format!("chmod {}", root.display()))?;
        Ok(Self { root })
    }

    /// Removes layers a crashed fetch left half-unpacked. Only while nothing fetches: the
    /// daemon calls it once, before its fetcher exists.
    pub fn clear_staging(&self) {
        if let Ok(rd) = fs::read_dir(self.root.join("staging")) {
            for e in rd.flatten() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    pub fn layer_dir(&self, digest: &str) -> Result<PathBuf, NodeError> {
        Ok(self.root.join("layers").join(checked(digest)?))
    }

    fn manifest_path(&self, digest: &str) -> Result<PathBuf, NodeError> {
        Ok(self
            .root
            .join("manifests")
            .join(format!("{}.json", checked(digest)?)))
    }

    /// Where a blob downloads to (and resumes from).
    pub fn partial_blob(&self, digest: &str) -> Result<PathBuf, NodeError> {
        Ok(self
            .root
            .join("blobs")
            .join(format!("{}.partial", checked(digest)?)))
    }

    /// A fresh directory to unpack a layer into (same filesystem as the layers: the final
    /// rename is atomic, so a layer is either complete or absent).
    pub fn staging_dir(&self, digest: &str) -> Result<PathBuf, NodeError> {
        Ok(self
            .root
            .join("staging")
            .join(format!("{}.{}", checked(digest)?, std::process::id())))
    }

    pub fn has_layer(&self, digest: &str) -> bool {
        self.layer_dir(digest).is_ok_and(|d| d.is_dir())
    }

    /// The layer is here, unpacked from its blob read as `media_type` (one blob may be valid
    /// both as a plain tar and compressed, with different trees: the first reading does not
    /// stand for the other). `Err`: here, but read another way.
    pub fn has_layer_as(&self, digest: &str, media_type: &str) -> Result<bool, String> {
        if !self.has_layer(digest) {
            return Ok(false);
        }
        let stored = self
            .layer_dir(digest)
            .ok()
            .and_then(|d| fs::read_to_string(d.with_extension("media")).ok())
            .unwrap_or_default();
        let same = |m: &str| slicelab_model::image::layer_compression(m);
        if same(&stored) == same(media_type) {
            Ok(true)
        } else {
            Err(format!(
                "blob {digest} is unpacked here as {stored:?}; this image reads it as {media_type:?}: refused"
            ))
        }
    }

    /// Publishes an unpacked layer: `staged` is renamed into place. `media_type` says how its
    /// blob was read; an image that reads the same blob another way gets no use of this tree
    /// ([`Self::has_layer_as`]).
    pub fn install_layer(
        &self,
        digest: &str,
        media_type: &str,
        staged: &Path,
        bytes: u64,
    ) -> Result<(), NodeError> {
        let dir = self.layer_dir(digest)?;
        if dir.is_dir() {
            // Another fetch of an image sharing this layer won the race; theirs is identical.
            let _ = fs::remove_dir_all(staged);
            return Ok(());
        }
        fs::write(dir.with_extension("size"), bytes.to_string())
            .ctx(|| format!("writing the size of layer {digest}"))?;
        fs::write(dir.with_extension("media"), media_type)
            .ctx(|| format!("writing the media type of layer {digest}"))?;
        fs::rename(staged, &dir).ctx(|| format!("installing layer {digest}"))
    }

    /// The manifest fetched for `digest`, if this node has it (it was verified when saved).
    pub fn manifest(&self, digest: &str) -> Result<Option<ImageManifest>, NodeError> {
        let path = self.manifest_path(digest)?;
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| NodeError::State {
                    path,
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx(|| format!("reading {}", path.display())),
        }
    }

    /// Keeps the manifest bytes if (and only if) they hash to `digest`; returns it parsed.
    pub fn save_manifest(&self, digest: &str, bytes: &[u8]) -> Result<ImageManifest, NodeError> {
        let path = self.manifest_path(digest)?;
        let actual = sha256(bytes);
        if actual != digest {
            return Err(NodeError::Invalid {
                what: "image manifest",
                message: format!("manifest {digest} has digest {actual}: refused"),
            });
        }
        let m: ImageManifest = serde_json::from_slice(bytes).map_err(|e| NodeError::Invalid {
            what: "image manifest",
            message: format!("manifest {digest}: {e}"),
        })?;
        m.validate().map_err(|e| NodeError::Invalid {
            what: "image manifest",
            message: format!("manifest {digest}: {}", e.message),
        })?;
        crate::state::write_atomic(&path, bytes)?;
        Ok(m)
    }

    /// The image is here in full: its manifest and every layer.
    pub fn is_ready(&self, digest: &str) -> bool {
        matches!(self.manifest(digest), Ok(Some(m))
            if m.layers.iter().all(|l| self.has_layer_as(&l.digest, &l.media_type) == Ok(true)))
    }

    /// What a sliver of image `digest` mounts; marks the image used now (for GC).
    pub fn lowers(&self, digest: &str) -> Result<ImageLowers, NodeError> {
        let not_ready = || NodeError::ImageNotReady(digest.to_string());
        let m = self.manifest(digest)?.ok_or_else(not_ready)?;
        let mut layers = Vec::with_capacity(m.layers.len());
        for l in m.layers.iter().rev() {
            if self.has_layer_as(&l.digest, &l.media_type) != Ok(true) {
                return Err(not_ready());
            }
            layers.push(self.layer_dir(&l.digest)?);
        }
        if let Ok(f) = fs::File::options()
            .append(true)
            .open(self.manifest_path(digest)?)
        {
            let _ = f.set_modified(SystemTime::now());
        }
        Ok(ImageLowers {
            layers,
            config: m.config,
        })
    }

    /// Digests of the images this node holds, least recently used first.
    pub fn images(&self) -> Vec<String> {
        let mut v: Vec<(SystemTime, String)> = fs::read_dir(self.root.join("manifests"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_str()?.strip_suffix(".json")?.to_string();
                        let t = e.metadata().ok()?.modified().ok()?;
                        Some((t, format!("sha256:{name}")))
                    })
                    .filter(|(_, d)| check_digest(d).is_ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(_, d)| d).collect()
    }

    fn layer_bytes(&self, hex: &str) -> u64 {
        fs::read_to_string(self.root.join("layers").join(format!("{hex}.size")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Bytes of every stored layer.
    pub fn usage(&self) -> u64 {
        self.layer_hexes().iter().map(|h| self.layer_bytes(h)).sum()
    }

    fn layer_hexes(&self) -> BTreeSet<String> {
        fs::read_dir(self.root.join("layers"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes images no sliver uses (`in_use`: manifest digests), least recently used first,
    /// until the layers take at most `budget` bytes; then every layer no remaining image needs,
    /// and downloads of blobs no remaining image needs.
    pub fn gc(&self, in_use: &HashSet<String>, budget: u64) -> Result<GcReport, NodeError> {
        let mut report = GcReport::default();
        let mut kept: Vec<String> = Vec::new();
        let mut usage = self.usage();
        for digest in self.images() {
            if in_use.contains(&digest) || usage <= budget {
                kept.push(digest);
                continue;
            }
            let path = self.manifest_path(&digest)?;
            let freed = self.bytes_only_in(&digest, &kept)?;
            fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
            usage = usage.saturating_sub(freed);
            report.images.push(digest);
        }
        // Images are decided; now the layers and downloads none of the kept ones needs.
        let mut needed: HashSet<String> = HashSet::new();
        for d in self.images() {
            if let Some(m) = self.manifest(&d)? {
                needed.extend(m.layers.iter().map(|l| digest_hex(&l.digest).to_string()));
            }
        }
        for d in in_use {
            // In use but not (yet) fetched here: keep its partial downloads.
            if let Ok(Some(m)) = self.manifest(d) {
                needed.extend(m.layers.iter().map(|l| digest_hex(&l.digest).to_string()));
            }
        }
        for hex in self.layer_hexes() {
            if needed.contains(&hex) {
                continue;
            }
            report.bytes += self.layer_bytes(&hex);
            let dir = self.root.join("layers").join(&hex);
            fs::remove_dir_all(&dir).ctx(|| format!("removing {}", dir.display()))?;
            let _ = fs::remove_file(dir.with_extension("size"));
            let _ = fs::remove_file(dir.with_extension("media"));
            report.layers += 1;
        }
        // Downloads of blobs no kept or wanted image needs (a fetch in flight is for a wanted
        // image, whose manifest is saved before its blobs come).
        if let Ok(rd) = fs::read_dir(self.root.join("blobs")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(hex) = name.strip_suffix(".partial") else {
                    continue;
                };
                if !needed.contains(hex) {
                    report.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(report)
    }

    /// Bytes of `digest`'s layers that no image in `others` shares.
    fn bytes_only_in(&self, digest: &str, others: &[String]) -> Result<u64, NodeError> {
        let Some(m) = self.manifest(digest)? else {
            return Ok(0);
        };
        let mut shared: HashSet<String> = HashSet::new();
        for o in others {
            if let Some(om) = self.manifest(o)? {
                shared.extend(om.layers.into_iter().map(|l| l.digest));
            }
        }
        Ok(m.layers
            .iter()
            .filter(|l| !shared.contains(&l.digest))
            .map(|l| self.layer_bytes(digest_hex(&l.digest)))
            .sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slicelab_model::image::{LayerRef, LAYER_TAR};

    fn manifest(layers: &[&str]) -> (String, Vec<u8>) {
        let m = ImageManifest {
            config: ImageConfig::default(),
            layers: layers
                .iter()
                .map(|d| LayerRef {
                    digest: d.to_string(),
                    size: 1,
                    media_type: LAYER_TAR.into(),
                })
                .collect(),
        };
        let bytes = m.to_canonical_json();
        (sha256(&bytes), bytes)
    }

    fn layer(s: &ImageStore, digest: &str, bytes: u64) {
        let staged = s.staging_dir(digest).unwrap();
        fs::create_dir_all(staged.join("etc")).unwrap();
        s.install_layer(digest, LAYER_TAR, &staged, bytes).unwrap();
    }

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn manifests_are_kept_only_if_their_digest_matches() {
        let tmp = tempfile::tempdir().unwrap();
        let s = ImageStore::open(tmp.path()).unwrap();
        let (digest, bytes) = manifest(&[&d('a')]);
        assert!(s.save_manifest(&d('f'), &bytes).is_err());
        assert!(s.manifest(&d('f')).unwrap().is_none());
        s.save_manifest(&digest, &bytes).unwrap();
        assert!(!s.is_ready(&digest));
        assert!(matches!(
            s.lowers(&digest),
            Err(NodeError::ImageNotReady(_))
        ));
        layer(&s, &d('a'), 10);
        assert!(s.is_ready(&digest));
        assert_eq!(
            s.lowers(&digest).unwrap().layers,
            vec![s.layer_dir(&d('a')).unwrap()]
        );
        assert!(s.layer_dir("sha256:../../etc").is_err());
    }

    #[test]
    fn lowers_are_top_first_and_gc_keeps_what_is_used() {
        let tmp = tempfile::tempdir().unwrap();
        let s = ImageStore::open(tmp.path()).unwrap();
        let (one, b1) = manifest(&[&d('a'), &d('b')]);
        let (two, b2) = manifest(&[&d('a'), &d('c')]);
        s.save_manifest(&one, &b1).unwrap();
        s.save_manifest(&two, &b2).unwrap();
        for (c, n) in [('a', 100), ('b', 10), ('c', 20)] {
            layer(&s, &d(c), n);
        }
        let l = s.lowers(&one).unwrap().layers;
        assert_eq!(
            l,
            vec![s.layer_dir(&d('b')).unwrap(), s.layer_dir(&d('a')).unwrap()]
        );
        assert_eq!(s.usage(), 130);
        // Under budget: nothing goes.
        assert_eq!(s.gc(&HashSet::new(), 1000).unwrap(), GcReport::default());
        // Budget 0, `two` in use: `one` goes with its own layer only; the shared one stays.
        let r = s.gc(&HashSet::from([two.clone()]), 0).unwrap();
        assert_eq!(r.images, vec![one.clone()]);
        assert_eq!((r.layers, r.bytes), (1, 10));
        assert!(s.is_ready(&two) && !s.has_layer(&d('b')) && s.has_layer(&d('a')));
        // One blob read two ways is two trees: the plain-tar one does not stand for gzip.
        assert_eq!(s.has_layer_as(&d('a'), LAYER_TAR), Ok(true));
        assert!(s
            .has_layer_as(&d('a'), slicelab_model::image::LAYER_TAR_GZIP)
            .unwrap_err()
            .contains("refused"));
        // A download nothing needs any more goes too.
        let stale = s.partial_blob(&d('e')).unwrap();
        fs::write(&stale, "half").unwrap();
        // Nothing in use: everything goes.
        let r = s.gc(&HashSet::new(), 0).unwrap();
        assert_eq!(r.images, vec![two]);
        assert_eq!(s.usage(), 0);
        assert!(!stale.exists());
    }
}

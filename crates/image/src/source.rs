//! An image on local disk: its config and its layer blobs as files, ready to publish or unpack.

use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;
use slicelab_model::image::{ImageConfig, ImageManifest, LayerRef};
use tempfile::TempDir;

/// The PATH of an image that names none (a plain root filesystem tarball).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One layer: its blob on disk (compressed as its media type says) and its descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLayer {
    pub path: PathBuf,
    pub layer: LayerRef,
}

/// An opened or pulled image. Every layer's digest was verified against its descriptor. The
/// blobs may live in a temporary directory that this value owns: keep it alive while using them.
#[derive(Debug)]
pub struct ImageSource {
    pub config: ImageConfig,
    /// Bottom layer first.
    pub layers: Vec<LocalLayer>,
    /// Where extracted or downloaded blobs live (removed on drop); `None` when the blobs are the
    /// caller's own files.
    _dir: Option<TempDir>,
}

impl ImageSource {
    pub(crate) fn new(config: ImageConfig, layers: Vec<LocalLayer>, dir: Option<TempDir>) -> Self {
        ImageSource {
            config,
            layers,
            _dir: dir,
        }
    }

    /// The manifest central stores and nodes fetch.
    pub fn manifest(&self) -> ImageManifest {
        ImageManifest {
            config: self.config.clone(),
            layers: self.layers.iter().map(|l| l.layer.clone()).collect(),
        }
    }
}

/// The config of an image that says nothing: the usual PATH, no command.
pub(crate) fn default_config() -> ImageConfig {
    ImageConfig {
        env: vec![DEFAULT_PATH.to_string()],
        ..ImageConfig::default()
    }
}

/// What slicelab keeps of an OCI (or Docker) image config: Env, Entrypoint, Cmd, WorkingDir,
/// User (empty strings count as absent).
pub(crate) fn config_from_oci(c: &ImageConfiguration) -> ImageConfig {
    let Some(cfg) = c.config() else {
        return ImageConfig::default();
    };
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    ImageConfig {
        env: cfg.env().clone().unwrap_or_default(),
        entrypoint: cfg.entrypoint().clone().unwrap_or_default(),
        cmd: cfg.cmd().clone().unwrap_or_default(),
        working_dir: non_empty(cfg.working_dir()),
        user: non_empty(cfg.user()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_configs_become_image_configs() {
        let json = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "config":{"Env":["PATH=/bin","A=b"],"Entrypoint":["/init"],"Cmd":["-v"],
            "WorkingDir":"/srv","User":"","ExposedPorts":{"80/tcp":{}},"Labels":{"x":"y"}},
            "container_config":{"Hostname":"h"},"docker_version":"27"}"#;
        let c: ImageConfiguration = serde_json::from_str(json).unwrap();
        let got = config_from_oci(&c);
        assert_eq!(got.env, ["PATH=/bin", "A=b"]);
        assert_eq!(got.command(), ["/init", "-v"]);
        assert_eq!(got.working_dir.as_deref(), Some("/srv"));
        assert_eq!(got.user, None);
        assert_eq!(default_config().env, [DEFAULT_PATH]);
    }
}

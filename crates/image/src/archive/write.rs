//! Writing an image as an OCI image layout directory (a source for `skopeo copy oci:DIR:TAG`,
//! and what `open` reads back). Layers keep their bytes (and so their digests); their media
//! types are written in their OCI form; the config gets the layers' `diff_id`s.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::str::FromStr;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, ImageConfigurationBuilder, ImageIndex,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use slicelab_model::image::{layer_compression, Compression};

use super::oci::blob_path;
use crate::compress::{diff_id, layer_media_type};
use crate::digest::{check, Sha256Writer};
use crate::error::{ImageError, IoContext};
use crate::source::ImageSource;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn spec_err(e: impl std::fmt::Display) -> ImageError {
    ImageError::Build(format!("writing the OCI layout: {e}"))
}

fn digest(s: &str) -> Result<Digest, ImageError> {
    Digest::from_str(s).map_err(spec_err)
}

/// Stores `bytes` as a blob; returns its descriptor.
fn put_json(dir: &Path, media_type: MediaType, bytes: &[u8]) -> Result<Descriptor, ImageError> {
    let mut w = Sha256Writer::new(io::sink());
    io::Write::write_all(&mut w, bytes).map_err(|e| ImageError::io("hashing", e))?;
    let d = w.digest();
    let path = blob_path(dir, &d)?;
    fs::write(&path, bytes).ctx("writing", &path)?;
    Ok(Descriptor::new(media_type, bytes.len() as u64, digest(&d)?))
}

/// Copies a layer blob into the layout (unless already there), checking its digest.
fn put_layer(dir: &Path, src: &Path, want: &str, what: &str) -> Result<(), ImageError> {
    let dest = blob_path(dir, want)?;
    if dest.exists() {
        return Ok(());
    }
    let tmp = dest.with_extension("partial");
    let mut input = File::open(src).ctx("opening", src)?;
    let mut out = Sha256Writer::new(File::create(&tmp).ctx("creating", &tmp)?);
    io::copy(&mut input, &mut out).ctx("copying", src)?;
    check(what, want, out.digest())?;
    fs::rename(&tmp, &dest).ctx("renaming", &tmp)
}

/// Writes `src` into the OCI image layout `dir` (created if missing) under the tag `tag`;
/// another image already in the layout stays, one with the same tag is replaced in the index.
pub fn write_oci_layout(src: &ImageSource, dir: &Path, tag: &str) -> Result<(), ImageError> {
    if tag.is_empty() || tag.contains('/') {
        return Err(ImageError::Build(format!("{tag:?} is not a tag")));
    }
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).ctx("creating", &blobs)?;
    let marker = dir.join("oci-layout");
    fs::write(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#).ctx("writing", &marker)?;

    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, l) in src.layers.iter().enumerate() {
        let what = format!("layer {i} ({})", l.path.display());
        let c = layer_compression(&l.layer.media_type).ok_or_else(|| {
            ImageError::bad(format!("{what}: media type {:?}", l.layer.media_type))
        })?;
        put_layer(dir, &l.path, &l.layer.digest, &what)?;
        diff_ids.push(match c {
            Compression::None => l.layer.digest.clone(),
            c => diff_id(&l.path, c)?,
        });
        let mt = MediaType::from(layer_media_type(c));
        layers.push(Descriptor::new(mt, l.layer.size, digest(&l.layer.digest)?));
    }

    let cfg = &src.config;
    let mut inner = ConfigBuilder::default()
        .env(cfg.env.clone())
        .entrypoint(cfg.entrypoint.clone())
        .cmd(cfg.cmd.clone());
    if let Some(w) = &cfg.working_dir {
        inner = inner.working_dir(w.clone());
    }
    if let Some(u) = &cfg.user {
        inner = inner.user(u.clone());
    }
    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(inner.build().map_err(spec_err)?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .map_err(spec_err)?,
        )
        .build()
        .map_err(spec_err)?;
    let config_bytes = serde_json::to_vec(&config).map_err(spec_err)?;
    let config_desc = put_json(dir, MediaType::ImageConfig, &config_bytes)?;

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc)
        .layers(layers)
        .build()
        .map_err(spec_err)?;
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(spec_err)?;
    let mut manifest_desc = put_json(dir, MediaType::ImageManifest, &manifest_bytes)?;
    manifest_desc.set_annotations(Some(HashMap::from([(
        REF_NAME.to_string(),
        tag.to_string(),
    )])));
    manifest_desc.set_platform(Some(
        PlatformBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .build()
            .map_err(spec_err)?,
    ));
    write_index(dir, manifest_desc, tag)
}

/// `index.json` with `desc` under `tag`, keeping the other tags already there.
fn write_index(dir: &Path, desc: Descriptor, tag: &str) -> Result<(), ImageError> {
    let path = dir.join("index.json");
    let mut manifests: Vec<Descriptor> = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<ImageIndex>(&bytes)
            .map_err(|e| ImageError::bad(format!("{}: {e}", path.display())))?
            .manifests()
            .clone(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(ImageError::io(format!("reading {}", path.display()), e)),
    };
    manifests.retain(|d| {
        let named = d.annotations().as_ref().and_then(|a| a.get(REF_NAME));
        !matches!(named, Some(t) if t == tag)
    });
    manifests.push(desc);
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(spec_err)?;
    let bytes = serde_json::to_vec(&index).map_err(spec_err)?;
    let tmp = dir.join("index.json.partial");
    fs::write(&tmp, bytes).ctx("writing", &tmp)?;
    fs::rename(&tmp, &path).ctx("renaming", &tmp)
}

//! Choosing the linux/amd64 image among an index's (or manifest list's) entries, and telling
//! indexes from manifests by media type (pure).

use oci_spec::image::{Arch, Descriptor, MediaType, Os};

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Whether a media type names an index (OCI) or a manifest list (Docker).
pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// Whether a media type names an image manifest (OCI or Docker v2 schema 2).
pub(crate) fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// The entry for linux/amd64; a lone entry without a platform is taken as it is.
pub(crate) fn choose(manifests: &[Descriptor]) -> Result<&Descriptor, String> {
    let amd64 = |d: &&Descriptor| {
        d.platform()
            .as_ref()
            .is_some_and(|p| *p.os() == Os::Linux && *p.architecture() == Arch::Amd64)
    };
    if let Some(d) = manifests.iter().find(amd64) {
        return Ok(d);
    }
    match manifests {
        [] => Err("the index lists no image".into()),
        [only] if only.platform().is_none() => Ok(only),
        _ => {
            let seen: Vec<String> = manifests
                .iter()
                .map(|d| match d.platform() {
                    Some(p) => format!("{}/{}", p.os(), p.architecture()),
                    None => "no platform".into(),
                })
                .collect();
            Err(format!(
                "no linux/amd64 image in the index (it has: {})",
                seen.join(", ")
            ))
        }
    }
}

/// A descriptor's media type as a string.
pub(crate) fn media_type(d: &Descriptor) -> String {
    match d.media_type() {
        MediaType::Other(s) => s.clone(),
        m => m.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(platform: Option<(&str, &str)>, hex: char) -> Descriptor {
        let mut v = serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": format!("sha256:{}", hex.to_string().repeat(64)),
            "size": 10,
        });
        if let Some((os, arch)) = platform {
            v["platform"] = serde_json::json!({"os": os, "architecture": arch});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn linux_amd64_is_chosen() {
        let list = [
            desc(Some(("linux", "arm64")), 'a'),
            desc(Some(("unknown", "unknown")), 'b'),
            desc(Some(("linux", "amd64")), 'c'),
        ];
        assert_eq!(choose(&list).unwrap().digest().digest(), "c".repeat(64));
        let only = [desc(None, 'd')];
        assert_eq!(choose(&only).unwrap().digest().digest(), "d".repeat(64));
        let e = choose(&list[..2]).unwrap_err();
        assert!(
            e.contains("linux/arm64") && e.contains("unknown/unknown"),
            "{e}"
        );
        assert!(choose(&[]).is_err());
        assert!(choose(&[desc(None, 'a'), desc(None, 'b')]).is_err());
        assert!(is_index(DOCKER_LIST) && is_index(OCI_INDEX) && !is_index(OCI_MANIFEST));
        assert!(is_manifest(DOCKER_MANIFEST) && !is_manifest(DOCKER_LIST));
        assert_eq!(media_type(&list[0]), OCI_MANIFEST);
    }
}

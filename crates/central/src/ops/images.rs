//! Images: publishing a manifest over uploaded blobs, and deleting an image. Publishing wakes
//! the nodes of the slices whose `image` tag already named an image of that name (their desired
//! state now carries its digest); deleting wakes none (no slice may name an image being deleted).

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use slicelab_model::image::{Image, NewImage, BUILTIN_IMAGE};
use slicelab_model::{names, Actor};
use slicelab_store::{NewImageRecord, StoreError};

use crate::ops::{person_id, OpError, OpResult};
use crate::state::AppState;

/// The site an image is published for: the one named, else the actor's first; it must exist.
async fn image_site(st: &AppState, actor: &Actor, named: Option<i64>) -> OpResult<i64> {
    let id = match (named, actor) {
        (Some(id), _) => id,
        (None, Actor::Person { site_ids, .. }) if !site_ids.is_empty() => site_ids[0],
        _ => {
            return Err(OpError::invalid(
                "site_id",
                "you belong to no site: name the site the image belongs to (site_id)",
            ))
        }
    };
    match st.store.site(&id.to_string()).await {
        Ok(s) => Ok(s.id),
        Err(StoreError::NotFound(_)) => Err(OpError::invalid(
            "site_id",
            format!("there is no site {id}"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Publishes `new`: `platform` images by admins, `site` images by the site's persons; a name not
/// taken (else `Conflict`) and not the built-in image's; a valid manifest whose every layer blob
/// was uploaded with the size it gives (else `Invalid` naming the blob) and reads as a node will
/// unpack it (else `Invalid` with the reason); a `site` image within
/// its site's quota (else `Invalid` naming the quota). Its digest is the sha256 of the
/// manifest's canonical JSON, which is stored as is.
pub async fn create(st: &AppState, actor: &Actor, new: &NewImage) -> OpResult<Image> {
    let owner = person_id(actor)?;
    let site_id = image_site(st, actor, new.site_id).await?;
    actor.can_publish_image(new.visibility, site_id)?;
    names::image(&new.name)?;
    if new.name == BUILTIN_IMAGE {
        return Err(OpError::invalid(
            "name",
            format!("{BUILTIN_IMAGE:?} is the built-in image's name; choose another"),
        ));
    }
    let m = &new.manifest;
    m.validate()?;
    let digests: BTreeSet<&str> = m.layers.iter().map(|l| l.digest.as_str()).collect();
    let stored = st
        .store
        .blob_sizes(&digests.into_iter().collect::<Vec<_>>())
        .await?;
    for l in &m.layers {
        match stored.get(&l.digest) {
            None => {
                return Err(OpError::invalid(
                    "layers",
                    format!(
                        "blob {} has not been uploaded: PUT it to /api/v1/blobs/{} first",
                        l.digest, l.digest
                    ),
                ))
            }
            Some(size) if *size != l.size => {
                return Err(OpError::invalid(
                    "layers",
                    format!(
                        "blob {} has {size} bytes, not {} as the manifest says",
                        l.digest, l.size
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    for l in &m.layers {
        st.blobs
            .check_layer(&l.digest, &l.media_type)
            .await
            .map_err(|why| OpError::invalid("layers", format!("layer {}: {why}", l.digest)))?;
    }
    // Every size is a stored blob's, so the sum is far from overflowing.
    let size = m.layers.iter().fold(0u64, |a, l| a.saturating_add(l.size));
    let canonical = m.to_canonical_json();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&canonical)));
    let manifest_json = String::from_utf8(canonical)
        .map_err(|_| OpError::Internal("a manifest did not serialise as UTF-8".into()))?;
    let rec = st
        .store
        .create_image(
            &actor.label(),
            crate::now(),
            &NewImageRecord {
                name: &new.name,
                digest: &digest,
                visibility: new.visibility,
                site_id,
                owner_id: owner,
                manifest: m,
                manifest_json: &manifest_json,
                size,
            },
        )
        .await?;
    // Slices may already name this image (tags set before it was published).
    let nodes = st.store.nodes_naming_image(&new.name).await?;
    st.changed_nodes(&nodes);
    Ok(rec.image)
}

/// Deletes an image: by its publisher, a PI of its site or an admin; refused (`Conflict`,
/// naming them) while any slice's `image` tag names it. The blobs no other image uses are
/// removed after the commit. An image the actor may not see is `NotFound`.
pub async fn delete(st: &AppState, actor: &Actor, name: &str) -> OpResult<()> {
    person_id(actor)?;
    let rec = st.store.image(name).await?;
    let img = &rec.image;
    if actor.can_see_image(img.visibility, img.site_id).is_err() {
        return Err(OpError::NotFound(format!("image {name:?} not found")));
    }
    actor.can_delete_image(rec.owner_id, img.site_id)?;
    let freed = st
        .store
        .delete_image(&actor.label(), crate::now(), img)
        .await?;
    st.blobs.remove_forgotten(&st.store, &freed).await;
    Ok(())
}

/// Whether a slice of `site_id` may name `img` in its `image` tag.
pub(crate) fn usable_by_site(img: &Image, site_id: i64) -> bool {
    img.visibility == slicelab_model::image::Visibility::Platform || img.site_id == site_id
}

//! Images at central over the real API: blobs uploaded and checked, images published and seen
//! by who may use them, nodes fetching manifests and blobs (resuming with `Range`, bounded
//! downloads), `image` tags checked against published images and carried to the node as a
//! digest, deletion refused while a slice names the image and freeing its blobs' files.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, new_slice, status, Backend, TestCentral};
use serde_json::Value;
use sha2::{Digest, Sha256};
use slicelab_central::BlobConfig;
use slicelab_client::{Client, ClientError};
use slicelab_model::image::{
    digest_hex, Image, ImageConfig, ImageManifest, LayerRef, NewImage, Visibility, LAYER_TAR,
};
use slicelab_model::{SiteUpdate, SliceTagSet, TagName};

both_backends!(
    images_from_upload_to_node_to_deletion,
    a_sites_images_stay_within_its_quota,
);

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A layer blob of exactly `len` bytes: an uncompressed tar of one file whose content is seeded
/// by `seed`, zero-padded after its end (readers stop at the end marker); below 2048 bytes, too
/// small for a tar, just seeded bytes (for upload tests). Written to a file in `dir`: (path,
/// digest, bytes).
fn blob_file(dir: &Path, seed: u8, len: usize) -> (PathBuf, String, Vec<u8>) {
    let bytes = if len < 2048 {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    } else {
        layer_tar(seed, len)
    };
    let digest = sha(&bytes);
    let path = dir.join(digest_hex(&digest));
    std::fs::write(&path, &bytes).expect("write blob");
    (path, digest, bytes)
}

fn layer_tar(seed: u8, len: usize) -> Vec<u8> {
    let content: Vec<u8> = (0..(len - 2048) / 512 * 512)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(content.len() as u64);
    h.set_cksum();
    b.append_data(&mut h, "data", &content[..]).expect("tar");
    let mut bytes = b.into_inner().expect("tar");
    assert!(bytes.len() <= len, "{len} is too small for a layer");
    bytes.resize(len, 0);
    bytes
}

fn layer(digest: &str, size: usize) -> LayerRef {
    LayerRef {
        digest: digest.into(),
        size: size as u64,
        media_type: LAYER_TAR.into(),
    }
}

fn new_image(name: &str, vis: Visibility, site_id: Option<i64>, layers: Vec<LayerRef>) -> NewImage {
    NewImage {
        name: name.into(),
        visibility: vis,
        site_id,
        manifest: ImageManifest {
            config: ImageConfig {
                cmd: vec!["/bin/sh".into()],
                ..Default::default()
            },
            layers,
        },
    }
}

fn names(images: &[Image]) -> Vec<&str> {
    images.iter().map(|i| i.name.as_str()).collect()
}

/// The message of a failed call (panics if it succeeded).
fn message<T: std::fmt::Debug>(r: Result<T, ClientError>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

async fn site_id(c: &Client, login_base: &str) -> i64 {
    c.site(login_base).await.expect("site").id
}

async fn set_image(c: &Client, slice: &str, value: &str) -> Result<(), ClientError> {
    let body = SliceTagSet {
        value: value.into(),
        node: None,
    };
    c.set_slice_tag(slice, TagName::Image, &body)
        .await
        .map(|_| ())
}

async fn images_from_upload_to_node_to_deletion(b: Backend) {
    let tc = TestCentral::start(b).await;
    let fx = fixture(&tc).await;
    let files = tempfile::tempdir().expect("tempdir");
    let (path_a, a, bytes_a) = blob_file(files.path(), 1, 300_000);
    let (path_b, bb, _) = blob_file(files.path(), 2, 5_000);
    let princeton = site_id(&tc.admin, "princeton").await;

    // Upload: absent, then present with its size; again is harmless.
    assert_eq!(fx.user_p.head_blob(&a).await.expect("head"), None);
    fx.user_p.put_blob(&a, &path_a).await.expect("upload a");
    fx.user_p
        .put_blob(&a, &path_a)
        .await
        .expect("upload a again");
    assert_eq!(fx.user_p.head_blob(&a).await.expect("head"), Some(300_000));
    fx.pi_m.put_blob(&bb, &path_b).await.expect("upload b");
    let on_disk = tc.blob_dir.join("sha256").join(digest_hex(&a));
    assert_eq!(std::fs::read(&on_disk).expect("blob file"), bytes_a);
    // Nodes and nobody do not upload. (A small blob: a refusal before the body is read reaches
    // a client that is still sending a big one as a broken connection.)
    let node_p = tc.anon().with_token(fx.node_p.node_key.clone());
    assert_eq!(status(node_p.put_blob(&bb, &path_b).await), 401);
    assert_eq!(status(tc.anon().put_blob(&bb, &path_b).await), 401);

    // Publish: a site image by a user of the site (its first site by default) ...
    let tools = fx
        .user_p
        .create_image(&new_image(
            "pl-tools",
            Visibility::Site,
            None,
            vec![layer(&a, 300_000)],
        ))
        .await
        .expect("site image");
    assert_eq!(tools.site_id, princeton);
    assert_eq!(tools.owner, "user@princeton.test");
    assert_eq!(tools.size, 300_000);
    assert_eq!(tools.digest, sha(&tools.manifest.to_canonical_json()));
    // ... and a platform image by an admin, who names the site (admins belong to none).
    let both = vec![layer(&a, 300_000), layer(&bb, 5_000)];
    let e = tc
        .admin
        .create_image(&new_image(
            "debian",
            Visibility::Platform,
            None,
            both.clone(),
        ))
        .await;
    assert!(message(e).contains("site_id"));
    let debian = tc
        .admin
        .create_image(&new_image(
            "debian",
            Visibility::Platform,
            Some(princeton),
            both,
        ))
        .await
        .expect("platform image");
    assert_eq!(debian.size, 305_000);

    // Refused: platform by a non-admin, another site's image, a taken or bad name, blobs
    // missing or of another size.
    let one = || vec![layer(&a, 300_000)];
    let r = fx
        .pi_p
        .create_image(&new_image("x", Visibility::Platform, None, one()))
        .await;
    assert_eq!(status(r), 403);
    let r = fx
        .user_m
        .create_image(&new_image("x", Visibility::Site, Some(princeton), one()))
        .await;
    assert_eq!(status(r), 403);
    let r = fx
        .pi_p
        .create_image(&new_image("pl-tools", Visibility::Site, None, one()))
        .await;
    assert_eq!(status(r), 409);
    for bad in ["base", "Bad Name", ""] {
        let r = fx
            .pi_p
            .create_image(&new_image(bad, Visibility::Site, None, one()))
            .await;
        assert_eq!(status(r), 422, "{bad:?}");
    }
    let missing = sha(b"never uploaded");
    let r = fx
        .pi_p
        .create_image(&new_image(
            "x",
            Visibility::Site,
            None,
            vec![layer(&missing, 14)],
        ))
        .await;
    let m = message(r);
    assert!(m.starts_with("422") && m.contains(&missing), "{m}");
    let r = fx
        .pi_p
        .create_image(&new_image("x", Visibility::Site, None, vec![layer(&a, 7)]))
        .await;
    let m = message(r);
    assert!(m.starts_with("422") && m.contains("300000 bytes"), "{m}");
    let r = fx
        .pi_p
        .create_image(&new_image("x", Visibility::Site, None, vec![]))
        .await;
    assert_eq!(status(r), 422);

    // Who sees what.
    assert_eq!(
        names(&fx.user_p.images().await.expect("list")),
        ["debian", "pl-tools"]
    );
    assert_eq!(names(&fx.user_m.images().await.expect("list")), ["debian"]);
    assert_eq!(
        names(&tc.admin.images().await.expect("list")),
        ["debian", "pl-tools"]
    );
    assert_eq!(fx.tech_p.image("pl-tools").await.expect("show"), tools);
    assert_eq!(status(fx.pi_m.image("pl-tools").await), 404);
    assert_eq!(status(fx.pi_m.image("nosuch").await), 404);
    assert_eq!(
        fx.pi_m.image("debian").await.expect("show").digest,
        debian.digest
    );

    // A node fetches the manifest (the exact bytes hashed) and the blobs, resuming with Range.
    let m = node_p.manifest(&tools.digest).await.expect("manifest");
    assert_eq!(sha(&m), tools.digest);
    assert_eq!(m, tools.manifest.to_canonical_json());
    let r = node_p.blob(&a, 0).await.expect("blob");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(r.headers()["content-length"], "300000");
    assert_eq!(r.bytes().await.expect("bytes").as_ref(), bytes_a.as_slice());
    let r = node_p.blob(&a, 123_456).await.expect("rest of the blob");
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 123456-299999/300000");
    assert_eq!(
        r.bytes().await.expect("bytes").as_ref(),
        &bytes_a[123_456..]
    );
    let r = node_p.blob(&a, 300_000).await;
    assert_eq!(status(r), 416);
    assert_eq!(status(node_p.blob(&missing, 0).await), 404);
    assert_eq!(status(node_p.manifest(&missing).await), 404);
    assert_eq!(status(node_p.manifest("sha256:nope").await), 400);
    // Persons do not use the node endpoints.
    assert_eq!(status(fx.user_p.blob(&a, 0).await), 403);
    assert_eq!(status(fx.user_p.manifest(&tools.digest).await), 403);

    // An `image` tag names the built-in image or an image the slice's site may use.
    new_slice(&fx.pi_p, "princeton_x").await;
    new_slice(&fx.pi_m, "mit_y").await;
    let m = message(set_image(&fx.pi_p, "princeton_x", "nosuch").await);
    assert!(m.starts_with("422") && m.contains("nosuch"), "{m}");
    let m = message(set_image(&fx.pi_m, "mit_y", "pl-tools").await);
    assert!(m.starts_with("422") && m.contains("pl-tools"), "{m}");
    set_image(&fx.pi_m, "mit_y", "debian")
        .await
        .expect("platform image");
    set_image(&fx.pi_m, "mit_y", "base")
        .await
        .expect("built-in image");
    set_image(&fx.pi_p, "princeton_x", "pl-tools")
        .await
        .expect("own site's image");
    fx.pi_p
        .add_slice_nodes("princeton_x", &["node1.princeton.test".into()])
        .await
        .expect("add node");
    let d = node_p
        .desired_slivers(None, std::time::Duration::ZERO)
        .await
        .expect("desired");
    let sliver = d.slivers.iter().find(|s| s.slice_name == "princeton_x");
    assert_eq!(
        sliver.and_then(|s| s.image_digest.clone()),
        Some(tools.digest.clone())
    );

    // Deleting: not visible → 404; neither publisher nor PI → 403; named by a tag → 409.
    assert_eq!(status(fx.pi_m.delete_image("pl-tools").await), 404);
    assert_eq!(status(fx.tech_p.delete_image("pl-tools").await), 403);
    let m = message(fx.user_p.delete_image("pl-tools").await);
    assert!(m.starts_with("409") && m.contains("princeton_x"), "{m}");
    fx.pi_p
        .delete_slice_tag("princeton_x", TagName::Image, None)
        .await
        .expect("untag");
    fx.user_p.delete_image("pl-tools").await.expect("delete");
    assert_eq!(status(fx.user_p.image("pl-tools").await), 404);
    // debian still uses blob a.
    assert!(on_disk.exists());
    assert_eq!(fx.user_p.head_blob(&a).await.expect("head"), Some(300_000));
    tc.admin.delete_image("debian").await.expect("delete");
    assert!(!on_disk.exists(), "the blob's file is removed");
    assert_eq!(fx.user_p.head_blob(&a).await.expect("head"), None);
    assert_eq!(fx.user_p.head_blob(&bb).await.expect("head"), None);
    assert_eq!(status(node_p.blob(&a, 0).await), 404);

    // Each change is an event.
    let events: Value = tc
        .admin
        .get("/events?object_type=image")
        .await
        .expect("events");
    let actions: Vec<(&str, &str)> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["object_name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("image.deleted", "debian"),
            ("image.deleted", "pl-tools"),
            ("image.created", "debian"),
            ("image.created", "pl-tools"),
        ]
    );
    let e = &events["items"][3];
    assert_eq!(e["actor"], "person:user@princeton.test");
    assert_eq!(e["detail"]["digest"], tools.digest.as_str());
    assert_eq!(e["detail"]["size"], 300_000);
    let uploads: Value = tc
        .admin
        .get("/events?object_type=blob")
        .await
        .expect("events");
    assert!(uploads["total"].as_i64().unwrap_or(0) >= 3);
    tc.stop().await;
}

async fn a_sites_images_stay_within_its_quota(b: Backend) {
    let tc = TestCentral::start(b).await;
    let fx = fixture(&tc).await;
    let files = tempfile::tempdir().expect("tempdir");
    let (pa, a, _) = blob_file(files.path(), 3, 600 << 10);
    let (pb, bb, _) = blob_file(files.path(), 4, 600 << 10);
    fx.pi_p.put_blob(&a, &pa).await.expect("upload");
    fx.pi_p.put_blob(&bb, &pb).await.expect("upload");
    // A site shows its quota and what its `site` images use.
    let princeton = tc.admin.site("princeton").await.expect("site");
    assert_eq!(
        (princeton.image_quota_mb, princeton.image_used_bytes),
        (20480, 0)
    );
    // Only admins change it: the site's PI is refused, and nothing changes.
    let r = fx
        .pi_p
        .update_site(
            "princeton",
            &SiteUpdate {
                image_quota_mb: Some(1_000_000),
                ..Default::default()
            },
        )
        .await;
    let m = message(r);
    assert!(m.starts_with("403") && m.contains("image_quota_mb"), "{m}");
    // Out of bounds is refused as the schema says, naming the field.
    let r = tc
        .admin
        .update_site(
            "princeton",
            &SiteUpdate {
                image_quota_mb: Some(10_000_001),
                ..Default::default()
            },
        )
        .await;
    let m = message(r);
    assert!(m.starts_with("422") && m.contains("image_quota_mb"), "{m}");
    let princeton = tc
        .admin
        .update_site(
            "princeton",
            &SiteUpdate {
                image_quota_mb: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("an admin sets the quota");
    assert_eq!(princeton.image_quota_mb, 1);
    let events: Value = tc
        .admin
        .get("/events?object_type=site&object=princeton")
        .await
        .expect("events");
    let e = &events["items"][0];
    assert_eq!(e["action"], "site.update");
    assert_eq!(e["actor"], format!("person:{}", common::ADMIN_EMAIL));
    assert_eq!(e["detail"]["image_quota_mb"], 1);

    fx.pi_p
        .create_image(&new_image(
            "one",
            Visibility::Site,
            None,
            vec![layer(&a, 600 << 10)],
        ))
        .await
        .expect("within the quota");
    let r = fx
        .pi_p
        .create_image(&new_image(
            "two",
            Visibility::Site,
            None,
            vec![layer(&bb, 600 << 10)],
        ))
        .await;
    let m = message(r);
    assert!(
        m.starts_with("422") && m.contains("image_quota_mb") && m.contains("is 1 MiB"),
        "{m}"
    );
    let site = fx.pi_p.site("princeton").await.expect("site");
    assert_eq!((site.image_quota_mb, site.image_used_bytes), (1, 600 << 10));
    // The error names the quota as its field.
    let raw = reqwest::Client::new()
        .post(format!("{}/api/v1/images", tc.base))
        .bearer_auth(pi_token(&tc, "pi@princeton.test").await)
        .json(&new_image(
            "two",
            Visibility::Site,
            None,
            vec![layer(&bb, 600 << 10)],
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(raw.status(), 422);
    let body: Value = raw.json().await.expect("error body");
    assert_eq!(body["field"], "quota");
    // Platform images count against no quota.
    tc.admin
        .create_image(&new_image(
            "two",
            Visibility::Platform,
            Some(princeton.id),
            vec![layer(&bb, 600 << 10)],
        ))
        .await
        .expect("platform image");
    tc.stop().await;
}

async fn pi_token(tc: &TestCentral, email: &str) -> String {
    tc.anon()
        .login(email, common::PASSWORD)
        .await
        .expect("login")
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_are_not_what_they_claim_are_refused() {
    let tc = TestCentral::start_with(
        Backend::Sqlite,
        BlobConfig {
            max_blob_bytes: 4096,
            ..Default::default()
        },
    )
    .await;
    let fx = fixture(&tc).await;
    let files = tempfile::tempdir().expect("tempdir");
    let (path, digest, _) = blob_file(files.path(), 5, 1000);
    let other = sha(b"something else");
    let m = message(fx.user_p.put_blob(&other, &path).await);
    assert!(
        m.starts_with("400") && m.contains(&other) && m.contains(&digest),
        "{m}"
    );
    assert_eq!(status(fx.user_p.put_blob("sha256:ABC", &path).await), 400);
    assert_eq!(status(fx.user_p.head_blob("md5:abc").await), 400);
    let (big, big_digest, _) = blob_file(files.path(), 6, 5000);
    assert_eq!(status(fx.user_p.put_blob(&big_digest, &big).await), 413);
    // Nothing was kept of the refused uploads.
    assert_eq!(fx.user_p.head_blob(&other).await.expect("head"), None);
    assert_eq!(fx.user_p.head_blob(&big_digest).await.expect("head"), None);
    let tmp = std::fs::read_dir(tc.blob_dir.join("tmp")).expect("tmp dir");
    assert_eq!(tmp.count(), 0, "no temporary files left");
    let stored = std::fs::read_dir(tc.blob_dir.join("sha256")).expect("blob dir");
    assert_eq!(stored.count(), 0);
    // A blob that is no tar is stored as uploaded, but no image may use it: publishing reads
    // every layer as a node will and names what is wrong (whichever client publishes).
    fx.user_p.put_blob(&digest, &path).await.expect("upload");
    let m = message(
        fx.user_p
            .create_image(&new_image(
                "notatar",
                Visibility::Site,
                None,
                vec![layer(&digest, 1000)],
            ))
            .await,
    );
    assert!(
        m.starts_with("422") && m.contains(&digest) && m.contains("tar"),
        "{m}"
    );
    assert!(
        !m.contains(&tc.blob_dir.display().to_string()),
        "no server paths: {m}"
    );
    tc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_downloads_are_bounded() {
    // No download slot at all: every fetch is told to come back.
    let tc = TestCentral::start_with(
        Backend::Sqlite,
        BlobConfig {
            blob_fetch_limit: 0,
            ..Default::default()
        },
    )
    .await;
    let fx = fixture(&tc).await;
    let files = tempfile::tempdir().expect("tempdir");
    let (path, digest, _) = blob_file(files.path(), 7, 1000);
    fx.user_p.put_blob(&digest, &path).await.expect("upload");
    let node = tc.anon().with_token(fx.node_p.node_key.clone());
    match node.blob(&digest, 0).await {
        Err(ClientError::Busy { retry_after, .. }) => assert_eq!(retry_after, 2),
        other => panic!("expected Busy, got {other:?}"),
    }
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/node/blobs/{digest}", tc.base))
        .bearer_auth(&fx.node_p.node_key)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "2");
    let body: Value = r.json().await.expect("error body");
    assert_eq!(body["error"], "unavailable");
    tc.stop().await;

    // One slot: taken while a download is under way, free again once it is done.
    let tc = TestCentral::start_with(
        Backend::Sqlite,
        BlobConfig {
            blob_fetch_limit: 1,
            ..Default::default()
        },
    )
    .await;
    let fx = fixture(&tc).await;
    // Bigger than the socket buffers hold, so the first download stays under way until read.
    let (path, digest, bytes) = blob_file(files.path(), 8, 48 << 20);
    fx.user_p.put_blob(&digest, &path).await.expect("upload");
    let node = tc.anon().with_token(fx.node_p.node_key.clone());
    let first = node.blob(&digest, 0).await.expect("first download");
    match node.blob(&digest, 0).await {
        Err(ClientError::Busy { retry_after, .. }) => assert_eq!(retry_after, 2),
        other => panic!(
            "expected Busy while the slot is taken, got {:?}",
            other.map(|r| r.status())
        ),
    }
    assert_eq!(first.bytes().await.expect("body").len(), bytes.len());
    // The server lets go of the slot once the body is sent.
    let mut again = None;
    for _ in 0..50 {
        match node.blob(&digest, bytes.len() as u64 - 10).await {
            Ok(r) => {
                again = Some(r);
                break;
            }
            Err(ClientError::Busy { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    let again = again.expect("the slot is free again");
    assert_eq!(again.status(), 206);
    assert_eq!(
        again.bytes().await.expect("body").as_ref(),
        &bytes[bytes.len() - 10..]
    );
    tc.stop().await;
}

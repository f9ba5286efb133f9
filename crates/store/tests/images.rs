//! Images and their blobs (`store::images`): publishing checks what must hold inside the
//! transaction (name, recorded blobs, the site's quota), listing by visibility, deletion refused
//! while a slice's `image` tag names the image and freeing the blobs no other image uses,
//! removal of abandoned uploads, and the digest a node's desired state carries.
//!
//! Straight on the store, on SQLite and (with `SLICELAB_TEST_PG`) PostgreSQL.

mod common;

use common::{
    assign, event_count, last_event, node, person, site, slice, Backend, TestStore, ADMIN, NOW,
};
use slicelab_model::image::{ImageManifest, LayerRef, Visibility, LAYER_TAR_GZIP};
use slicelab_model::{Site, SiteUpdate, TagName};
use slicelab_store::EventFilter;
use slicelab_store::{NewImageRecord, PersonRecord, Store, StoreError};

both_backends!(
    images_publish_list_and_refuse_what_the_transaction_must,
    a_sites_quota_is_part_of_its_update_and_its_row_counts_its_site_images,
    deleting_an_image_is_refused_while_named_and_frees_unshared_blobs,
    abandoned_uploads_are_forgotten_after_a_while,
    desired_state_carries_the_digest_of_a_visible_published_image,
);

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn manifest(layers: &[(&str, u64)]) -> ImageManifest {
    ImageManifest {
        config: Default::default(),
        layers: layers
            .iter()
            .map(|(d, size)| LayerRef {
                digest: d.to_string(),
                size: *size,
                media_type: LAYER_TAR_GZIP.into(),
            })
            .collect(),
    }
}

/// Publishes `name` over `m` as `owner` (the store trusts its caller's checks).
async fn publish(
    s: &Store,
    name: &str,
    vis: Visibility,
    site: &Site,
    owner: &PersonRecord,
    m: &ImageManifest,
) -> Result<slicelab_store::ImageRecord, StoreError> {
    let json = String::from_utf8(m.to_canonical_json()).expect("utf-8");
    let digest = format!("sha256:{name}-digest");
    s.create_image(
        ADMIN,
        NOW,
        &NewImageRecord {
            name,
            digest: &digest,
            visibility: vis,
            site_id: site.id,
            owner_id: owner.person.id,
            manifest: m,
            manifest_json: &json,
            size: m.layers.iter().map(|l| l.size).sum(),
        },
    )
    .await
}

/// The quota is set by the site's one update (same transaction, same `site.update` event), and
/// the site's row says what its `site` images use, which is what the quota check counts.
async fn a_sites_quota_is_part_of_its_update_and_its_row_counts_its_site_images(b: Backend) {
    let s = TestStore::open(b).await;
    let pl = site(&s, "pl", 10).await;
    site(&s, "mit", 10).await;
    assert_eq!((pl.image_quota_mb, pl.image_used_bytes), (20480, 0));
    let alice = person(&s, "alice@pl.test", &pl).await;
    let (a, bb) = (digest('a'), digest('b'));
    s.record_blob(ADMIN, NOW, &a, 724 << 10).await.unwrap();
    s.record_blob(ADMIN, NOW, &bb, 300 << 10).await.unwrap();

    let before = event_count(&s).await;
    let pl = s
        .update_site(
            ADMIN,
            NOW,
            &pl,
            &SiteUpdate {
                name: Some("PlanetLab".into()),
                image_quota_mb: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (pl.name.as_str(), pl.image_quota_mb, pl.max_slices),
        ("PlanetLab", 1, 10)
    );
    assert_eq!(event_count(&s).await, before + 1);
    let (events, _) = s
        .list_events(&EventFilter::default(), Default::default())
        .await
        .unwrap();
    let e = &events[0];
    assert_eq!(
        (e.action.as_str(), e.object_name.as_str()),
        ("site.update", "pl")
    );
    assert_eq!(e.detail["image_quota_mb"], 1);
    assert_eq!(e.detail["name"], "PlanetLab");
    // An update without it keeps it.
    let pl = s
        .update_site(
            ADMIN,
            NOW,
            &pl,
            &SiteUpdate {
                max_slices: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((pl.image_quota_mb, pl.max_slices), (1, 3));
    assert_eq!(s.site("mit").await.unwrap().image_quota_mb, 20480);

    // `site` images count, platform ones do not; reads by id, by name and listings agree.
    publish(
        &s,
        "tools",
        Visibility::Site,
        &pl,
        &alice,
        &manifest(&[(&a, 724 << 10)]),
    )
    .await
    .unwrap();
    publish(
        &s,
        "big",
        Visibility::Platform,
        &pl,
        &alice,
        &manifest(&[(&a, 724 << 10), (&bb, 300 << 10)]),
    )
    .await
    .unwrap();
    assert_eq!(s.site("pl").await.unwrap().image_used_bytes, 724 << 10);
    assert_eq!(
        s.site(&pl.id.to_string()).await.unwrap().image_used_bytes,
        724 << 10
    );
    let (all, _) = s.list_sites(None, Default::default()).await.unwrap();
    let used: Vec<(&str, u64)> = all
        .iter()
        .map(|x| (x.login_base.as_str(), x.image_used_bytes))
        .collect();
    assert_eq!(used, [("mit", 0), ("pl", 724 << 10)]);

    // 724 KiB + 300 KiB fits in 1 MiB exactly; one byte more does not.
    publish(
        &s,
        "small",
        Visibility::Site,
        &pl,
        &alice,
        &manifest(&[(&bb, 300 << 10)]),
    )
    .await
    .unwrap();
    assert_eq!(s.site("pl").await.unwrap().image_used_bytes, 1 << 20);
    s.record_blob(ADMIN, NOW, &digest('c'), 1).await.unwrap();
    let e = publish(
        &s,
        "byte",
        Visibility::Site,
        &pl,
        &alice,
        &manifest(&[(&digest('c'), 1)]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, StoreError::OverQuota(m) if m.contains("is 1 MiB") && m.contains("use 1 MiB")),
        "{e}"
    );
    // Lowering the quota below what is used removes nothing; raising it lets the next one in.
    let pl = s
        .update_site(
            ADMIN,
            NOW,
            &pl,
            &SiteUpdate {
                image_quota_mb: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((pl.image_quota_mb, pl.image_used_bytes), (0, 1 << 20));
    let pl = s
        .update_site(
            ADMIN,
            NOW,
            &pl,
            &SiteUpdate {
                image_quota_mb: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    publish(
        &s,
        "byte",
        Visibility::Site,
        &pl,
        &alice,
        &manifest(&[(&digest('c'), 1)]),
    )
    .await
    .unwrap();
    s.close().await;
}

async fn images_publish_list_and_refuse_what_the_transaction_must(b: Backend) {
    let s = TestStore::open(b).await;
    let pl = site(&s, "pl", 10).await;
    let mit = site(&s, "mit", 10).await;
    let alice = person(&s, "alice@pl.test", &pl).await;
    let bob = person(&s, "bob@mit.test", &mit).await;
    let (a, bb) = (digest('a'), digest('b'));
    s.record_blob(ADMIN, NOW, &a, 600 << 10).await.unwrap();
    s.record_blob(ADMIN, NOW, &bb, 600 << 10).await.unwrap();
    assert_eq!(last_event(&s).await, ("blob.uploaded".into(), bb.clone()));
    assert_eq!(s.blob_size(&a).await.unwrap(), Some(600 << 10));
    assert_eq!(s.blob_size(&digest('c')).await.unwrap(), None);
    let sizes = s.blob_sizes(&[&a, &digest('c')]).await.unwrap();
    assert_eq!(sizes.len(), 1);
    assert_eq!(sizes[&a], 600 << 10);

    let m = manifest(&[(&a, 600 << 10)]);
    let before = event_count(&s).await;
    let img = publish(&s, "debian", Visibility::Site, &pl, &alice, &m)
        .await
        .unwrap();
    assert_eq!(event_count(&s).await, before + 1);
    assert_eq!(
        last_event(&s).await,
        ("image.created".into(), "debian".into())
    );
    assert_eq!(img.owner_id, Some(alice.person.id));
    let i = &img.image;
    assert_eq!(
        (i.name.as_str(), i.owner.as_str()),
        ("debian", "alice@pl.test")
    );
    assert_eq!(
        (i.visibility, i.site_id, i.size),
        (Visibility::Site, pl.id, 600 << 10)
    );
    assert_eq!(i.manifest, m);
    assert_eq!(
        s.image_manifest(&i.digest).await.unwrap().as_deref(),
        Some(String::from_utf8(m.to_canonical_json()).unwrap().as_str())
    );
    assert_eq!(s.image_manifest(&digest('f')).await.unwrap(), None);

    // The name is taken; nothing is stored and no event logged.
    let n = event_count(&s).await;
    let e = publish(&s, "debian", Visibility::Site, &mit, &bob, &m)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("already exists")),
        "{e}"
    );
    // A blob that is not recorded: the layer's foreign key refuses it.
    let e = publish(
        &s,
        "ghost",
        Visibility::Site,
        &pl,
        &alice,
        &manifest(&[(&digest('c'), 1)]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains(&digest('c'))),
        "{e}"
    );
    assert_eq!(event_count(&s).await, n);
    assert!(matches!(
        s.image("ghost").await,
        Err(StoreError::NotFound(_))
    ));

    // The quota counts the site's `site` images only.
    let pl = s
        .update_site(
            ADMIN,
            NOW,
            &pl,
            &SiteUpdate {
                image_quota_mb: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let m2 = manifest(&[(&bb, 600 << 10)]);
    let e = publish(&s, "ubuntu", Visibility::Site, &pl, &alice, &m2)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::OverQuota(m) if m.contains("image_quota_mb") && m.contains("1 MiB")),
        "{e}"
    );
    publish(&s, "ubuntu", Visibility::Platform, &pl, &alice, &m2)
        .await
        .unwrap();
    publish(&s, "mit-tools", Visibility::Site, &mit, &bob, &m2)
        .await
        .unwrap();

    let names = |v: Vec<slicelab_model::image::Image>| -> Vec<String> {
        v.into_iter().map(|i| i.name).collect()
    };
    assert_eq!(
        names(s.list_images(None).await.unwrap()),
        ["debian", "mit-tools", "ubuntu"]
    );
    assert_eq!(
        names(s.list_images(Some(&[pl.id])).await.unwrap()),
        ["debian", "ubuntu"]
    );
    assert_eq!(
        names(s.list_images(Some(&[mit.id])).await.unwrap()),
        ["mit-tools", "ubuntu"]
    );
    assert_eq!(names(s.list_images(Some(&[])).await.unwrap()), ["ubuntu"]);

    // A site with images cannot be deleted; the publisher can (the image stays, ownerless).
    let e = s.delete_site(ADMIN, NOW, &mit).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("images")),
        "{e}"
    );
    s.delete_person(ADMIN, NOW, &bob).await.unwrap();
    let orphan = s.image("mit-tools").await.unwrap();
    assert_eq!((orphan.owner_id, orphan.image.owner.as_str()), (None, ""));
    s.close().await;
}

async fn deleting_an_image_is_refused_while_named_and_frees_unshared_blobs(b: Backend) {
    let s = TestStore::open(b).await;
    let pl = site(&s, "pl", 10).await;
    let alice = person(&s, "alice@pl.test", &pl).await;
    let (a, bb) = (digest('a'), digest('b'));
    s.record_blob(ADMIN, NOW, &a, 10).await.unwrap();
    s.record_blob(ADMIN, NOW, &bb, 20).await.unwrap();
    let one = publish(
        &s,
        "one",
        Visibility::Site,
        &pl,
        &alice,
        &manifest(&[(&a, 10), (&bb, 20)]),
    )
    .await
    .unwrap()
    .image;
    publish(
        &s,
        "two",
        Visibility::Site,
        &pl,
        &alice,
        &manifest(&[(&a, 10)]),
    )
    .await
    .unwrap();
    let x = slice(&s, &pl, "pl_x").await;
    let y = slice(&s, &pl, "pl_y").await;
    let n1 = node(&s, "n1.pl.test", &pl).await;
    s.set_slice_tag(ADMIN, NOW, &x, TagName::Image, "one", None)
        .await
        .unwrap();
    s.set_slice_tag(
        ADMIN,
        NOW,
        &y,
        TagName::Image,
        "one",
        Some((n1.id, &n1.hostname)),
    )
    .await
    .unwrap();
    assert_eq!(
        s.slices_naming_image("one").await.unwrap(),
        ["pl_x", "pl_y"]
    );
    assert!(s.nodes_naming_image("one").await.unwrap().is_empty());
    assign(&s, &y, &[&n1]).await;
    assert_eq!(s.nodes_naming_image("one").await.unwrap(), ["n1.pl.test"]);

    let n = event_count(&s).await;
    let e = s.delete_image(ADMIN, NOW, &one).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("pl_x, pl_y")),
        "{e}"
    );
    assert_eq!(event_count(&s).await, n);
    s.delete_slice_tag(ADMIN, NOW, &x, TagName::Image, None)
        .await
        .unwrap();
    s.delete_slice_tag(ADMIN, NOW, &y, TagName::Image, Some((n1.id, &n1.hostname)))
        .await
        .unwrap();

    // `two` still uses blob a: only b is freed.
    let freed = s.delete_image(ADMIN, NOW, &one).await.unwrap();
    assert_eq!(freed, std::slice::from_ref(&bb));
    assert_eq!(last_event(&s).await, ("image.deleted".into(), "one".into()));
    assert_eq!(s.blob_size(&bb).await.unwrap(), None);
    assert_eq!(s.blob_size(&a).await.unwrap(), Some(10));
    assert!(matches!(s.image("one").await, Err(StoreError::NotFound(_))));
    assert!(matches!(
        s.delete_image(ADMIN, NOW, &one).await,
        Err(StoreError::NotFound(_))
    ));
    s.close().await;
}

async fn abandoned_uploads_are_forgotten_after_a_while(b: Backend) {
    let s = TestStore::open(b).await;
    let pl = site(&s, "pl", 10).await;
    let alice = person(&s, "alice@pl.test", &pl).await;
    let (a, bb, c) = (digest('a'), digest('b'), digest('c'));
    s.record_blob(ADMIN, NOW - 100, &a, 10).await.unwrap();
    s.record_blob(ADMIN, NOW - 100, &bb, 10).await.unwrap();
    s.record_blob(ADMIN, NOW, &c, 10).await.unwrap();
    publish(
        &s,
        "used",
        Visibility::Site,
        &pl,
        &alice,
        &manifest(&[(&a, 10)]),
    )
    .await
    .unwrap();
    // Used blobs stay; unused ones stay until they are old enough.
    assert_eq!(
        last_event(&s).await,
        ("image.created".into(), "used".into())
    );
    assert_eq!(
        s.remove_unused_blobs(ADMIN, NOW, NOW - 50).await.unwrap(),
        std::slice::from_ref(&bb)
    );
    assert_eq!(last_event(&s).await, ("blob.removed".into(), bb.clone()));
    assert_eq!(s.blob_size(&bb).await.unwrap(), None);
    assert_eq!(s.blob_size(&c).await.unwrap(), Some(10));
    // An upload again renews a blob's time.
    s.record_blob(ADMIN, NOW + 100, &c, 10).await.unwrap();
    assert!(s
        .remove_unused_blobs(ADMIN, NOW, NOW + 50)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.remove_unused_blobs(ADMIN, NOW, NOW + 200).await.unwrap(),
        std::slice::from_ref(&c)
    );
    assert_eq!(s.blob_size(&a).await.unwrap(), Some(10));
    s.close().await;
}

async fn desired_state_carries_the_digest_of_a_visible_published_image(b: Backend) {
    let s = TestStore::open(b).await;
    let pl = site(&s, "pl", 10).await;
    let mit = site(&s, "mit", 10).await;
    let alice = person(&s, "alice@pl.test", &pl).await;
    let bob = person(&s, "bob@mit.test", &mit).await;
    let a = digest('a');
    s.record_blob(ADMIN, NOW, &a, 10).await.unwrap();
    let m = manifest(&[(&a, 10)]);
    let public = publish(&s, "public", Visibility::Platform, &pl, &alice, &m)
        .await
        .unwrap()
        .image;
    let mine = publish(&s, "mine", Visibility::Site, &pl, &alice, &m)
        .await
        .unwrap()
        .image;
    publish(&s, "theirs", Visibility::Site, &mit, &bob, &m)
        .await
        .unwrap();
    let n1 = node(&s, "n1.pl.test", &pl).await;
    let n2 = node(&s, "n2.pl.test", &pl).await;
    let mut slices = Vec::new();
    for (name, image) in [
        ("pl_a", Some("public")),
        ("pl_b", Some("mine")),
        // Another site's `site` image is not this slice's (a tag set before the check).
        ("pl_c", Some("theirs")),
        ("pl_d", Some("base")),
        ("pl_e", None),
    ] {
        let sl = slice(&s, &pl, name).await;
        if let Some(i) = image {
            s.set_slice_tag(ADMIN, NOW, &sl, TagName::Image, i, None)
                .await
                .unwrap();
        }
        slices.push(assign(&s, &sl, &[&n1, &n2]).await);
    }
    // A node's own value overrides the slice-wide one.
    s.set_slice_tag(
        ADMIN,
        NOW,
        &slices[0],
        TagName::Image,
        "mine",
        Some((n2.id, &n2.hostname)),
    )
    .await
    .unwrap();
    let digests = |d: slicelab_model::DesiredSlivers| -> Vec<(String, Option<String>)> {
        d.slivers
            .into_iter()
            .map(|s| (s.slice_name, s.image_digest))
            .collect()
    };
    let d1 = digests(s.desired_slivers(&n1, NOW).await.unwrap());
    assert_eq!(
        d1,
        vec![
            ("pl_a".into(), Some(public.digest.clone())),
            ("pl_b".into(), Some(mine.digest.clone())),
            ("pl_c".into(), None),
            ("pl_d".into(), None),
            ("pl_e".into(), None),
        ]
    );
    let d2 = digests(s.desired_slivers(&n2, NOW).await.unwrap());
    assert_eq!(d2[0], ("pl_a".into(), Some(mine.digest.clone())));
    s.close().await;
}

//! The reads central's front ends share: objects by key, listings, slivers as reported, node
//! health, usage series and the public flow lookup. Each answers model types (or the filters
//! and paging re-exported here) and the operations' error type, so front ends never reach the
//! store.
//!
//! Listings of persons and events apply the actor's visibility themselves (non-admins see their
//! sites' persons and events, and their own); the other reads are of public objects or are
//! checked by the caller against `slicelab_model::policy` (a page may be stricter than the API).

use std::net::IpAddr;

use slicelab_model::flows::{LookupMatch, LookupResult};
use slicelab_model::image::Image;
use slicelab_model::sliver::Sliver;
use slicelab_model::{Actor, Event, Node, NodeHealth, Person, Site, Slice, SliceTag, UsageSeries};

use slicelab_store::ImageRecord;
pub use slicelab_store::{EventFilter, NodeFilter, Paging, PersonFilter, SliceFilter, UsageScope};

use crate::ops::{person_id, OpError, OpResult};
use crate::state::AppState;

/// A page of everything: the testbed's pages list whole tables of this size at most.
pub const ALL: Paging = Paging {
    limit: 1000,
    offset: 0,
};

/// The site `key` (id or login_base).
pub async fn site(st: &AppState, key: &str) -> OpResult<Site> {
    Ok(st.store.site(key).await?)
}

/// Sites (public), optionally only the one with `login_base`.
pub async fn sites(
    st: &AppState,
    login_base: Option<&str>,
    page: Paging,
) -> OpResult<(Vec<Site>, i64)> {
    Ok(st.store.list_sites(login_base, page).await?)
}

/// The node `key` (id or hostname).
pub async fn node(st: &AppState, key: &str) -> OpResult<Node> {
    Ok(st.store.node(key).await?)
}

/// Nodes (public) matching `f`.
pub async fn nodes(st: &AppState, f: &NodeFilter, page: Paging) -> OpResult<(Vec<Node>, i64)> {
    Ok(st.store.list_nodes(f, page).await?)
}

/// The slice `key` (id or name).
pub async fn slice(st: &AppState, key: &str) -> OpResult<Slice> {
    Ok(st.store.slice(key).await?)
}

/// Slices matching `f`.
pub async fn slices(st: &AppState, f: &SliceFilter, page: Paging) -> OpResult<(Vec<Slice>, i64)> {
    Ok(st.store.list_slices(f, page).await?)
}

fn site_ids(actor: &Actor) -> Vec<i64> {
    match actor {
        Actor::Person { site_ids, .. } => site_ids.clone(),
        _ => Vec::new(),
    }
}

/// Persons matching `f` that the actor may see (admins: all; others: their sites' and itself).
pub async fn persons(
    st: &AppState,
    actor: &Actor,
    mut f: PersonFilter,
    page: Paging,
) -> OpResult<(Vec<Person>, i64)> {
    let me = person_id(actor)?;
    f.visible_to = (!actor.is_admin()).then(|| (site_ids(actor), me));
    Ok(st.store.list_persons(&f, page).await?)
}

/// The audit log, newest first, as far as the actor may see it (admins: all; others: their own
/// actions and the events of their sites' objects).
pub async fn events(
    st: &AppState,
    actor: &Actor,
    mut f: EventFilter,
    page: Paging,
) -> OpResult<(Vec<Event>, i64)> {
    person_id(actor)?;
    f.visible_to = (!actor.is_admin()).then(|| (site_ids(actor), actor.label()));
    Ok(st.store.list_events(&f, page).await?)
}

/// The newest events of one slice with `action` (at most `limit`), for the slice's own page: whoever
/// may use the slice may see what happened to its slivers.
pub async fn slice_events(
    st: &AppState,
    slice: &Slice,
    action: &str,
    limit: usize,
) -> OpResult<Vec<Event>> {
    let f = EventFilter {
        object_type: Some("slice".into()),
        object: Some(slice.id.to_string()),
        ..Default::default()
    };
    let (items, _) = st
        .store
        .list_events(
            &f,
            Paging {
                limit: 500,
                offset: 0,
            },
        )
        .await?;
    Ok(items
        .into_iter()
        .filter(|e| e.action == action)
        .take(limit)
        .collect())
}

/// The slice's slivers as their nodes last reported them.
pub async fn slivers_of_slice(st: &AppState, slice_id: i64) -> OpResult<Vec<Sliver>> {
    Ok(st.store.slivers_of_slice(slice_id).await?)
}

/// The node's slivers as it last reported them.
pub async fn slivers_of_node(st: &AppState, node_id: i64) -> OpResult<Vec<Sliver>> {
    Ok(st.store.slivers_of_node(node_id).await?)
}

/// The node's health as last reported (`None` before its first report).
pub async fn node_health(st: &AppState, node_id: i64) -> OpResult<Option<NodeHealth>> {
    Ok(st
        .store
        .node_health(node_id)
        .await?
        .and_then(|v| serde_json::from_value(v).ok()))
}

/// The slice's tags, slice-wide and per node.
pub async fn slice_tags(st: &AppState, sl: &Slice) -> OpResult<Vec<SliceTag>> {
    Ok(st.store.slice_tags(sl).await?)
}

/// The images the actor may use: `platform` images and its sites' (admins: all), by name.
pub async fn images(st: &AppState, actor: &Actor) -> OpResult<Vec<Image>> {
    person_id(actor)?;
    let sites = site_ids(actor);
    let visible = (!actor.is_admin()).then_some(sites.as_slice());
    Ok(st.store.list_images(visible).await?)
}

/// The image `name`, if the actor may see it (else `NotFound`, as if there were none).
pub async fn image(st: &AppState, actor: &Actor, name: &str) -> OpResult<Image> {
    Ok(visible_image(st, actor, name).await?.image)
}

async fn visible_image(st: &AppState, actor: &Actor, name: &str) -> OpResult<ImageRecord> {
    person_id(actor)?;
    let rec = st.store.image(name).await?;
    if actor
        .can_see_image(rec.image.visibility, rec.image.site_id)
        .is_err()
    {
        return Err(OpError::NotFound(format!("image {name:?} not found")));
    }
    Ok(rec)
}

/// An image with what its page shows beside it.
#[derive(Debug, Clone)]
pub struct ImageDetail {
    pub image: Image,
    /// The slices whose `image` tag names it, by name.
    pub used_by: Vec<String>,
    /// Whether the actor may delete it (its publisher, its site's PIs, admins).
    pub may_delete: bool,
}

/// The image `name` with the slices that use it, if the actor may see it (else `NotFound`).
pub async fn image_detail(st: &AppState, actor: &Actor, name: &str) -> OpResult<ImageDetail> {
    let rec = visible_image(st, actor, name).await?;
    let img = rec.image;
    Ok(ImageDetail {
        used_by: st.store.slices_naming_image(&img.name).await?,
        may_delete: actor.can_delete_image(rec.owner_id, img.site_id).is_ok(),
        image: img,
    })
}

/// The canonical manifest (as stored, the bytes its digest is computed over) of the image with
/// this digest, for nodes.
pub async fn image_manifest(st: &AppState, digest: &str) -> OpResult<Option<String>> {
    Ok(st.store.image_manifest(digest).await?)
}

/// The size of a complete blob, `None` if central has no such blob.
pub async fn blob_size(st: &AppState, digest: &str) -> OpResult<Option<u64>> {
    Ok(st.store.blob_size(digest).await?)
}

/// Usage of `scope` over `[from, to)` in points of `step` seconds.
pub async fn usage_series(
    st: &AppState,
    scope: &UsageScope,
    from: i64,
    to: i64,
    step: i64,
) -> OpResult<UsageSeries> {
    Ok(st.store.usage_series(scope, from, to, step).await?)
}

/// "Who sent this?": the slices whose slivers on `node` exchanged traffic with `remote` (on
/// `port`, if given) within `[from, to]`, and who answers for each. Reveals nothing about
/// traffic with any other address. Public; front ends rate-limit it per client.
pub async fn lookup(
    st: &AppState,
    node: &Node,
    remote: IpAddr,
    port: Option<u16>,
    (from, to): (i64, i64),
) -> OpResult<LookupResult> {
    let rows = st
        .store
        .lookup_flows(node.id, remote, port, from, to)
        .await?;
    let mut matches = Vec::with_capacity(rows.len());
    for r in rows {
        let (description, url, site) = match st.store.slice(&r.slice).await {
            Ok(sl) => (sl.description, sl.url, sl.site),
            Err(_) => (
                "(slice since deleted)".to_string(),
                String::new(),
                slicelab_model::names::slice_login_base(&r.slice)
                    .unwrap_or_default()
                    .to_string(),
            ),
        };
        // A peer's slice: its authority answers for it, through the contact it gave.
        let (authority, contacts) = match st.store.foreign_contact(&r.slice).await? {
            Some((authority, contact)) => {
                let contacts = contact
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(|email| slicelab_model::flows::Contact {
                        name: format!("contact of authority {authority}"),
                        email: email.to_string(),
                        role: "peer".into(),
                    })
                    .collect();
                (Some(authority), contacts)
            }
            None => (None, st.store.slice_contacts(&r.slice).await?),
        };
        matches.push(LookupMatch {
            contacts,
            authority,
            slice: r.slice,
            description,
            url,
            site,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            flows: r.flows,
            tx_bytes: u64::try_from(r.tx_bytes).unwrap_or(0),
            rx_bytes: u64::try_from(r.rx_bytes).unwrap_or(0),
        });
    }
    Ok(LookupResult {
        node: node.hostname.clone(),
        remote: remote.to_string(),
        from,
        to,
        matches,
    })
}

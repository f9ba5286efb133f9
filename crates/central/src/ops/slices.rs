//! Slices: creation, changes, renewal, and their nodes and persons. A write wakes the nodes the
//! slice runs on (or the nodes added or removed); creation wakes none (a new slice has no nodes).

use slicelab_model::policy::check_renewal;
use slicelab_model::time::{DAY, SLICE_DEFAULT_LIFETIME};
use slicelab_model::{names, Actor, Slice, SliceCreate, SliceRenew, SliceUpdate};
use slicelab_placement::{select, SelectRequest, SelectResult};
use slicelab_store::StoreError;

use crate::ops::{named_nodes, named_persons, slice_and_member, OpError, OpResult};
use crate::state::AppState;

/// Creates a slice of the site its name starts with; it expires in 4 weeks unless renewed.
pub async fn create(st: &AppState, actor: &Actor, c: &SliceCreate) -> OpResult<Slice> {
    let base = names::slice_login_base(&c.name).ok_or_else(|| {
        OpError::invalid(
            "name",
            format!("{:?} must be <login_base>_<suffix>", c.name),
        )
    })?;
    let site = match st.store.site(base).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => {
            return Err(OpError::invalid(
                "name",
                format!(
                    "{:?} must start with a site's login_base; there is no site {base:?}",
                    c.name
                ),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    actor.can_create_slice(site.id)?;
    crate::ops::peers::refuse_peer_site(st, &site.login_base).await?;
    c.validate(&site.login_base)?;
    if !site.enabled {
        return Err(OpError::Conflict(format!(
            "site {} is disabled",
            site.login_base
        )));
    }
    let now = crate::now();
    Ok(st
        .store
        .create_slice(
            &actor.label(),
            now,
            c,
            site.id,
            site.max_slices,
            now + SLICE_DEFAULT_LIFETIME,
        )
        .await?)
}

/// Changes description, url or (admins only) whether the slice runs at all.
pub async fn update(st: &AppState, actor: &Actor, key: &str, u: &SliceUpdate) -> OpResult<Slice> {
    let (sl, _) = slice_and_member(st, actor, key).await?;
    actor.can_admin_slice(sl.site_id)?;
    if u.enabled.is_some() {
        actor.require_admin("enable or disable a slice")?;
    }
    u.validate()?;
    let sl = st
        .store
        .update_slice(&actor.label(), crate::now(), &sl, u)
        .await?;
    st.changed_slices(&[sl.id], &sl.nodes);
    Ok(sl)
}

pub async fn remove(st: &AppState, actor: &Actor, key: &str) -> OpResult<()> {
    let (sl, _) = slice_and_member(st, actor, key).await?;
    actor.can_create_slice(sl.site_id)?;
    st.store
        .delete_slice(&actor.label(), crate::now(), &sl)
        .await?;
    st.changed_slices(&[sl.id], &sl.nodes);
    Ok(())
}

/// The expiry a renewal asks for: exactly one of an instant or a number of days from `now`.
fn requested_expiry(now: i64, r: &SliceRenew) -> OpResult<i64> {
    match (r.expires, r.days) {
        (Some(e), None) => Ok(e),
        (None, Some(d)) if d >= 1 => Ok(now.saturating_add(d.saturating_mul(DAY))),
        (None, Some(_)) => Err(OpError::invalid("days", "days: renew by at least one day")),
        _ => Err(OpError::invalid(
            "expires",
            "give exactly one of expires or days",
        )),
    }
}

/// Moves the expiry: at most 8 weeks ahead; by the slice's persons, its site PIs and admins.
pub async fn renew(st: &AppState, actor: &Actor, key: &str, r: &SliceRenew) -> OpResult<Slice> {
    let (sl, member) = slice_and_member(st, actor, key).await?;
    actor.can_use_slice(sl.site_id, member)?;
    let now = crate::now();
    let expires = check_renewal(now, requested_expiry(now, r)?)?;
    let sl = st
        .store
        .renew_slice(&actor.label(), now, &sl, expires)
        .await?;
    st.changed_slices(&[sl.id], &sl.nodes);
    Ok(sl)
}

/// Adds nodes (ids or hostnames) to the slice, refusing any whose guarantees would over-commit.
pub async fn add_nodes(
    st: &AppState,
    actor: &Actor,
    key: &str,
    names: &[String],
) -> OpResult<Slice> {
    let (sl, member) = slice_and_member(st, actor, key).await?;
    actor.can_use_slice(sl.site_id, member)?;
    let nodes = named_nodes(st, names).await?;
    // A peer's nodes are its to give: it is asked first (`ops::peering`).
    let ours = crate::ops::peering::offer_nodes(st, &sl, &nodes).await?;
    crate::broker::admit_nodes(st, &sl, &ours).await?;
    let sl = st
        .store
        .add_slice_nodes(&actor.label(), crate::now(), &sl, &nodes)
        .await?;
    st.changed_slices(&[sl.id], nodes.iter().map(|(_, h)| h));
    Ok(sl)
}

/// Lets the broker choose nodes for the slice: live nodes meeting every constraint, least loaded
/// first, spread as asked, never over-committing guarantees. A `Conflict` explains an impossible
/// request.
pub async fn select_nodes(
    st: &AppState,
    actor: &Actor,
    key: &str,
    req: &SelectRequest,
) -> OpResult<SelectResult> {
    let (sl, member) = slice_and_member(st, actor, key).await?;
    actor.can_use_slice(sl.site_id, member)?;
    let sel = req
        .select
        .selection()
        .map_err(|e| OpError::invalid("select", e.to_string()))?;
    let now = crate::now();
    let candidates = st.store.placement_candidates(sl.id, now).await?;
    // The slice-wide guarantee; node-specific overrides are checked again by admission below.
    let reserve = st.store.slice_reservation(sl.id, 0).await?;
    let chosen =
        select(&sel, reserve, &candidates).map_err(|e| OpError::Conflict(e.to_string()))?;
    let nodes: Vec<(i64, String)> = chosen
        .iter()
        .filter_map(|id| candidates.iter().find(|c| c.node_id == *id))
        .map(|c| (c.node_id, c.hostname.clone()))
        .collect();
    let ours = crate::ops::peering::offer_nodes(st, &sl, &nodes).await?;
    crate::broker::admit_nodes(st, &sl, &ours).await?;
    let slice = st
        .store
        .add_slice_nodes(&actor.label(), now, &sl, &nodes)
        .await?;
    st.changed_slices(&[sl.id], nodes.iter().map(|(_, h)| h));
    Ok(SelectResult {
        slice,
        added: nodes.into_iter().map(|(_, h)| h).collect(),
    })
}

/// Removes a node (id or hostname) from the slice; `NotFound` if it is not in the slice.
pub async fn remove_node(st: &AppState, actor: &Actor, key: &str, node: &str) -> OpResult<Slice> {
    let (sl, member) = slice_and_member(st, actor, key).await?;
    actor.can_use_slice(sl.site_id, member)?;
    let n = st.store.node(node).await?;
    let sl = st
        .store
        .remove_slice_node(&actor.label(), crate::now(), &sl, (n.id, &n.hostname))
        .await?;
    st.changed_slices(&[sl.id], [&n.hostname]);
    if n.authority.is_some() {
        // The peer learns at once that the slice left its node.
        st.peering_kick.notify_one();
    }
    Ok(sl)
}

/// Adds persons (ids or emails): by the slice's site PIs and admins.
pub async fn add_persons(
    st: &AppState,
    actor: &Actor,
    key: &str,
    names: &[String],
) -> OpResult<Slice> {
    let (sl, _) = slice_and_member(st, actor, key).await?;
    actor.can_admin_slice(sl.site_id)?;
    let persons = named_persons(st, names).await?;
    let sl = st
        .store
        .add_slice_persons(&actor.label(), crate::now(), &sl, &persons)
        .await?;
    st.changed_slices(&[sl.id], &sl.nodes);
    Ok(sl)
}

/// Removes a person (id or email) from the slice: its PIs, admins, or the person itself leaving.
/// `NotFound` if the person is not in the slice.
pub async fn remove_person(
    st: &AppState,
    actor: &Actor,
    key: &str,
    person: &str,
) -> OpResult<Slice> {
    let (sl, _) = slice_and_member(st, actor, key).await?;
    let p = st.store.person(person).await?;
    if actor.person_id() != Some(p.person.id) {
        actor.can_admin_slice(sl.site_id)?;
    }
    let sl = st
        .store
        .remove_slice_person(
            &actor.label(),
            crate::now(),
            &sl,
            (p.person.id, &p.person.email),
        )
        .await?;
    st.changed_slices(&[sl.id], &sl.nodes);
    Ok(sl)
}

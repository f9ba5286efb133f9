//! central's operations: every write of the registry, written once and called by every front
//! end (the JSON API in `crate::api`, the web forms in `slicelab_web`).
//!
//! Each write is, in this order:
//! 1. policy: `slicelab_model::policy` decides whether the actor may;
//! 2. validation: `slicelab_model` checks the values (and the broker admits guarantees);
//! 3. one store transaction, which appends the write's event to the audit log;
//! 4. wake-ups: the long-polls of exactly the nodes the write concerns — naming the slices when
//!    only slices changed (`AppState::changed_slices`: the desired-state index re-reads just
//!    those), else `AppState::changed_nodes` — or of every node for registry-wide changes
//!    (`AppState::changed`: sites, persons, keys).
//!
//! Operations take the actor (`slicelab_model::Actor`, the authenticated person), typed inputs
//! (model types) and return model types or an [`OpError`]. Front ends only authenticate, parse
//! their input format and present the result. Reads the front ends share live in
//! `crate::queries`.

pub mod blobs;
pub mod captures;
pub mod defaults;
mod error;
pub mod images;
pub mod keys;
pub mod leases;
pub mod nodes;
pub mod peering;
pub mod peers;
pub mod persons;
pub mod session;
pub mod sites;
pub mod slices;
pub mod tags;
pub mod tokens;
#[cfg(test)]
mod wake_tests;

use slicelab_model::{Actor, Slice};
use slicelab_store::StoreError;

pub use error::{OpError, OpResult};

use crate::state::AppState;

/// Most names one request may list (nodes or persons added to a slice).
const MAX_NAMES: usize = 10_000;

/// The id of the person acting, or `Unauthorized`.
pub(crate) fn person_id(actor: &Actor) -> OpResult<i64> {
    actor
        .person_id()
        .ok_or_else(|| OpError::Unauthorized("log in first".into()))
}

/// The slice `key` (id or name) and whether the actor is one of its persons.
pub async fn slice_and_member(st: &AppState, actor: &Actor, key: &str) -> OpResult<(Slice, bool)> {
    let me = person_id(actor)?;
    let sl = st.store.slice(key).await?;
    let member = st.store.is_slice_member(sl.id, me).await?;
    Ok((sl, member))
}

/// A node named in a request body, as (id, hostname); an unknown one is invalid input of `field`.
pub(crate) async fn named_node(st: &AppState, field: &str, name: &str) -> OpResult<(i64, String)> {
    match st.store.node(name).await {
        Ok(n) => Ok((n.id, n.hostname)),
        Err(StoreError::NotFound(_)) => {
            Err(OpError::invalid(field, format!("unknown node {name:?}")))
        }
        Err(e) => Err(e.into()),
    }
}

fn check_count(names: &[String]) -> OpResult<()> {
    if names.len() > MAX_NAMES {
        return Err(OpError::invalid(
            "names",
            format!("at most {MAX_NAMES} names at once"),
        ));
    }
    Ok(())
}

/// Nodes named in a list (ids or hostnames), as (id, hostname).
pub(crate) async fn named_nodes(st: &AppState, names: &[String]) -> OpResult<Vec<(i64, String)>> {
    check_count(names)?;
    let found = st.store.nodes_named(names).await?;
    names
        .iter()
        .zip(found)
        .map(|(n, f)| f.ok_or_else(|| OpError::invalid("names", format!("unknown node {n:?}"))))
        .collect()
}

/// Persons named in a list (ids or emails), as (id, email).
pub(crate) async fn named_persons(st: &AppState, names: &[String]) -> OpResult<Vec<(i64, String)>> {
    check_count(names)?;
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        match st.store.person(n).await {
            Ok(p) => out.push((p.person.id, p.person.email)),
            Err(StoreError::NotFound(_)) => {
                return Err(OpError::invalid(
                    "names",
                    format!("there is no person {n:?}"),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Site `login_base`s (or ids) to ids, sorted and deduplicated; an unknown one is invalid input.
pub(crate) async fn named_sites(st: &AppState, sites: &[String]) -> OpResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(sites.len());
    for s in sites {
        match st.store.site(s).await {
            Ok(site) => ids.push(site.id),
            Err(StoreError::NotFound(_)) => {
                return Err(OpError::invalid("sites", format!("unknown site {s:?}")))
            }
            Err(e) => return Err(e.into()),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

//! Persons: created by admins and PIs (for their sites), changed by themselves, their site PIs
//! and admins. Persons' roles, sites and keys reach every node where they have slices, so a
//! change wakes all nodes; creation wakes none (a new person is in no slice yet).

use std::collections::BTreeSet;

use slicelab_model::{Actor, Person, PersonCreate, PersonUpdate, Role};
use slicelab_store::PersonRecord;

use crate::auth::hash_password;
use crate::ops::{named_sites, person_id, OpError, OpResult};
use crate::state::AppState;

/// The person `key` (id or email), if the actor may see it.
pub(crate) async fn visible(st: &AppState, actor: &Actor, key: &str) -> OpResult<PersonRecord> {
    person_id(actor)?;
    let rec = st.store.person(key).await?;
    actor.can_see_person(rec.person.id, &rec.site_ids)?;
    Ok(rec)
}

pub async fn create(st: &AppState, actor: &Actor, c: &PersonCreate) -> OpResult<Person> {
    person_id(actor)?;
    c.validate()?;
    let ids = named_sites(st, &c.sites).await?;
    actor.can_grant(&c.roles, &ids)?;
    let hash = match &c.password {
        Some(p) => Some(hash_password(p.clone()).await?),
        None => None,
    };
    Ok(st
        .store
        .create_person(&actor.label(), crate::now(), c, hash, &ids)
        .await?)
}

/// The sites whose grants a change of roles or sites touches: every site joined or left, and
/// with new roles every site the person will be at.
fn touched_sites(rec: &PersonRecord, u: &PersonUpdate, new_sites: Option<&[i64]>) -> Vec<i64> {
    let old: BTreeSet<i64> = rec.site_ids.iter().copied().collect();
    let new: BTreeSet<i64> = new_sites.unwrap_or(&rec.site_ids).iter().copied().collect();
    let mut touched: Vec<i64> = old.symmetric_difference(&new).copied().collect();
    if u.roles.is_some() {
        touched.extend(new.iter().copied());
    }
    touched.sort_unstable();
    touched.dedup();
    touched
}

pub async fn update(st: &AppState, actor: &Actor, key: &str, u: &PersonUpdate) -> OpResult<Person> {
    let rec = visible(st, actor, key).await?;
    let target = &rec.person;
    actor.can_manage_person(target.id, &rec.site_ids, target.has_role(Role::Admin))?;
    u.validate()?;
    let is_self = actor.person_id() == Some(target.id);
    if u.password.is_some() && !is_self && !actor.is_admin() {
        return Err(OpError::Forbidden(
            "only the person itself and admins may set its password".into(),
        ));
    }
    if u.enabled.is_some() && is_self && !actor.is_admin() {
        return Err(OpError::Forbidden(
            "you cannot enable or disable yourself".into(),
        ));
    }
    let new_sites = match &u.sites {
        Some(s) => Some(named_sites(st, s).await?),
        None => None,
    };
    if u.roles.is_some() || new_sites.is_some() {
        // Granting: every role given and every site joined or left must be the actor's to grant.
        let roles = u.roles.clone().unwrap_or_else(|| target.roles.clone());
        actor.can_grant(&roles, &touched_sites(&rec, u, new_sites.as_deref()))?;
    }
    let hash = match &u.password {
        Some(p) => Some(hash_password(p.clone()).await?),
        None => None,
    };
    let p = st
        .store
        .update_person(
            &actor.label(),
            crate::now(),
            &rec,
            u,
            hash,
            new_sites.as_deref(),
        )
        .await?;
    st.changed();
    Ok(p)
}

/// Deletes a person: admins, and the person's site PIs unless it is an admin.
pub async fn remove(st: &AppState, actor: &Actor, key: &str) -> OpResult<()> {
    let rec = visible(st, actor, key).await?;
    let is_pi = rec.site_ids.iter().any(|s| actor.is_pi_of(*s));
    if !(actor.is_admin() || (is_pi && !rec.person.has_role(Role::Admin))) {
        return Err(OpError::Forbidden(
            "only admins and the person's site PIs may delete a person".into(),
        ));
    }
    st.store
        .delete_person(&actor.label(), crate::now(), &rec)
        .await?;
    st.changed();
    Ok(())
}

//! SSH keys of persons: added and deleted by the person itself (and admins). Keys reach every
//! node where the person has a slice, so a change wakes all nodes.

use slicelab_model::{ssh_key, Actor, Key};

use crate::ops::{persons::visible, OpResult};
use crate::state::AppState;

/// Adds a key (stored in its normalised OpenSSH form) to the person `person` (id or email).
pub async fn add(st: &AppState, actor: &Actor, person: &str, key: &str) -> OpResult<Key> {
    let rec = visible(st, actor, person).await?;
    actor.can_manage_keys(rec.person.id)?;
    let key = ssh_key::parse(key)?;
    let stored = st
        .store
        .add_key(&actor.label(), crate::now(), &rec, &key.to_openssh())
        .await?;
    st.changed();
    Ok(stored)
}

pub async fn remove(st: &AppState, actor: &Actor, id: i64) -> OpResult<()> {
    let key = st.store.key(id).await?;
    actor.can_manage_keys(key.person_id)?;
    st.store
        .delete_key(&actor.label(), crate::now(), &key)
        .await?;
    st.changed();
    Ok(())
}

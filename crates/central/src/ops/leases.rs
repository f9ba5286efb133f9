//! Leases of reservable nodes: during the window only the leasing slice's sliver runs there.
//! A lease concerns its node only, so only that node is woken.

use slicelab_model::{Actor, Lease, LeaseCreate};

use crate::ops::{slice_and_member, OpError, OpResult};
use crate::state::AppState;

/// Reserves a reservable node for a slice: by the slice's persons, its site PIs and admins.
pub async fn create(st: &AppState, actor: &Actor, c: &LeaseCreate) -> OpResult<Lease> {
    let (slice, member) = slice_and_member(st, actor, &c.slice).await?;
    actor.can_use_slice(slice.site_id, member)?;
    let node = st.store.node(&c.node).await?;
    if !node.reservable {
        return Err(OpError::invalid(
            "node",
            format!("{} is not reservable", node.hostname),
        ));
    }
    let now = crate::now();
    c.validate(now)?;
    let lease = st
        .store
        .create_lease(&actor.label(), now, &slice, &node, c.start, c.end)
        .await?;
    st.changed_nodes([&node.hostname]);
    Ok(lease)
}

pub async fn remove(st: &AppState, actor: &Actor, id: i64) -> OpResult<()> {
    let lease = st.store.lease(id).await?;
    let (slice, member) = slice_and_member(st, actor, &lease.slice).await?;
    actor.can_use_slice(slice.site_id, member)?;
    st.store
        .delete_lease(&actor.label(), crate::now(), &lease, &slice)
        .await?;
    st.changed_nodes([&lease.node]);
    Ok(())
}

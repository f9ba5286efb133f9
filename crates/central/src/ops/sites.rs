//! Sites: created and deleted by admins, changed by admins and the site's PIs. A site's change
//! may concern every node (its slices' persons, its enabled flag), so it wakes all of them.

use slicelab_model::{Actor, Site, SiteCreate, SiteUpdate};

use crate::ops::OpResult;
use crate::state::AppState;

pub async fn create(st: &AppState, actor: &Actor, c: &SiteCreate) -> OpResult<Site> {
    actor.require_admin("create sites")?;
    c.validate()?;
    // A new site has no slices nor nodes yet: no node to wake.
    Ok(st
        .store
        .create_site(&actor.label(), crate::now(), c)
        .await?)
}

/// Changes a site; `max_slices`, `image_quota_mb` and `enabled` are for admins only (one
/// transaction, one `site.update` event whose detail is the change).
pub async fn update(st: &AppState, actor: &Actor, key: &str, u: &SiteUpdate) -> OpResult<Site> {
    let s = st.store.site(key).await?;
    actor.can_update_site(s.id, u.has_admin_fields())?;
    u.validate()?;
    let s = st
        .store
        .update_site(&actor.label(), crate::now(), &s, u)
        .await?;
    st.changed();
    Ok(s)
}

pub async fn remove(st: &AppState, actor: &Actor, key: &str) -> OpResult<()> {
    actor.require_admin("delete sites")?;
    let s = st.store.site(key).await?;
    st.store
        .delete_site(&actor.label(), crate::now(), &s)
        .await?;
    st.changed();
    Ok(())
}

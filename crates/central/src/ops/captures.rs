//! Captures of a sliver's packets (`slicelab capture`): central decides who may and records
//! that they asked; the node checks the login again, records the packets on the host side of
//! the sliver's interface and reports what it captured (an action in its report). No node is
//! woken: nothing in any node's desired state changes.

use serde_json::json;
use slicelab_model::capture::{CaptureCreate, CaptureRequest, CaptureTicket, CaptureVia};
use slicelab_model::Actor;
use slicelab_store::StoreError;

use crate::ops::{slice_and_member, OpError, OpResult};
use crate::state::AppState;

/// Allows (or refuses) a capture of `slice`'s sliver on `c.node`: the slice's persons, the PIs
/// and techs of the node's site, admins.
pub async fn authorize(
    st: &AppState,
    actor: &Actor,
    slice: &str,
    c: &CaptureCreate,
) -> OpResult<CaptureTicket> {
    let (slice, member) = slice_and_member(st, actor, slice).await?;
    let node = match st.store.node(&c.node).await {
        Ok(n) => n,
        Err(StoreError::NotFound(_)) => {
            return Err(OpError::invalid(
                "node",
                format!("unknown node {:?}", c.node),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    actor.can_capture(member, node.site_id)?;
    let limits = c.request.validate()?;
    if !slice.nodes.contains(&node.hostname) {
        return Err(OpError::Conflict(format!(
            "slice {} has no sliver on {} (add the node to the slice first)",
            slice.name, node.hostname
        )));
    }
    let via = if member {
        CaptureVia::Slice
    } else {
        CaptureVia::SiteAdmin
    };
    let request = CaptureRequest {
        filter: (!limits.filter.is_empty()).then(|| limits.filter.clone()),
        duration_s: u32::try_from(limits.duration.as_secs()).ok(),
        packets: c.request.packets,
        snaplen: Some(limits.snaplen),
    };
    st.store
        .record_capture_request(
            &actor.label(),
            crate::now(),
            &slice,
            &node,
            json!({
                "filter": limits.filter,
                "duration_s": limits.duration.as_secs(),
                "packets": c.request.packets,
                "via": via,
            }),
        )
        .await?;
    Ok(CaptureTicket {
        ssh_user: match via {
            CaptureVia::Slice => slice.name.clone(),
            CaptureVia::SiteAdmin => slicelab_model::names::RESERVED_SLICE_NAME.to_string(),
        },
        slice: slice.name,
        node: node.hostname,
        via,
        request,
    })
}

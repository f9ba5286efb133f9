//! Captures of slivers' packets: central only authorises them (the node records the packets
//! and reports what it captured, `reports`); what it stores is the audit trail.

use serde_json::Value;
use slicelab_model::{Node, Slice};

use crate::events::NewEvent;
use crate::{Result, Store};

impl Store {
    /// Records that `actor` was allowed to capture `slice`'s sliver on `node` (event
    /// `sliver.capture_request` on the slice, with the node, the filter and the bounds).
    pub async fn record_capture_request(
        &self,
        actor: &str,
        now: i64,
        slice: &Slice,
        node: &Node,
        mut detail: Value,
    ) -> Result<()> {
        if let Value::Object(m) = &mut detail {
            m.insert("node".into(), Value::String(node.hostname.clone()));
        }
        let mut w = self.write().await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "sliver.capture_request",
                object_type: "slice",
                object_id: slice.id,
                object_name: &slice.name,
                site_id: Some(slice.site_id),
                detail,
            },
        )
        .await?;
        w.commit().await
    }
}

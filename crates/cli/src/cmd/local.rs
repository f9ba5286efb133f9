//! Commands that work on this machine's node manager state, without central: `node cleanup`
//! (remove what a crashed or uninstalled node manager left).

use anyhow::{Context, Result};

use super::daemons::node_names;
use crate::args::NodeCleanupArgs;
use crate::output::print;

pub(crate) async fn node_cleanup(a: NodeCleanupArgs) -> Result<()> {
    let names = node_names(&a.names);
    let state_dir = a.state_dir.clone();
    let r =
        tokio::task::spawn_blocking(move || slicelab_node::cleanup(&state_dir, &names, a.purge))
            .await
            .context("cleanup task")??;
    let mut text = format!(
        "Cleaned up: {} processes, {} cgroups, {} veths, {} nft rules",
        r.processes, r.cgroups, r.veths, r.nft_rules
    );
    if r.nft_table {
        text.push_str(", the nft table");
    }
    if r.gateway_if {
        text.push_str(", the gateway interface");
    }
    if r.site_cap {
        text.push_str(", the bandwidth cap on the uplink");
    }
    if a.purge {
        text.push_str(&format!(", {} sliver directories", r.sliver_dirs));
    }
    text.push_str(".\n");
    print(&text)
}

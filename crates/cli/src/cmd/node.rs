//! `slicelab node <subcommand>`: the registry's nodes (add, list, show, change, delete, rekey,
//! slivers). The node manager itself (`slicelab node` with flags) is in `daemons`, and
//! `node cleanup`, which works on this machine only, in `local`.

use anyhow::Result;
use slicelab_client::{Client, NodeFilter};
use slicelab_model::{BootState, NodeCreate, NodeUpdate, NodeWithKey};

use super::flags::nothing_to_change;
use crate::args::{ListArgs, NodeSub, Output};
use crate::output::{emit, emit_list, emit_page};
use crate::paging::fetch;
use crate::render;
use crate::session::session;
use crate::timefmt;

/// What `node add` answers: the node with its key, and the join token with its command.
#[derive(Debug, serde::Serialize)]
struct NodeAdded {
    #[serde(flatten)]
    node: NodeWithKey,
    join: super::node_join::JoinCommand,
}

/// What `node add` and `node rekey` print: the node, its one-time key, and how to run it.
pub fn node_key_text(nk: &NodeWithKey, central: &str, now: i64) -> String {
    format!(
        "{}\nNode key (shown only this once; central keeps only its hash; a join replaces it):\n\n    {key}\n\n\
         Or run the node manager on {host} by hand with:\n\n    \
         slicelab node --central {central} --key {key}\n\n\
         (or put the key in a file readable only by root and use --key-file FILE)\n",
        render::node(&nk.node, now),
        key = nk.node_key,
        host = nk.node.hostname,
    )
}

pub(crate) async fn node(out: Output, c: NodeSub) -> Result<()> {
    let c = match c {
        NodeSub::Cleanup(a) => return super::local::node_cleanup(a).await,
        NodeSub::Join(a) => return super::node_join::join(out, a).await,
        NodeSub::Doctor(a) => return super::node_join::doctor(out, a).await,
        c => c,
    };
    let s = session()?;
    let trust = &s.trust;
    let c_ = &s.client;
    let now = timefmt::now();
    match c {
        NodeSub::Add {
            hostname,
            site,
            cpu,
            mem_mb,
            disk_gb,
            region,
            boot_state,
            reservable,
            join_ttl,
        } => {
            let body = NodeCreate {
                hostname,
                site,
                boot_state: boot_state.unwrap_or(BootState::Boot),
                cpu_cores: cpu.unwrap_or(1),
                mem_mb: mem_mb.unwrap_or(1024),
                disk_gb: disk_gb.unwrap_or(10),
                region: region.unwrap_or_default(),
                reservable,
            };
            let nk = c_.create_node(&body).await?;
            let token = c_.join_token(&nk.node.hostname, join_ttl).await?;
            let join = super::node_join::join_command(token, &c_.bases(), trust);
            let added = NodeAdded { node: nk, join };
            emit(out, &added, |a| {
                format!(
                    "{}\n{}",
                    super::node_join::join_text(&a.join, now),
                    node_key_text(&a.node, c_.base(), now)
                )
            })
        }
        NodeSub::JoinToken { node, ttl } => {
            let token = c_.join_token(&node, ttl).await?;
            let join = super::node_join::join_command(token, &c_.bases(), trust);
            emit(out, &join, |j| super::node_join::join_text(j, now))
        }
        NodeSub::List {
            site,
            boot_state,
            region,
            list,
        } => {
            let f = NodeFilter {
                site,
                boot_state,
                region,
                ..Default::default()
            };
            list_nodes(out, c_, f, &list, now).await
        }
        NodeSub::Show { node } => emit(out, &c_.node(&node).await?, |n| render::node(n, now)),
        NodeSub::Update {
            node,
            boot_state,
            cpu,
            mem_mb,
            disk_gb,
            region,
            reservable,
            bwlimit,
        } => {
            let body = NodeUpdate {
                boot_state,
                cpu_cores: cpu,
                mem_mb,
                disk_gb,
                region,
                reservable,
                bwlimit: bwlimit.map(|b| b.0),
            };
            update_node(out, c_, &node, &body, now).await
        }
        NodeSub::Delete { node } => {
            c_.delete_node(&node).await?;
            eprintln!("Deleted node {node}.");
            Ok(())
        }
        NodeSub::Rekey { node } => show_key(out, &c_.rekey_node(&node).await?, c_.base(), now),
        NodeSub::Slivers { node } => emit_list(out, &c_.node_slivers(&node).await?, |l| {
            render::slivers(l, now)
        }),
        NodeSub::Cleanup(_) | NodeSub::Join(_) | NodeSub::Doctor(_) => {
            unreachable!("handled above")
        }
    }
}

/// Prints a node with its new key (`node add`, `node rekey`).
fn show_key(out: Output, nk: &NodeWithKey, central: &str, now: i64) -> Result<()> {
    emit(out, nk, |nk| node_key_text(nk, central, now))
}

/// `node list`: `filter` names the nodes, `list` which part of the listing to show.
async fn list_nodes(
    out: Output,
    c_: &Client,
    filter: NodeFilter,
    list: &ListArgs,
    now: i64,
) -> Result<()> {
    let page = fetch(list, |paging| {
        let f = NodeFilter {
            paging,
            ..filter.clone()
        };
        async move { c_.nodes(&f).await }
    })
    .await?;
    emit_page(out, &page, |n| render::nodes(n, now))
}

async fn update_node(
    out: Output,
    c_: &Client,
    node: &str,
    body: &NodeUpdate,
    now: i64,
) -> Result<()> {
    if body.boot_state.is_none()
        && body.cpu_cores.is_none()
        && body.mem_mb.is_none()
        && body.disk_gb.is_none()
        && body.region.is_none()
        && body.reservable.is_none()
        && body.bwlimit.is_none()
    {
        return Err(nothing_to_change(
            "--boot-state, --cpu, --mem-mb, --disk-gb, --region, --reservable, --bwlimit",
        ));
    }
    emit(out, &c_.update_node(node, body).await?, |n| {
        render::node(n, now)
    })
}

//! `up`'s work between cleaning up and reporting, in named phases: the network, central, the
//! demo registry, the nodes, the marked host blocks, then waiting until every node runs the demo
//! slice. Each phase records what it started in the state file first, so a failure part-way
//! leaves nothing `teardown` cannot find.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::central::start_central;
use super::hosts::{set_block, HOSTS, KNOWN_HOSTS};
use super::network::setup_network;
use super::nodes::{start_nodes, wait_ready, Started};
use super::progress::Progress;
use super::seed::seed_registry;
use super::{Testbed, DEMO_SLICE};
use crate::args::UpArgs;

/// What `up` made and tells its user about.
pub(super) struct Demo {
    pub(super) admin_email: String,
    pub(super) admin_password: String,
    pub(super) pi_email: String,
    pub(super) user_email: String,
    pub(super) person_password: String,
    pub(super) user_key: PathBuf,
    pub(super) user_key_generated: bool,
    pub(super) pi_token: String,
    /// `demo_slice@<first node>`: where to ssh to.
    pub(super) ssh_target: String,
}

/// Starts the testbed `a` describes, recording it in `tb` as it goes.
pub(super) async fn bring_up(a: &UpArgs, tb: &mut Testbed) -> Result<Demo> {
    let exe = std::env::current_exe().context("finding the slicelab binary")?;
    let mut progress = Progress::new();
    progress.set("network: bridge and namespaces...");
    let n = a.nodes;
    tokio::task::spawn_blocking(move || setup_network(n))
        .await
        .context("network task")??;

    progress.set("central: starting...");
    let mut central = start_central(&exe, a, tb).await?;

    progress.set("central: demo sites, persons, nodes and slice...");
    let people = seed_registry(a, tb, &mut central).await?;
    let started = start_nodes(&exe, a, tb, (&central, &people.pi), &mut progress).await?;
    write_hosts(&started)?;
    people
        .pi
        .add_slice_nodes(DEMO_SLICE, &started.hostnames)
        .await
        .context("adding the nodes to the demo slice")?;

    wait_ready(a, &people.pi, &mut progress).await?;
    progress.done(&format!("nodes: {0}/{0} running the demo slice", a.nodes));
    Ok(Demo {
        admin_email: central.admin_email,
        admin_password: central.admin_password,
        pi_email: people.pi_email,
        user_email: people.user_email,
        person_password: people.person_password,
        user_key: people.user_key,
        user_key_generated: people.user_key_generated,
        pi_token: people.pi_token,
        ssh_target: format!(
            "{DEMO_SLICE}@{}",
            started.hostnames.first().cloned().unwrap_or_default()
        ),
    })
}

/// The nodes' names in `/etc/hosts`, their host keys in known_hosts.
fn write_hosts(started: &Started) -> Result<()> {
    set_block(HOSTS, &started.hosts)?;
    set_block(KNOWN_HOSTS, &started.known)?;
    Ok(())
}

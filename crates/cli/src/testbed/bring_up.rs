//! `up`'s work between cleaning up and reporting, in named phases: the network, central, the
//! demo registry, the nodes, the marked host blocks, then waiting until every node runs the demo
//! slice. Processes are recorded in the state file as they start and everything else is named
//! from the testbed's prefixes, so a failure part-way leaves nothing `teardown` cannot find.

use anyhow::{Context, Result};

use super::central::{start_central, Account};
use super::debian::{offer_debian, DEBIAN_IMAGE};
use super::hosts::{set_block, HOSTS, KNOWN_HOSTS};
use super::network::setup_network;
use super::nodes::{start_nodes, wait_ready, Started};
use super::progress::Progress;
use super::seed::{seed_registry, People};
use super::{Testbed, DEMO_SLICE};
use crate::args::UpArgs;

/// What `up` made and tells its user about.
pub(super) struct Demo {
    pub(super) admin: Account,
    pub(super) people: People,
    /// `demo_slice@<first node>`: where to ssh to.
    pub(super) ssh_target: String,
    /// The Debian image: `Ok(true)` offered, `Ok(false)` not asked for, `Err` why not.
    pub(super) debian: Result<bool, String>,
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
    let (pi, people) = seed_registry(a, tb, &mut central).await?;
    let started = start_nodes(&exe, a, tb, (&central, &pi), &mut progress).await?;
    write_hosts(&started)?;
    pi.add_slice_nodes(DEMO_SLICE, &started.hostnames)
        .await
        .context("adding the nodes to the demo slice")?;

    wait_ready(a, &pi, &mut progress).await?;
    progress.done(&format!("nodes: {0}/{0} running the demo slice", a.nodes));
    let debian = if a.no_debian_image {
        Ok(false)
    } else {
        match offer_debian(&central.admin, &mut progress).await {
            None => {
                progress.done(&format!("image: {DEBIAN_IMAGE} published"));
                Ok(true)
            }
            Some(why) => {
                progress.done(&format!("image: no Debian image ({why})"));
                Err(why)
            }
        }
    };
    Ok(Demo {
        debian,
        admin: central.admin_account,
        people,
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

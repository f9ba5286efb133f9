//! `slicelab up` / `slicelab down`: a whole testbed on one machine.
//!
//! Layout (every name derives from a fixed prefix, so `down` — or the next `up` — finds and
//! removes what a crashed run left, even without the state file):
//! - a host bridge `slup0` with 10.99.0.1/24, the only host address the testbed uses; central
//!   listens there (a separate `slicelab central` process on a SQLite file in the testbed dir);
//! - node *i* is a network namespace `slup-n<i>` with a veth (`slup-n<i>` on the host, enslaved
//!   to the bridge; `eth0` inside) at 10.99.0.(10+i), default route via the bridge address; its
//!   node manager (`slicelab node`) runs inside that namespace with its own state dir
//!   `<dir>/n<i>`, cgroup parent `slicelab-up-n<i>` and SSH gateway on port 22; its gateway
//!   interface, nft table and sliver subnet are the defaults, which is fine because they live in
//!   the node's namespace;
//! - a marked block in `/etc/hosts` (node hostnames) and in `/etc/ssh/ssh_known_hosts` (the
//!   nodes' host keys, kept in `<dir>/keys` across runs), so `ssh demo_slice@node1.demo.slicelab.test`
//!   works without prompts;
//! - `<dir>/testbed.json`: what runs (pids, nodes), for `down` and `slicelab exec`.
//!
//! No traffic leaves the machine: nothing routes the bridge's subnet anywhere else.
//!
//! Rooms: the names (here); `state` (testbed.json); `process` (spawning in a namespace,
//! stopping, reaping); `network` (bridge and namespaces); `keys` (SSH keys, passwords); `hosts`
//! (the marked blocks); `progress`. The commands: `up`, whose phases are in `bring_up` (central
//! in `central`, the demo registry in `seed`, the nodes in `nodes`) and its report in
//! `summary`; `down`, with the `teardown` both use.

mod bring_up;
mod central;
pub mod debian;
mod down;
mod hosts;
mod keys;
mod network;
mod nodes;
mod process;
mod progress;
mod seed;
mod state;
mod summary;
mod up;

use std::net::Ipv4Addr;

use anyhow::{bail, Result};

pub use down::{down, teardown, DownReport};
pub use state::{Testbed, TestbedNode};
pub use up::up;

pub const BRIDGE: &str = "slup0";
pub const NS_PREFIX: &str = "slup-n";
pub const CGROUP_PREFIX: &str = "slicelab-up-n";
pub const DEMO_SLICE: &str = "demo_slice";
const DOMAIN: &str = "slicelab.test";
/// The demo service every sliver of the demo slice runs, reachable at node port 8080.
const DEMO_PORT: u16 = 8080;

pub fn host_addr() -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, 1)
}

pub fn node_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, 10 + i)
}

pub fn netns(i: u8) -> String {
    format!("{NS_PREFIX}{i}")
}

/// The login_base of demo site `k` (from 0): `demo`, `site2`, `site3`, ...
fn site_name(k: u8) -> String {
    if k == 0 {
        "demo".into()
    } else {
        format!("site{}", k + 1)
    }
}

fn require_root(what: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("`slicelab {what}` needs root (it creates network namespaces and cgroups): sudo slicelab {what}");
    }
    Ok(())
}

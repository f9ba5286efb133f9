//! The node manager: turns the slices central assigns to this node into slivers — isolated
//! containers with their own namespaces, cgroup, overlayfs root and network.
//!
//! Layout (pure core, thin shell):
//! - [`plan`](mod@plan): the reconciler's pure planner (desired vs. observed → actions);
//! - [`runtime`]: the `Runtime` trait, `LinuxRuntime` (real) and `FakeRuntime` (records calls);
//! - [`sandbox`]: the security boundary (launcher, sliver init, exec helper, caps, seccomp);
//! - [`cgroup`], [`net`], [`image`], [`disk`]: one concern each; [`names`]: how everything is named;
//! - `netlink`: a minimal synchronous netlink client (links, addresses, routes, HTB, nftables set
//!   elements and rules), so a sliver's start and destroy spawn no `ip`/`nft`/`tc` process;
//! - [`sitecap`]: the site's bandwidth cap (`bwlimit`) on the uplink, shared by `net_share`;
//! - [`accounting`]: usage samples, their on-disk queue to central, and bwmon's daily egress caps;
//!   `host`: the machine's own figures from `/proc` (memory);
//! - [`daemon`]: the long-poll / reconcile / report loop; [`doctor`]: what a machine lacks to be a node;
//! - [`ssh`]: the node side of the SSH gateway (`ssh SLICE@NODE`); [`traffic`]: its
//!   `slicelab-traffic` service (measured runs between slivers);
//! - [`capture`]: packet capture on a sliver's veth (libpcap, kernel BPF filter, pcapng stream).
//!
//! Binaries hosting the node manager must call [`maybe_run_sliver_init`] first thing in `main`,
//! before any thread or tokio runtime exists.

pub mod accounting;
pub mod actions;
pub mod audit;
pub mod bench;
pub mod capture;
pub mod cgroup;
mod cmd;
pub mod daemon;
pub mod disk;
pub mod doctor;
mod error;
pub mod holds;
mod host;
pub mod idmap;
pub mod image;
mod launchers;
pub mod logring;
pub mod names;
pub mod net;
mod netlink;
pub mod plan;
mod reports;
pub mod runtime;
pub mod sandbox;
pub mod services;
pub mod shift;
pub mod site_admin;
pub mod sitecap;
pub mod ssh;
pub mod state;
mod sync;
pub mod traffic;
mod veth;
mod warm;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub use bench::{bench_sliver, BenchReport};
pub use daemon::{reconcile, run, statuses, Config};
pub use error::NodeError;
pub use image::import_image;
pub use names::NodeNames;
pub use plan::{plan, Action, ObservedSliver};
pub use runtime::{FakeRuntime, LinuxRuntime, Runtime, RuntimeConfig};
pub use sandbox::maybe_run_sliver_init;
pub use ssh::NodeAccess;

/// What `cleanup` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub processes: usize,
    pub cgroups: usize,
    pub veths: usize,
    pub nft_rules: usize,
    pub gateway_if: bool,
    pub nft_table: bool,
    /// The site cap's qdisc on the uplink (see `sitecap`).
    pub site_cap: bool,
    /// Sliver directories (writable layers) deleted; only with `purge`.
    pub sliver_dirs: usize,
}

/// `slicelab node cleanup`: removes every kernel object of this node instance found by the naming
/// scheme — sliver processes (by cgroup), cgroups, veths, nft rules and table, gateway interface,
/// the site cap's qdisc on the uplink (recorded in the state dir) — even with
/// no node manager running and no state files. Slivers' writable layers are kept unless `purge`.
pub fn cleanup(
    state_dir: &Path,
    names: &NodeNames,
    purge: bool,
) -> Result<CleanupReport, NodeError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(NodeError::NotRoot);
    }
    names.check()?;
    let mut report = CleanupReport::default();
    let cg = cgroup::Cgroups::detect(&names.cgroup_parent)?;
    let mut slices = cg.list();
    slices.extend(state::list_slices(state_dir)?);
    slices.sort();
    slices.dedup();
    for s in &slices {
        report.processes += cg.pids(s).len();
        // SIGKILL of a sliver's PID 1 takes its whole PID namespace (and so its mounts and netns)
        // with it; exec helpers in the host namespace are in the cgroup too.
        cg.kill_all(s, Duration::from_secs(5));
        if cg.dirs(s).iter().any(|d| d.exists()) {
            cg.remove(s)?;
            report.cgroups += 1;
        }
        if let Ok(Some(mut rec)) = state::load(state_dir, s) {
            rec.init = None;
            let _ = state::save(state_dir, &rec);
        }
        // The quota filesystem of the writable layer is mounted on the host (see `disk`).
        disk::unmount(&names::sliver_dir(state_dir, s))?;
        if purge {
            let dir = names::sliver_dir(state_dir, s);
            if dir.exists() {
                runtime::remove_sliver_dir(&dir)?;
                report.sliver_dirs += 1;
            }
        }
    }
    // Destroyed slivers' directories whose removal a crash or exit interrupted, and what warm
    // slivers of a node manager that is gone left (their cgroups were emptied above).
    runtime::empty_trash(state_dir)?;
    warm::clear_leftovers(state_dir, &cg)?;
    let rules = net::count_rules(names);
    for v in net::list_veths(names) {
        // A killed sliver's netns is torn down asynchronously by the kernel, taking its veth
        // pair with it: one listed a moment ago may be gone by now, which is what we want.
        if let Err(e) = cmd::run("ip", &["link", "del", &v], None) {
            if net::link_exists(&v) {
                return Err(e);
            }
        }
        report.veths += 1;
    }
    report.gateway_if = net::link_exists(&names.gateway_if);
    report.nft_table = cmd::run("nft", &["list", "table", "inet", &names.nft_table], None).is_ok();
    if report.nft_table {
        report.nft_rules = rules;
    }
    net::teardown_node(names)?;
    report.site_cap = sitecap::cleanup(state_dir)?;
    cg.remove_parent()?;
    Ok(report)
}

/// A command that runs `argv` inside the running sliver of `slice`, joined to its namespaces and
/// cgroup under the same confinement as its init (capabilities, `no_new_privs`, seccomp). Stdio is
/// inherited; spawn or `output()` it. For `slicelab exec` and the SSH gateway.
pub fn exec_in_sliver(
    cfg: &RuntimeConfig,
    slice: &str,
    argv: &[String],
) -> Result<Command, NodeError> {
    LinuxRuntime::open(cfg.clone())?.exec_command(slice, argv)
}

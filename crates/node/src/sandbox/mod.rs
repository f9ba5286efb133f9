//! The security boundary: what turns a process into a sliver. Small and reviewed on its own.
//!
//! A sliver is started by re-executing the current binary with [`INIT_ENV`] set (see
//! [`maybe_run_sliver_init`]): that *launcher* joins the sliver's cgroups, unshares the mount, PID,
//! UTS, IPC and network namespaces and forks the sliver's *init*, which builds the root filesystem
//! (overlayfs over the image), pivots into it, waits for the node manager to plug in the network,
//! confines itself (capabilities, `no_new_privs`, seccomp) and then supervises the initscript as
//! PID 1. The launcher exits at once, so the init outlives the node manager.

pub mod caps;
mod init;
pub mod seccomp;

pub use init::{maybe_run_sliver_init, ExecSpec, LaunchSpec, EXEC_ENV, INIT_ENV};

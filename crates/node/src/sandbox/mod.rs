//! The security boundary: what turns a process into a sliver. Small and reviewed on its own.
//!
//! A sliver is started by re-executing the current binary with [`INIT_ENV`] set (see
//! [`maybe_run_sliver_init`]): that *launcher* (`launch`) joins the sliver's cgroups, makes the
//! slice's user namespace ([`userns`]: root inside is an unprivileged host uid of the slice's own
//! range), mounts the overlay root over an idmapped view of the shared image, enters the user
//! namespace and unshares the mount, PID, UTS, IPC and network namespaces, and forks the sliver's
//! *init* (`init`), which finishes the root filesystem (`rootfs`), pivots into it, confines itself
//! ([`caps`], `no_new_privs`, [`seccomp`]), forks the initscript's first process — which waits for
//! the node manager to plug in the network ([`handshake`]) before it execs — and then supervises
//! the initscript as PID 1. The launcher exits at
//! once, so the init outlives the node manager. `exec` runs a command inside a running sliver
//! under the same confinement; for SSH sessions it is forked by the exec [`Spawner`], a process the
//! node starts once, instead of a re-execution per session.

pub mod caps;
mod exec;
pub mod handshake;
mod init;
mod launch;
mod rootfs;
pub mod seccomp;
pub mod service;
mod spawner;
pub mod userns;

pub use exec::{Builtin, ExecSpec, EXEC_ENV};
pub use launch::{maybe_run_sliver_init, Assignment, LaunchSpec, INIT_ENV};
pub use service::Service;
pub use spawner::{Running, Spawner, SPAWNER_ENV};

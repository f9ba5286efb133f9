//! The node's SSH gateway: `ssh -p PORT SLICE@NODE [CMD]` opens a shell (or runs `CMD`) inside
//! the slice's sliver on this node, and `scp`/`sftp` copy files to and from the sliver's root.
//!
//! * **Who gets in.** Public-key authentication only. The SSH user name is the slice name; the
//!   offered key must match one of [`SliverAccess::authorized_keys`] for that slice, looked up
//!   afresh at every attempt, so removing a person from the slice revokes access as soon as the
//!   node's desired state no longer lists their key. An unknown slice or a wrong key is refused;
//!   the client is sent a disconnect whose text says why (see [`auth`]).
//! * **What runs.** The gateway never enters a sliver itself: [`SliverAccess::program`] hands it a
//!   [`Program`] that runs inside the sliver — a [`std::process::Command`] the gateway spawns, or a
//!   [`StartProgram`] the node starts itself on the session's stdio (the node's exec spawner).
//!   The gateway wires its stdio (pipes, or a pseudo-terminal when the client asked for one); the
//!   program runs in a process group of its own (with a pty: a new session, the pty its
//!   controlling terminal), which the gateway kills when the channel closes or it shuts down.
//! * **Files.** The `sftp` subsystem (used by `sftp` and by OpenSSH ≥ 9's `scp`) is served in
//!   process under [`SliverAccess::root`], every path resolved with `openat2(RESOLVE_IN_ROOT)` so
//!   that neither `..` nor symlinks can leave the sliver (see the `sftp` module).
//!
//! * **The node's services.** `ssh site_admin@NODE` is the node's admin context for the PIs and
//!   techs of its site and for admins, and a slice's persons may ask for the subsystems the node
//!   offers (a packet capture, the traffic generator): see [`service`]. Both run what
//!   [`SliverAccess::service`] returns, never a shell of the node.
//!
//! Start it with [`start`] (returns a [`Gateway`] handle that knows its bound address — listen on
//! port 0 in tests) or [`serve`] (runs until a shutdown future completes).

pub mod auth;
mod channel;
mod error;
pub mod hostkey;
pub mod program;
mod pty;
mod server;
pub mod service;
mod service_run;
mod sftp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use auth::key_matches;
pub use error::GatewayError;
pub use program::{ExitFuture, Program, StartProgram, Started};
pub use pty::make_controlling_terminal;
pub use server::{serve, start, Gateway};
pub use service::{
    AuthorizedKey, Login, Service, ServiceFuture, ServiceIo, ServiceRequest, SITE_ADMIN,
};

/// What the gateway needs from the container runtime. The node crate implements it; tests use a
/// host directory.
pub trait SliverAccess: Send + Sync + 'static {
    /// The keys allowed to log in as `user`, with their persons: for a slice, its persons' keys
    /// (`None` if there is no such sliver here); for [`SITE_ADMIN`], the keys of the PIs and
    /// techs of the node's site and of the admins (`None`: the node offers no admin context).
    /// Called at every authentication attempt.
    fn authorized_keys(&self, user: &str) -> Option<Vec<AuthorizedKey>>;

    /// A command that, when spawned, runs `argv` (or the sliver's login shell when `None`) inside
    /// the sliver, with `env` added to its environment.
    ///
    /// The gateway sets stdin/stdout/stderr (pipes or a pty slave) and spawns it in a process
    /// group of its own (`process_group(0)`, so std can `posix_spawn` it); with a pty, it adds a
    /// `pre_exec` that calls `setsid()` and makes the pty its controlling terminal. The process it
    /// spawns must stay in that process group (the gateway kills the group when the SSH channel
    /// closes), must not let what it runs keep a controlling terminal it inherited from the
    /// gateway (without a pty it is still in the gateway's session), and must exit with the
    /// status of the program run in the sliver.
    /// For `ssh SLICE@NODE CMD` the gateway passes `["/bin/sh", "-c", CMD]`.
    fn command(
        &self,
        slice: &str,
        argv: Option<&[String]>,
        env: &[(String, String)],
    ) -> std::io::Result<std::process::Command>;

    /// The program a session runs for `argv` in the sliver: by default [`SliverAccess::command`]'s,
    /// spawned by the gateway. A node may start it itself ([`Program::Start`]), e.g. forked
    /// from a process it keeps ready, which costs less than spawning a new executable per session.
    fn program(
        &self,
        slice: &str,
        argv: Option<&[String]>,
        env: &[(String, String)],
    ) -> std::io::Result<Program> {
        self.command(slice, argv, env).map(Program::Command)
    }

    /// The host path of the sliver's root directory, for the `sftp` subsystem; `None` disables
    /// file copy for this slice. Files are created by the gateway's own user (root on a node),
    /// then given to [`SliverAccess::file_owner`].
    fn root(&self, _slice: &str) -> Option<PathBuf> {
        None
    }

    /// Host uid/gid that files and directories created over SFTP should belong to (the sliver's
    /// user as mapped on the host); `None` leaves them owned by the gateway's user.
    fn file_owner(&self, _slice: &str) -> Option<(u32, u32)> {
        None
    }

    /// Whether the node serves subsystem `name` (other than `sftp`) to `login`: asked when the
    /// client requests it, so that an unknown one is refused at once.
    fn offers(&self, _login: &Login, _name: &str) -> bool {
        false
    }

    /// The service for `request` of `login` (the admin context's shell and commands, and the
    /// subsystems of [`SliverAccess::offers`]).
    fn service(&self, _login: &Login, _request: ServiceRequest) -> Service {
        Service::Refused("this node offers no such service".into())
    }
}

/// How to run the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address to listen on; port 0 picks a free port (see [`Gateway::local_addr`]).
    pub listen: SocketAddr,
    /// The host's private key (OpenSSH format). Created as a new ed25519 key, mode 0600, if the
    /// file does not exist.
    pub host_key_path: PathBuf,
    /// Connections idle this long are closed.
    pub inactivity_timeout: Duration,
    /// How long a rejected authentication attempt takes (constant, against timing probes).
    pub auth_rejection_time: Duration,
}

impl GatewayConfig {
    pub fn new(listen: SocketAddr, host_key_path: impl Into<PathBuf>) -> Self {
        GatewayConfig {
            listen,
            host_key_path: host_key_path.into(),
            inactivity_timeout: Duration::from_secs(3600),
            auth_rejection_time: Duration::from_millis(200),
        }
    }
}

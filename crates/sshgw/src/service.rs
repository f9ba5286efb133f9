//! Who a connection is, and the node's own services: what the gateway runs besides a program in
//! a sliver.
//!
//! * `ssh SLICE@NODE` logs a person of the slice in ([`Login::Slice`]): a shell, a command or
//!   `sftp` inside the sliver, plus the subsystems the node offers to a slice's persons
//!   (`ssh -s SLICE@NODE slicelab-capture`, `slicelab-traffic`): [`SliverAccess::offers`].
//! * `ssh site_admin@NODE` logs a PI or tech of the node's site, or an admin, into the node's
//!   admin context ([`Login::SiteAdmin`], PlanetLab's `site_admin` account): its shell and its
//!   commands are a [`Service`] of the node, never a program in a sliver, and it has no `sftp`.
//!
//! [`SliverAccess::offers`]: crate::SliverAccess::offers

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// The SSH user name of the node's admin context. No slice can have this name
/// (`slicelab_model::SliceName` refuses it).
pub const SITE_ADMIN: &str = "site_admin";

/// One key that may log in as a user, and the person it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKey {
    /// The person's name at central (an email address).
    pub person: String,
    /// OpenSSH public key line (`algorithm base64 [comment]`).
    pub key: String,
}

/// An authenticated connection: who, and as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// `ssh SLICE@NODE`: a person of the slice.
    Slice { slice: String, person: String },
    /// `ssh site_admin@NODE`: a PI or tech of this node's site, or an admin.
    SiteAdmin { person: String },
}

impl Login {
    /// The person whose key opened the connection.
    pub fn person(&self) -> &str {
        match self {
            Login::Slice { person, .. } | Login::SiteAdmin { person } => person,
        }
    }
}

/// What a channel of a connection asked the node's services for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceRequest {
    /// A subsystem (`ssh -s USER@NODE NAME`) other than `sftp`.
    Subsystem(String),
    /// A command (`ssh site_admin@NODE CMD`); only for the admin context.
    Exec(String),
    /// An interactive shell; only for the admin context.
    Shell,
}

/// The channel's streams, as a service in the gateway's process sees them.
pub struct ServiceIo {
    /// What the client sends (ends at the client's EOF).
    pub input: Box<dyn AsyncRead + Send + Unpin>,
    /// The channel's data stream (what `ssh` prints on its stdout).
    pub output: Box<dyn AsyncWrite + Send + Unpin>,
    /// The channel's extended data (what `ssh` prints on its stderr).
    pub errors: Box<dyn AsyncWrite + Send + Unpin>,
    /// The client asked for a terminal: the service echoes what it reads and ends lines with CRLF.
    pub terminal: bool,
}

/// What a service returns: its exit status, sent to the client.
pub type ServiceFuture = Pin<Box<dyn Future<Output = u32> + Send>>;

/// How a service runs.
pub enum Service {
    /// In the gateway's process (e.g. a packet capture on the host side of a sliver's interface).
    /// Dropped (cancelled) when the client closes the channel or the gateway shuts down.
    InProcess(Box<dyn FnOnce(ServiceIo) -> ServiceFuture + Send>),
    /// A program wired like `ssh SLICE@NODE CMD` (pipes, its own session, killed with the
    /// channel), e.g. the traffic generator the node runs inside a sliver.
    Process(std::process::Command),
    /// Refused, with the reason the client is told (exit status 1).
    Refused(String),
}

//! A session's program, as the gateway starts it: a [`std::process::Command`] it spawns itself,
//! or a program the node starts for it ([`StartProgram`]), e.g. forked from a process the node
//! keeps ready instead of a new executable per session.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::process::ExitStatus;

/// How the gateway gets a session's program running.
pub enum Program {
    /// Spawned by the gateway: stdio set, in a process group of its own (or, with a pty, a new
    /// session with the pty as its controlling terminal).
    Command(std::process::Command),
    /// Started by the implementation of [`StartProgram`], given the session's stdio.
    Start(Box<dyn StartProgram>),
}

/// What an exited program reports: its wait status (`ExitStatus::from_raw` of `waitpid`'s).
pub type ExitFuture = Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send>>;

/// A program started for a session.
pub struct Started {
    /// Its pid, which is also its process group's id: the gateway kills the group when the
    /// session ends.
    pub pid: i32,
    /// Resolves when it has exited.
    pub exit: ExitFuture,
}

/// Starts a session's program with the session's stdio.
pub trait StartProgram: Send {
    /// Starts it with `stdio` (stdin, stdout, stderr: pipes, or the pty slave three times) in a
    /// process group of its own whose id is its pid, or, when `terminal`, in a new session with
    /// stdin as its controlling terminal. The descriptors stay the caller's (it closes them once
    /// this returns). Same contract as [`crate::SliverAccess::command`] otherwise: it exits with
    /// the status of the program run in the sliver.
    fn start(self: Box<Self>, stdio: [&OwnedFd; 3], terminal: bool) -> io::Result<Started>;
}

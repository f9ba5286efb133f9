//! The node's admin context: `ssh site_admin@NODE [COMMAND]` for the PIs and techs of the
//! node's site and for admins (PlanetLab's `site_admin` account). It lists every sliver with
//! its processes, usage, limits and flows, captures any sliver's packets, stops (and holds
//! stopped) or restarts a sliver, and reads the node manager's log. It has no way into a
//! slice's files or processes: no shell of the node, no command in a sliver, no sftp.
//!
//! Every command is an action ([`crate::actions`]): central logs it as an event in the name of
//! the person whose key opened the session.

pub mod command;
mod shell;
pub mod views;

use std::sync::Arc;

use serde_json::json;
use slicelab_model::sliver::NodeActionKind;
use slicelab_sshgw::{Service, ServiceIo};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::actions::ActionLog;
use crate::holds::{Hold, Holds};
use crate::runtime::{LinuxRuntime, Runtime};
use command::Command;

/// What the admin context works with (shared with the daemon).
#[derive(Clone)]
pub struct AdminContext {
    pub rt: Arc<LinuxRuntime>,
    pub holds: Holds,
    pub actions: ActionLog,
}

/// Exit statuses of admin commands.
const OK: u32 = 0;
const FAILED: u32 = 1;
const USAGE: u32 = 2;

impl AdminContext {
    /// `ssh site_admin@NODE CMD`: runs one command.
    pub fn exec(&self, person: &str, line: String) -> Service {
        let ctx = self.clone();
        let person = person.to_string();
        Service::InProcess(Box::new(move |io| {
            Box::pin(async move { ctx.exec_line(&person, &line, io).await })
        }))
    }

    /// `ssh site_admin@NODE`: a line-by-line shell of the same commands.
    pub fn shell(&self, person: &str) -> Service {
        let ctx = self.clone();
        let person = person.to_string();
        Service::InProcess(Box::new(move |io| {
            Box::pin(async move { shell::run(ctx, person, io).await })
        }))
    }

    async fn exec_line(&self, person: &str, line: &str, mut io: ServiceIo) -> u32 {
        let status = match command::parse(line) {
            Ok(Some(Command::Capture { slice, args })) => {
                crate::services::capture::for_staff(self, person, &slice, args, &mut io).await
            }
            Ok(Some(cmd)) => {
                let (status, text) = self.run(person, cmd).await;
                let w = if status == OK {
                    &mut io.output
                } else {
                    &mut io.errors
                };
                write_text(w, &text, false).await;
                status
            }
            Ok(None) => {
                write_text(&mut io.errors, command::HELP, false).await;
                USAGE
            }
            Err(e) => {
                write_text(&mut io.errors, &format!("{e}\n"), false).await;
                USAGE
            }
        };
        let _ = io.output.flush().await;
        let _ = io.errors.flush().await;
        status
    }

    /// Runs a command that answers with text (everything but `capture`): its exit status and
    /// its text (for standard error when the status is not 0).
    pub(crate) async fn run(&self, person: &str, cmd: Command) -> (u32, String) {
        let ctx = self.clone();
        let p = person.to_string();
        match tokio::task::spawn_blocking(move || ctx.run_blocking(&p, cmd)).await {
            Ok(r) => r,
            Err(e) => (FAILED, format!("the command failed: {e}\n")),
        }
    }

    fn run_blocking(&self, person: &str, cmd: Command) -> (u32, String) {
        let name = cmd.name();
        let record = |slice: Option<&str>| {
            self.actions.record(
                person,
                NodeActionKind::AdminCommand,
                slice,
                json!({ "command": name }),
            )
        };
        match cmd {
            Command::Help => (OK, format!("{}\n", command::HELP)),
            Command::Exit => (OK, String::new()),
            Command::Slivers => {
                record(None);
                (OK, views::slivers(&self.rt, &self.holds))
            }
            Command::Show(slice) => match views::show(&self.rt, &self.holds, &slice) {
                Some(text) => {
                    record(Some(&slice));
                    (OK, text)
                }
                None => (FAILED, no_sliver(&slice)),
            },
            Command::Ps(slice) => self.with_sliver(&slice, || {
                record(Some(&slice));
                views::ps(&self.rt, &slice)
            }),
            Command::Flows(slice) => self.with_sliver(&slice, || {
                record(Some(&slice));
                views::flows(&self.rt, &slice)
            }),
            Command::Log(n) => {
                record(None);
                let mut text = crate::logring::tail(n).join("\n");
                text.push('\n');
                (OK, text)
            }
            Command::Stop { slice, reason } => self.stop(person, &slice, reason),
            Command::Restart(slice) => self.restart(person, &slice),
            Command::Capture { .. } => (
                USAGE,
                "capture writes pcapng: run it as a command, e.g. \
                 ssh site_admin@NODE \"capture SLICE --duration 10s\" > out.pcapng\n"
                    .into(),
            ),
        }
    }

    fn has_sliver(&self, slice: &str) -> bool {
        self.rt
            .list()
            .map(|l| l.iter().any(|o| o.slice_name == slice))
            .unwrap_or(false)
    }

    fn with_sliver(&self, slice: &str, f: impl FnOnce() -> String) -> (u32, String) {
        if self.has_sliver(slice) {
            (OK, f())
        } else {
            (FAILED, no_sliver(slice))
        }
    }

    fn stop(&self, person: &str, slice: &str, reason: String) -> (u32, String) {
        if !self.has_sliver(slice) {
            return (FAILED, no_sliver(slice));
        }
        let hold = Hold {
            by: person.to_string(),
            at: slicelab_model::time::now(),
            reason: reason.chars().take(500).collect(),
        };
        if let Err(e) = self.holds.hold(slice, hold.clone()) {
            return (FAILED, format!("cannot record the stop: {e}\n"));
        }
        let stopped = self.rt.stop(slice);
        self.actions.record(
            person,
            NodeActionKind::SliverStop,
            Some(slice),
            json!({ "reason": hold.reason }),
        );
        match stopped {
            Ok(()) => (
                OK,
                format!("stopped {slice}; it stays stopped on this node until `restart {slice}`\n"),
            ),
            Err(e) => (
                FAILED,
                format!("held {slice} stopped, but stopping it now failed ({e}); the node manager retries\n"),
            ),
        }
    }

    fn restart(&self, person: &str, slice: &str) -> (u32, String) {
        if !self.has_sliver(slice) {
            return (FAILED, no_sliver(slice));
        }
        let held = match self.holds.release(slice) {
            Ok(h) => h.is_some(),
            Err(e) => return (FAILED, format!("cannot lift the stop: {e}\n")),
        };
        let running = self.rt.init_of(slice).is_some();
        let stopped = if running { self.rt.stop(slice) } else { Ok(()) };
        self.actions.record(
            person,
            NodeActionKind::SliverRestart,
            Some(slice),
            json!({ "was_held": held, "was_running": running }),
        );
        match stopped {
            Ok(()) => (
                OK,
                format!("restarting {slice} (the node manager starts it now, if its slice is to run here)\n"),
            ),
            Err(e) => (FAILED, format!("cannot stop {slice} to restart it: {e}\n")),
        }
    }
}

fn no_sliver(slice: &str) -> String {
    format!("slice {slice:?} has no sliver on this node (see `slivers`)\n")
}

/// Writes `text`, with CRLF line ends on a terminal.
pub(crate) async fn write_text(
    w: &mut (dyn AsyncWrite + Send + Unpin),
    text: &str,
    terminal: bool,
) {
    let text = if terminal {
        text.replace('\n', "\r\n")
    } else {
        text.to_string()
    };
    let _ = w.write_all(text.as_bytes()).await;
}

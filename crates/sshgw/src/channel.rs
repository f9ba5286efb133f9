//! One SSH session channel: collects `pty-req` and `env`, then runs a command, a login shell or
//! the sftp subsystem, and pumps bytes until the program ends or the client goes away.
//!
//! Each channel is owned by one task (started when the channel opens). The connection handler
//! answers the client's requests (success/failure); this task acts on the same requests, which
//! russh also delivers to the channel, in order, as `ChannelMsg`s.

use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use russh::server::Msg;
use russh::{Channel, ChannelId, ChannelMsg, ChannelWriteHalf, Sig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::program::{Program, Started};
use crate::pty::{self, Size};
use crate::service::{Login, ServiceRequest};
use crate::SliverAccess;

/// At most this many client `env` variables per channel.
pub(crate) const MAX_ENV: usize = 64;

/// After a terminal session's program exits, how long to wait for the rest of its output before
/// killing what is left of its process group.
const PTY_DRAIN: Duration = Duration::from_secs(2);

/// What every channel of one authenticated connection shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub access: Arc<dyn SliverAccess>,
    pub login: Login,
    pub shutdown: watch::Receiver<bool>,
    /// The connection, for what a channel half cannot send (exit-signal).
    pub handle: russh::server::Handle,
}

/// Which client `env` requests are honoured: locale and terminal settings only. Anything that
/// could change how programs load or behave (`LD_*`, `PATH`, `BASH_ENV`, …) is refused.
pub fn env_allowed(name: &str) -> bool {
    matches!(name, "LANG" | "LANGUAGE" | "TERM" | "COLORTERM" | "TZ")
        || (name.starts_with("LC_")
            && name.len() > 3
            && name[3..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_'))
}

pub(crate) struct PtyReq {
    term: String,
    size: Size,
}

enum Asked {
    Exec(String),
    Shell,
}

/// Runs the channel to its end. Never panics on I/O; errors end the channel.
pub(crate) async fn run(mut channel: Channel<Msg>, mut ctx: Ctx) {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut pty: Option<PtyReq> = None;
    loop {
        let msg = tokio::select! {
            m = channel.wait() => m,
            _ = ctx.shutdown.changed() => None,
        };
        match msg {
            None | Some(ChannelMsg::Close) => {
                let _ = channel.close().await;
                return;
            }
            Some(ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                ..
            }) => {
                pty = Some(PtyReq {
                    term,
                    size: Size {
                        cols: col_width,
                        rows: row_height,
                        pix_width,
                        pix_height,
                    },
                })
            }
            Some(ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            }) => {
                if let Some(p) = pty.as_mut() {
                    p.size = Size {
                        cols: col_width,
                        rows: row_height,
                        pix_width,
                        pix_height,
                    };
                }
            }
            Some(ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            }) => {
                if env_allowed(&variable_name) && env.len() < MAX_ENV {
                    env.retain(|(k, _)| *k != variable_name);
                    env.push((variable_name, variable_value));
                }
            }
            Some(ChannelMsg::Exec { command, .. }) => {
                let command = String::from_utf8_lossy(&command).into_owned();
                return match ctx.login.clone() {
                    Login::Slice { slice, .. } => {
                        run_program(channel, ctx, &slice, Asked::Exec(command), env, pty).await
                    }
                    login => {
                        let service = ctx.access.service(&login, ServiceRequest::Exec(command));
                        crate::service_run::run(channel, ctx, service, pty.is_some()).await
                    }
                };
            }
            Some(ChannelMsg::RequestShell { .. }) => {
                return match ctx.login.clone() {
                    Login::Slice { slice, .. } => {
                        run_program(channel, ctx, &slice, Asked::Shell, env, pty).await
                    }
                    login => {
                        let service = ctx.access.service(&login, ServiceRequest::Shell);
                        crate::service_run::run(channel, ctx, service, pty.is_some()).await
                    }
                };
            }
            Some(ChannelMsg::RequestSubsystem { name, .. }) => {
                let login = ctx.login.clone();
                if let (Login::Slice { slice, .. }, "sftp") = (&login, name.as_str()) {
                    if let Some(root) = ctx.access.root(slice) {
                        let owner = ctx.access.file_owner(slice);
                        crate::sftp::run(channel, root, owner).await;
                        return;
                    }
                } else if name != "sftp" && ctx.access.offers(&login, &name) {
                    let service = ctx.access.service(&login, ServiceRequest::Subsystem(name));
                    return crate::service_run::run(channel, ctx, service, false).await;
                }
                // The handler already answered "failure"; the client decides what to do next.
            }
            Some(_) => {}
        }
    }
}

/// Kills the whole process group of a session's program when dropped.
struct GroupGuard(Pid);

impl GroupGuard {
    fn signal(&self, sig: Signal) {
        let _ = killpg(self.0, sig);
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Where the program's stdin goes.
enum Input {
    Pipe(Option<tokio::net::unix::pipe::Sender>),
    Pty(pty::Master),
}

async fn run_program(
    channel: Channel<Msg>,
    ctx: Ctx,
    slice: &str,
    program: Asked,
    mut env: Vec<(String, String)>,
    pty_req: Option<PtyReq>,
) {
    let argv: Option<Vec<String>> = match &program {
        Asked::Exec(cmd) => Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()]),
        Asked::Shell => None,
    };
    if let Some(p) = &pty_req {
        env.retain(|(k, _)| k != "TERM");
        env.push(("TERM".into(), p.term.clone()));
    }
    let program = match ctx.access.program(slice, argv.as_deref(), &env) {
        Ok(p) => p,
        Err(e) => {
            let (_, tx) = channel.split();
            return fail(&tx, &format!("cannot start a program in the sliver: {e}")).await;
        }
    };
    run_command(channel, ctx, program, pty_req).await
}

/// The gateway's ends of a session's stdio.
enum Ends {
    Pipes {
        stdin: tokio::net::unix::pipe::Sender,
        stdout: tokio::net::unix::pipe::Receiver,
        stderr: tokio::net::unix::pipe::Receiver,
    },
    Pty(pty::Master),
}

/// The session's stdio: the gateway's ends, and the program's (pipes, or the pty slave three
/// times). Every descriptor is close-on-exec; the program's ends are dropped once it started.
fn session_stdio(pty_req: Option<&PtyReq>) -> std::io::Result<(Ends, [OwnedFd; 3])> {
    match pty_req {
        Some(p) => {
            let (master, slave) = pty::open(p.size)?;
            let (a, b) = (slave.try_clone()?, slave.try_clone()?);
            Ok((Ends::Pty(master), [slave, a, b]))
        }
        None => {
            let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from);
            let (in_r, in_w) = pipe()?;
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            let ends = Ends::Pipes {
                stdin: tokio::net::unix::pipe::Sender::from_owned_fd(in_w)?,
                stdout: tokio::net::unix::pipe::Receiver::from_owned_fd(out_r)?,
                stderr: tokio::net::unix::pipe::Receiver::from_owned_fd(err_r)?,
            };
            Ok((ends, [in_r, out_w, err_w]))
        }
    }
}

/// Starts `program` on `stdio`: in a process group of its own, or with `terminal` in a new
/// session whose controlling terminal is stdin.
fn start(program: Program, stdio: &[OwnedFd; 3], terminal: bool) -> std::io::Result<Started> {
    match program {
        Program::Start(s) => s.start([&stdio[0], &stdio[1], &stdio[2]], terminal),
        Program::Command(mut command) => {
            command
                .stdin(stdio[0].try_clone()?)
                .stdout(stdio[1].try_clone()?)
                .stderr(stdio[2].try_clone()?);
            if terminal {
                // SAFETY: the closure only calls async-signal-safe functions.
                unsafe { command.pre_exec(pty::make_controlling_terminal) };
            } else {
                // A process group of its own, killed as one when the session ends. Not a new
                // session (`setsid` in a `pre_exec` hook): any hook makes std fork the gateway's
                // whole process (page tables of every thread's memory, torn down again at exec)
                // where `posix_spawn` only borrows it. Without a terminal a session adds nothing
                // but the leader; the program drops a controlling terminal it may inherit
                // (`SliverAccess::command`).
                command.process_group(0);
            }
            let mut child = tokio::process::Command::from(command).spawn()?;
            let pid = child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .ok_or_else(|| {
                    std::io::Error::other("program exited before it could be watched")
                })?;
            Ok(Started {
                pid,
                exit: Box::pin(async move { child.wait().await }),
            })
        }
    }
}

/// Starts `program` wired to the channel — in a process group of its own, or in a new session
/// with a pty as its controlling terminal when `pty_req` — pumps bytes until it ends or the
/// client goes away, and reports its exit status.
pub(crate) async fn run_command(
    channel: Channel<Msg>,
    ctx: Ctx,
    program: Program,
    pty_req: Option<PtyReq>,
) {
    let (mut rx, tx) = channel.split();
    let started = session_stdio(pty_req.as_ref()).and_then(|(ends, stdio)| {
        // The program's ends close here, once it holds its own copies.
        start(program, &stdio, pty_req.is_some()).map(|s| (ends, s))
    });
    let (ends, Started { pid, mut exit }) = match started {
        Ok(x) => x,
        Err(e) => return fail(&tx, &format!("cannot start a program in the sliver: {e}")).await,
    };
    let pid = Pid::from_raw(pid);
    let group = GroupGuard(pid);
    let master = match &ends {
        Ends::Pty(m) => Some(m.clone()),
        Ends::Pipes { .. } => None,
    };
    tracing::debug!(login = ?ctx.login, pid = pid.as_raw(), tty = master.is_some(), "session started");

    // Output pumps.
    let mut input;
    let mut outputs = Vec::new();
    match ends {
        Ends::Pty(m) => {
            input = Input::Pty(m.clone());
            let mut w = tx.make_writer();
            outputs.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match m.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if w.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
        Ends::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            input = Input::Pipe(Some(stdin));
            outputs.push(tokio::spawn(pump(stdout, tx.make_writer())));
            outputs.push(tokio::spawn(pump(stderr, tx.make_writer_ext(Some(1)))));
        }
    }
    let outputs_done = async {
        for h in outputs.iter_mut() {
            let _ = h.await;
        }
    };
    tokio::pin!(outputs_done);

    let mut shutdown = ctx.shutdown.clone();
    let mut status: Option<ExitStatus> = None;
    let mut drained = false;
    let mut client_gone = false;
    // While the program runs (and, without a pty, until its output is closed).
    while !(status.is_some() && drained) {
        // With a pty, the session ends when the program does: give its output a moment.
        let drain_deadline = async {
            if status.is_some() && master.is_some() {
                tokio::time::sleep(PTY_DRAIN).await
            } else {
                std::future::pending::<()>().await
            }
        };
        tokio::select! {
            msg = rx.wait() => {
                if !on_client_msg(msg, &mut input, &group, master.as_ref()).await {
                    client_gone = true;
                    break;
                }
            }
            st = &mut exit, if status.is_none() => {
                status = Some(st.unwrap_or_else(|_| ExitStatus::from_raw(255 << 8)));
            }
            _ = &mut outputs_done, if !drained => drained = true,
            _ = drain_deadline => break,
            _ = shutdown.changed() => {
                client_gone = true;
                break;
            }
        }
    }
    // Whatever is left of the session's processes goes now.
    group.signal(Signal::SIGKILL);
    for h in &outputs {
        h.abort();
    }
    let status = match status {
        Some(s) => s,
        None => exit
            .await
            .unwrap_or_else(|_| ExitStatus::from_raw(255 << 8)),
    };
    drop(group);
    tracing::debug!(login = ?ctx.login, ?status, "session ended");
    if client_gone {
        let _ = tx.close().await;
        return;
    }
    let _ = tx.eof().await;
    match (status.code(), status.signal()) {
        (Some(code), _) => {
            let _ = tx.exit_status(u32::try_from(code).unwrap_or(255)).await;
        }
        (None, Some(sig)) => {
            let _ = send_exit_signal(&ctx.handle, tx.id(), sig, status.core_dumped()).await;
        }
        (None, None) => {
            let _ = tx.exit_status(255).await;
        }
    }
    let _ = tx.close().await;
}

/// Acts on one message from the client while the program runs; `false` when the client closed
/// the channel.
async fn on_client_msg(
    msg: Option<ChannelMsg>,
    input: &mut Input,
    group: &GroupGuard,
    master: Option<&pty::Master>,
) -> bool {
    match msg {
        None | Some(ChannelMsg::Close) => return false,
        Some(ChannelMsg::Data { data }) => match input {
            Input::Pipe(stdin) => {
                if let Some(s) = stdin.as_mut() {
                    if s.write_all(&data).await.is_err() {
                        *stdin = None;
                    }
                }
            }
            Input::Pty(m) => {
                let _ = m.write_all(&data).await;
            }
        },
        Some(ChannelMsg::Eof) => match input {
            // Closing the pipe is the program's end of input.
            Input::Pipe(stdin) => *stdin = None,
            // On a terminal, EOF is the VEOF character (^D) — what sshd does too.
            Input::Pty(m) => {
                let _ = m.write_all(&[4]).await;
            }
        },
        Some(ChannelMsg::WindowChange {
            col_width,
            row_height,
            pix_width,
            pix_height,
        }) => {
            if let Some(m) = master {
                let _ = m.resize(Size {
                    cols: col_width,
                    rows: row_height,
                    pix_width,
                    pix_height,
                });
            }
        }
        Some(ChannelMsg::Signal { signal }) => {
            if let Some(sig) = to_signal(&signal) {
                group.signal(sig);
            }
        }
        Some(_) => {}
    }
    true
}

async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Tells the client why nothing runs (on stderr), with the shell's "cannot execute" status.
async fn fail(tx: &ChannelWriteHalf<Msg>, message: &str) {
    tracing::warn!("{message}");
    refuse(tx, message, 127).await;
}

/// Tells the client `message` on stderr and ends the channel with `status`.
pub(crate) async fn refuse(tx: &ChannelWriteHalf<Msg>, message: &str, status: u32) {
    let _ = tx
        .extended_data_bytes(1, format!("slicelab: {message}\r\n").into_bytes())
        .await;
    let _ = tx.eof().await;
    let _ = tx.exit_status(status).await;
    let _ = tx.close().await;
}

async fn send_exit_signal(
    handle: &russh::server::Handle,
    id: ChannelId,
    sig: i32,
    core_dumped: bool,
) -> Result<(), ()> {
    let name = match Signal::try_from(sig) {
        Ok(Signal::SIGABRT) => Sig::ABRT,
        Ok(Signal::SIGALRM) => Sig::ALRM,
        Ok(Signal::SIGFPE) => Sig::FPE,
        Ok(Signal::SIGHUP) => Sig::HUP,
        Ok(Signal::SIGILL) => Sig::ILL,
        Ok(Signal::SIGINT) => Sig::INT,
        Ok(Signal::SIGKILL) => Sig::KILL,
        Ok(Signal::SIGPIPE) => Sig::PIPE,
        Ok(Signal::SIGQUIT) => Sig::QUIT,
        Ok(Signal::SIGSEGV) => Sig::SEGV,
        Ok(Signal::SIGTERM) => Sig::TERM,
        Ok(Signal::SIGUSR1) => Sig::USR1,
        Ok(s) => Sig::Custom(s.as_str().trim_start_matches("SIG").to_string()),
        Err(_) => Sig::Custom(sig.to_string()),
    };
    handle
        .exit_signal_request(id, name, core_dumped, String::new(), String::new())
        .await
}

fn to_signal(sig: &Sig) -> Option<Signal> {
    Some(match sig {
        Sig::ABRT => Signal::SIGABRT,
        Sig::ALRM => Signal::SIGALRM,
        Sig::FPE => Signal::SIGFPE,
        Sig::HUP => Signal::SIGHUP,
        Sig::ILL => Signal::SIGILL,
        Sig::INT => Signal::SIGINT,
        Sig::KILL => Signal::SIGKILL,
        Sig::PIPE => Signal::SIGPIPE,
        Sig::QUIT => Signal::SIGQUIT,
        Sig::SEGV => Signal::SIGSEGV,
        Sig::TERM => Signal::SIGTERM,
        Sig::USR1 => Signal::SIGUSR1,
        Sig::Custom(name) => match name.as_str() {
            "USR2" => Signal::SIGUSR2,
            "CONT" => Signal::SIGCONT,
            "STOP" => Signal::SIGSTOP,
            "WINCH" => Signal::SIGWINCH,
            _ => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_subset() {
        for ok in ["LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ"] {
            assert!(env_allowed(ok), "{ok}");
        }
        for bad in [
            "LD_PRELOAD",
            "PATH",
            "BASH_ENV",
            "LC_",
            "LC_all",
            "HOME",
            "SHELL",
        ] {
            assert!(!env_allowed(bad), "{bad}");
        }
    }
}

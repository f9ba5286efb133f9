//! The exec spawner: a small process the node manager starts once, which forks an exec helper
//! per SSH session instead of the node re-executing its whole binary each time.
//!
//! Re-executing the node binary costs ~2.5 ms of CPU per session on a small VM (mapping and
//! relocating a large binary and its libraries, glibc's start-up); a fork of an idle,
//! single-threaded process costs a tenth of that. The spawner is that process:
//!
//! * [`Spawner::start`] re-executes the node binary once with [`SPAWNER_ENV`] set; its stdin is
//!   one end of a `SOCK_SEQPACKET` pair, the *control socket*. It leads a session of its own (so
//!   nothing it forks inherits a controlling terminal of the node manager's) and blocks `SIGCHLD`
//!   into a `signalfd`.
//! * [`Spawner::spawn`] sends one message per session: the [`ExecSpec`] as JSON and, by
//!   `SCM_RIGHTS`, the session's stdin, stdout and stderr and the write end of a fresh *reply*
//!   stream. The spawner forks; the child resets its signals, takes the stdio, becomes a process
//!   group of its own (or, with a terminal, a session with stdin as its controlling terminal)
//!   and runs the exec helper (`exec::exec_helper`), exiting with its status.
//! * On the reply stream the spawner writes the child's pid at once and its raw wait status when
//!   it has reaped it, then closes it. The node reads the pid (to kill the group when the session
//!   ends) and awaits the status ([`Running`]).
//! * The spawner exits when the control socket closes (the node manager stopped or dropped it);
//!   sessions still running carry on, but their exit statuses are lost with it. A spawner that
//!   died is started again at the next session; a live one is never replaced (that would end
//!   every session it serves).
//!
//! It runs host root's code in a single-threaded process, exactly as the re-executed helper did:
//! the confinement of what runs in the sliver is the helper's, unchanged.

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::unistd::{dup2, fork, pipe2, setpgid, setsid, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use super::exec::{self, ExecSpec};

/// Environment variable that turns the current binary into the exec spawner (its stdin is the
/// control socket).
pub const SPAWNER_ENV: &str = "SLICELAB_EXEC_SPAWNER";

/// The largest request (an exec spec with its environment); larger ones are refused. Under the
/// default socket send buffer (~208 KiB), which bounds one `SOCK_SEQPACKET` message.
const MAX_REQUEST: usize = 128 * 1024;

/// How long a session waits for the spawner to say it forked the helper.
const PID_TIMEOUT: Duration = Duration::from_secs(5);

/// One session's request, as the control socket carries it (the fds travel beside it).
#[derive(Debug, Serialize)]
struct Request<'a> {
    spec: &'a ExecSpec,
    /// Make stdin the controlling terminal of a new session (an SSH pty).
    terminal: bool,
}

/// A [`Request`] as the spawner reads it.
#[derive(Debug, Deserialize)]
struct Received {
    spec: ExecSpec,
    terminal: bool,
}

/// The node manager's handle on its spawner process.
pub struct Spawner {
    exe: PathBuf,
    inner: Mutex<Option<Process>>,
}

struct Process {
    control: OwnedFd,
    child: Child,
}

/// A helper the spawner started: its pid (the leader of its process group) and its exit.
pub struct Running {
    pub pid: i32,
    reply: UnixStream,
}

impl Running {
    /// The reply stream, on which the helper's raw wait status arrives when it has ended (to be
    /// read with [`Running::status_of`]); for an async reader.
    pub fn into_reply(self) -> UnixStream {
        self.reply
    }

    /// The exit status in the 4 bytes the spawner wrote.
    pub fn status_of(bytes: [u8; 4]) -> ExitStatus {
        ExitStatus::from_raw(i32::from_le_bytes(bytes))
    }
}

impl Spawner {
    /// Starts the spawner from `exe` (the node manager's own binary, whose `main` calls
    /// `maybe_run_sliver_init` first).
    pub fn start(exe: &Path) -> io::Result<Spawner> {
        let s = Spawner {
            exe: exe.to_path_buf(),
            inner: Mutex::new(None),
        };
        let p = s.launch()?;
        *s.lock() = Some(p);
        Ok(s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Process>> {
        // A panic while holding the lock leaves at worst a dead process in it, replaced below.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn launch(&self) -> io::Result<Process> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let child = Command::new(&self.exe)
            .env_clear()
            .env(SPAWNER_ENV, "1")
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .spawn()?;
        Ok(Process {
            control: ours,
            child,
        })
    }

    /// Starts the exec helper for `spec` with `stdio` (stdin, stdout, stderr): in a process group
    /// of its own, or with `terminal` in a new session whose controlling terminal is stdin.
    /// A spawner that has exited is started again first.
    pub fn spawn(
        &self,
        spec: &ExecSpec,
        stdio: [&OwnedFd; 3],
        terminal: bool,
    ) -> io::Result<Running> {
        let req = serde_json::to_vec(&Request { spec, terminal }).map_err(io::Error::other)?;
        if req.len() > MAX_REQUEST {
            return Err(io::Error::other("command and environment too large"));
        }
        let mut guard = self.lock();
        let alive = guard
            .as_mut()
            .is_some_and(|p| matches!(p.child.try_wait(), Ok(None)));
        if !alive {
            if let Some(mut old) = guard.take() {
                tracing::warn!("exec spawner exited; starting it again");
                let _ = old.child.wait();
            }
            *guard = Some(self.launch()?);
        }
        let Some(p) = guard.as_ref() else {
            return Err(io::Error::other("exec spawner unavailable"));
        };
        request(&p.control, &req, stdio)
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        if let Some(mut p) = self.lock().take() {
            // Closing the control socket is the spawner's signal to exit.
            drop(p.control);
            let _ = p.child.wait();
        }
    }
}

/// Sends one request and reads the helper's pid from its reply stream.
fn request(control: &OwnedFd, req: &[u8], stdio: [&OwnedFd; 3]) -> io::Result<Running> {
    let (mut reply, theirs) = UnixStream::pair()?;
    let fds = [
        stdio[0].as_raw_fd(),
        stdio[1].as_raw_fd(),
        stdio[2].as_raw_fd(),
        theirs.as_raw_fd(),
    ];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(
        control.as_raw_fd(),
        &[IoSlice::new(req)],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)?;
    drop(theirs);
    // The spawner answers right after its fork; a stuck one must not hold the gateway for good.
    reply.set_read_timeout(Some(PID_TIMEOUT))?;
    let mut b = [0u8; 4];
    reply
        .read_exact(&mut b)
        .map_err(|e| io::Error::new(e.kind(), format!("no pid from the exec spawner: {e}")))?;
    let pid = i32::from_le_bytes(b);
    if pid <= 0 {
        return Err(io::Error::other(
            "the exec spawner could not start the helper",
        ));
    }
    reply.set_read_timeout(None)?;
    Ok(Running { pid, reply })
}

/// Runs the spawner and exits, if this process was started as one.
pub(super) fn maybe_run_spawner() {
    if std::env::var_os(SPAWNER_ENV).is_some() {
        let code = match serve() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("slicelab exec spawner: {e}");
                1
            }
        };
        std::process::exit(code);
    }
}

/// The spawner's loop: a request forks a helper; a `SIGCHLD` reaps helpers and reports them.
fn serve() -> Result<(), String> {
    let control: RawFd = 0;
    // No controlling terminal for anything forked from here.
    let _ = setsid();
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    chld.thread_block()
        .map_err(|e| format!("blocking SIGCHLD: {e}"))?;
    let sigfd = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {e}"))?;
    // Each running helper's reply stream, by pid.
    let mut replies: HashMap<i32, UnixStream> = HashMap::new();
    let mut buf = vec![0u8; MAX_REQUEST];
    loop {
        // SAFETY: fd 0 is the control socket, open for the whole life of this process.
        let control_fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(control) };
        let mut fds = [
            PollFd::new(control_fd, PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let (control_ready, child_ready) = (ready(&fds[0]), ready(&fds[1]));
        if child_ready {
            while sigfd.read_signal().ok().flatten().is_some() {}
            reap(&mut replies);
        }
        if control_ready {
            match receive(control, &mut buf)? {
                None => return Ok(()),
                Some((req, stdio, reply)) => {
                    let mut reply = UnixStream::from(reply);
                    match start(&req, stdio, control, sigfd.as_raw_fd()) {
                        Ok(pid) => {
                            if reply.write_all(&pid.to_le_bytes()).is_ok() {
                                replies.insert(pid, reply);
                            }
                        }
                        Err(e) => {
                            eprintln!("slicelab exec spawner: {e}");
                            let _ = reply.write_all(&0i32.to_le_bytes());
                        }
                    }
                }
            }
        }
    }
}

type Incoming = (Received, [OwnedFd; 3], OwnedFd);

/// Reads one request with its four fds; `None` at the end of the control socket. A malformed
/// request is dropped (its fds closed), which its sender sees as a reply closed without a pid.
fn receive(control: RawFd, buf: &mut [u8]) -> Result<Option<Incoming>, String> {
    loop {
        let mut cmsg = nix::cmsg_space!([RawFd; 4]);
        let mut iov = [IoSliceMut::new(buf)];
        let (len, fds) = match recvmsg::<()>(
            control,
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => {
                let mut fds: Vec<OwnedFd> = Vec::new();
                for c in m.cmsgs().map_err(|e| format!("control message: {e}"))? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: SCM_RIGHTS gave this process these new descriptors; each is
                        // owned here exactly once.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                (m.bytes, fds)
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(format!("receiving: {e}")),
        };
        if len == 0 && fds.is_empty() {
            return Ok(None);
        }
        let Ok([i, o, e, reply]) = <[OwnedFd; 4]>::try_from(fds) else {
            eprintln!("slicelab exec spawner: a request without its 4 descriptors");
            continue;
        };
        match serde_json::from_slice::<Received>(&iov[0][..len]) {
            Ok(req) => return Ok(Some((req, [i, o, e], reply))),
            Err(e) => eprintln!("slicelab exec spawner: bad request: {e}"),
        }
    }
}

/// Forks the helper for `req`; its pid, once the helper leads its process group (or session):
/// a kill of that group right after the pid is sent cannot miss it.
fn start(req: &Received, stdio: [OwnedFd; 3], control: RawFd, sigfd: RawFd) -> Result<i32, String> {
    // Closed by the child (with everything else of the spawner's) once its group or session is
    // made, or by its exit if it fails before: end of file here either way.
    let (set_up_r, set_up_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the spawner is single-threaded.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            let code = match child(req, &stdio, control, sigfd) {
                Ok(()) => exec::exec_helper(&req.spec),
                Err(e) => {
                    eprintln!("slicelab exec: {e}");
                    125
                }
            };
            // SAFETY: exiting a forked child; nothing of the spawner's is flushed twice (it
            // holds no buffered output).
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(set_up_w);
            let mut b = [0u8; 1];
            let mut r = std::fs::File::from(set_up_r);
            while let Err(e) = r.read(&mut b) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            Ok(child.as_raw())
        }
    }
}

/// In the forked child: a clean signal state, the session's stdio, its process group or
/// session, and nothing else of the spawner's open (which also tells the spawner it is set up).
fn child(req: &Received, stdio: &[OwnedFd; 3], control: RawFd, sigfd: RawFd) -> Result<(), String> {
    // The helper and what it runs start like any program spawned by the node: nothing blocked
    // (the spawner blocks SIGCHLD), every disposition the default.
    exec::reset_signals();
    for (fd, target) in stdio.iter().zip([0, 1, 2]) {
        dup2(fd.as_raw_fd(), target).map_err(|e| format!("dup2: {e}"))?;
    }
    if req.terminal {
        slicelab_sshgw::make_controlling_terminal().map_err(|e| format!("terminal: {e}"))?;
    } else {
        setpgid(Pid::from_raw(0), Pid::from_raw(0)).map_err(|e| format!("setpgid: {e}"))?;
    }
    // Nothing of the spawner's stays open in the helper: not the control socket, the signalfd,
    // the set-up pipe, nor other sessions' reply streams (which would keep them open after the
    // spawner's end).
    // SAFETY: close_range on descriptors this process owns; none above 2 is used again by this
    // child (the helper opens what it needs afterwards).
    if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } != 0 {
        // Before Linux 5.9: close what /proc lists (collected first, then closed).
        let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                    .filter(|&fd| fd > 2)
                    .collect()
            })
            .unwrap_or_else(|_| vec![control, sigfd]);
        for fd in open {
            let _ = nix::unistd::close(fd);
        }
    }
    Ok(())
}

/// Reaps every ended helper and sends its raw wait status on its reply stream.
fn reap(replies: &mut HashMap<i32, UnixStream>) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid pointer to an int; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if let Some(mut r) = replies.remove(&pid) {
            let _ = r.write_all(&status.to_le_bytes());
        }
    }
}

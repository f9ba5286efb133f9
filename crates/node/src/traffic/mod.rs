//! Traffic generation as a node service (`ssh -s SLICE@NODE slicelab-traffic`, driven by
//! `slicelab traffic`): one side of a measured run between two slivers of a slice.
//!
//! * Host side ([`service`], in the SSH gateway's process): reads the one-line
//!   [`TrafficRequest`], validates it; for a receiver opens a temporary node port forward to the
//!   sliver ([`forward`]); for a sender resolves the receiver's address with the node's resolver.
//!   Then runs the side inside the sliver through the exec helper in its built-in mode
//!   ([`crate::sandbox::Builtin::Traffic`]: the node's own code, no file in the sliver needed)
//!   and relays its JSON lines. The forward goes, and the program is killed, when the run ends
//!   or the client goes away (the gateway drops the service's future).
//! * Sliver side ([`job`], `udp`, `tcp`): the paced sender and the receiver; pure pacing
//!   ([`pace`]) and statistics ([`stats`]) are unit-tested.
//!
//! Throughput is counted like iperf3 counts it: L4 payload bytes over the receiver's interval.

pub mod forward;
pub mod job;
pub mod pace;
pub mod stats;
mod tcp;
mod udp;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slicelab_model::traffic::{split_host_port, Role, TrafficLine, TrafficRequest};
use slicelab_sshgw::{Service, ServiceIo};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::runtime::LinuxRuntime;
use crate::sandbox::Builtin;
use crate::state;
use forward::Forward;
pub use job::Job;

/// The subsystem's name.
pub const SUBSYSTEM: &str = "slicelab-traffic";

/// How long a receiver waits for the sender's first packet (or connection).
pub(crate) const FIRST_PACKET_WAIT: Duration = Duration::from_secs(60);

/// Longest request line.
const MAX_REQUEST: u64 = 16 * 1024;

/// Writes one line of output and flushes it.
pub(crate) fn emit(out: &mut impl Write, line: &TrafficLine) -> io::Result<()> {
    let mut s = serde_json::to_string(line).map_err(io::Error::other)?;
    s.push('\n');
    out.write_all(s.as_bytes())?;
    out.flush()
}

/// Nanoseconds since `start`.
pub(crate) fn nanos_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A seed from the clock (for Poisson gaps and port choice; nothing secret).
pub(crate) fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
        .unwrap_or(1)
}

/// Sleeps until `t` (returns at once when it has passed).
pub(crate) fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Asks for a socket buffer of `bytes` (best effort: the kernel caps it at its maximum).
pub(crate) fn set_buffer(sock: &impl AsRawFd, opt: libc::c_int, bytes: libc::c_int) {
    // SAFETY: the pointer and length describe `bytes`, an int, as SO_SNDBUF/SO_RCVBUF expect.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The `slicelab-traffic` service for a person of `slice`.
pub fn service(rt: &Arc<LinuxRuntime>, slice: &str) -> Service {
    let (rt, slice) = (rt.clone(), slice.to_string());
    Service::InProcess(Box::new(move |io| Box::pin(serve(rt, slice, io))))
}

/// Runs one side of a run on a channel's streams; the exit status.
pub async fn serve(rt: Arc<LinuxRuntime>, slice: String, io: ServiceIo) -> u32 {
    let ServiceIo {
        input,
        mut output,
        mut errors,
        ..
    } = io;
    match run_side(&rt, &slice, input, &mut output, &mut errors).await {
        Ok(code) => code,
        Err(e) => {
            let line = TrafficLine::Error(e);
            if let Ok(mut s) = serde_json::to_string(&line) {
                s.push('\n');
                let _ = output.write_all(s.as_bytes()).await;
                let _ = output.flush().await;
            }
            1
        }
    }
}

async fn read_request(input: impl AsyncRead + Unpin) -> Result<TrafficRequest, String> {
    let mut line = String::new();
    BufReader::new(input.take(MAX_REQUEST))
        .read_line(&mut line)
        .await
        .map_err(|e| format!("reading the request: {e}"))?;
    let req: TrafficRequest =
        serde_json::from_str(line.trim()).map_err(|e| format!("bad request: {e}"))?;
    req.validate().map_err(|e| format!("bad request: {e}"))?;
    Ok(req)
}

/// Every node port of the node's slices' `ports` tags.
fn tagged_ports(rt: &LinuxRuntime) -> BTreeSet<u16> {
    let dir = &rt.config().state_dir;
    state::list_slices(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| state::load(dir, s).ok().flatten())
        .flat_map(|r| r.spec.resources.ports.into_iter().map(|p| p.node_port))
        .collect()
}

/// The receiver's forward, opened on a blocking thread (it runs `nft`).
async fn open_forward(
    rt: &Arc<LinuxRuntime>,
    slice: &str,
    req: &TrafficRequest,
) -> Result<Forward, String> {
    let (rt, slice, proto) = (rt.clone(), slice.to_string(), req.proto);
    tokio::task::spawn_blocking(move || {
        let rec = state::load(&rt.config().state_dir, &slice)
            .ok()
            .flatten()
            .ok_or_else(|| format!("no sliver of {slice} on this node"))?;
        let addr = rec
            .address
            .ok_or_else(|| format!("the sliver of {slice} has no address"))?;
        Forward::open(&rt.config().names, &slice, addr, proto, &tagged_ports(&rt))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("opening the port forward: {e}"))?
}

/// The receiver's address, resolved by this node (IPv4 first).
async fn resolve(to: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(to).ok_or_else(|| format!("bad address {to:?}"))?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{host} has no address"))
}

async fn run_side(
    rt: &Arc<LinuxRuntime>,
    slice: &str,
    input: Box<dyn AsyncRead + Send + Unpin>,
    output: &mut (dyn AsyncWrite + Send + Unpin),
    errors: &mut (dyn AsyncWrite + Send + Unpin),
) -> Result<u32, String> {
    let req = read_request(input).await?;
    let (forward, job) = match req.role {
        Role::Receiver => {
            let f = open_forward(rt, slice, &req).await?;
            let port = f.port;
            (
                Some(f),
                Job {
                    request: req,
                    port,
                    dest: None,
                },
            )
        }
        Role::Sender => {
            let dest = resolve(req.to.as_deref().unwrap_or_default()).await?;
            (
                None,
                Job {
                    request: req,
                    port: 0,
                    dest: Some(dest),
                },
            )
        }
    };
    let cmd = rt
        .builtin_command(slice, Builtin::Traffic(job))
        .map_err(|e| format!("sliver {slice}: {e}"))?;
    let code = run_in_sliver(cmd, output, errors).await;
    drop(forward);
    code
}

/// Kills the program's process group (the helper and the program it forked) unless it ended.
struct KillGroup(Option<i32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Spawns the side in the sliver and relays its output; its exit status.
async fn run_in_sliver(
    cmd: std::process::Command,
    output: &mut (dyn AsyncWrite + Send + Unpin),
    errors: &mut (dyn AsyncWrite + Send + Unpin),
) -> Result<u32, String> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting the helper: {e}"))?;
    let mut guard = KillGroup(child.id().and_then(|p| i32::try_from(p).ok()));
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("the helper's output is missing".into());
    };
    let relay_out = async {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if output.write_all(format!("{l}\n").as_bytes()).await.is_err() {
                break;
            }
            let _ = output.flush().await;
        }
    };
    let relay_err = async {
        let mut err = err;
        let _ = tokio::io::copy(&mut err, errors).await;
        let _ = errors.flush().await;
    };
    let (_, _, status) = tokio::join!(relay_out, relay_err, child.wait());
    let status = status.map_err(|e| format!("waiting for the helper: {e}"))?;
    guard.0 = None;
    Ok(status.code().map(|c| c as u32).unwrap_or(1))
}

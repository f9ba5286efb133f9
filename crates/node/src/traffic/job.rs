//! The traffic program inside the sliver: what the exec helper runs instead of `execve` for
//! [`Builtin::Traffic`](crate::sandbox::Builtin) — after joining the sliver's cgroup and
//! namespaces and confining itself like the init, so the run obeys the slice's limits (egress
//! shaping, CPU, pids) and its packets are audited like any of the sliver's.

use std::io::{self, Write};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use slicelab_model::traffic::{Proto, Role, TrafficLine, TrafficRequest};

use super::{emit, tcp, udp};

/// One side of a run, as the host side of the service hands it to the sliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub request: TrafficRequest,
    /// Receiver: the port to listen on (the node port forwarded to it has the same number).
    pub port: u16,
    /// Sender: the receiver's address, resolved by the node.
    pub dest: Option<SocketAddr>,
}

/// Runs the job, writing its lines to stdout; the process's exit code.
pub fn run(job: &Job) -> i32 {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let r = run_to(job, &mut out);
    let code = match r {
        Ok(line) => emit(&mut out, &line).map(|_| 0).unwrap_or(1),
        Err(e) => {
            let _ = emit(&mut out, &TrafficLine::Error(e.to_string()));
            1
        }
    };
    let _ = out.flush();
    code
}

fn run_to(job: &Job, out: &mut impl Write) -> io::Result<TrafficLine> {
    let req = &job.request;
    match req.role {
        Role::Sender => {
            let dest = job
                .dest
                .ok_or_else(|| io::Error::other("a sender needs a destination"))?;
            Ok(TrafficLine::Sender(match req.proto {
                Proto::Udp => udp::send(req, dest)?,
                Proto::Tcp => tcp::send(req, dest)?,
            }))
        }
        Role::Receiver => Ok(TrafficLine::Receiver(match req.proto {
            Proto::Udp => udp::receive(req, job.port, out)?,
            Proto::Tcp => tcp::receive(req, job.port, out)?,
        })),
    }
}

//! A one-off read of the whole connection tracking table of the caller's network namespace:
//! what the node's admin context shows as a sliver's open flows (`site_admin … flows SLICE`).
//! The auditor's own socket stays untouched.

use std::time::{Duration, Instant};

use crate::error::{FlowError, IoContext};
use crate::nl::{self, Conntrack, EventKind, Message};
use crate::socket::{NlSocket, Recv};

/// A dump that takes longer than this is given up.
const DEADLINE: Duration = Duration::from_secs(10);

/// Every conntrack entry of this network namespace now.
pub fn snapshot() -> Result<Vec<Conntrack>, FlowError> {
    let sock = NlSocket::open(&[]).ctx(|| "opening a conntrack dump socket".into())?;
    let _ = sock.set_rcvbuf(4 << 20);
    sock.send(&nl::dump_request(1))
        .ctx(|| "requesting a conntrack dump".into())?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FlowError::Timeout("conntrack dump"));
        }
        let n = match sock
            .recv(&mut buf, left)
            .ctx(|| "reading a conntrack dump".into())?
        {
            Recv::Data(n) => n,
            Recv::Empty | Recv::Skipped => continue,
            Recv::Overrun => {
                return Err(FlowError::Netlink {
                    context: "conntrack dump",
                    errno: libc::ENOBUFS,
                })
            }
        };
        for m in nl::parse_datagram(&buf[..n]) {
            match m {
                Ok(Message::Conntrack(EventKind::Dumped, ct)) => out.push(*ct),
                Ok(Message::Done) => return Ok(out),
                Ok(Message::Error { errno, .. }) if errno != 0 => {
                    return Err(FlowError::Netlink {
                        context: "conntrack dump",
                        errno: errno.abs(),
                    })
                }
                _ => {}
            }
        }
    }
}

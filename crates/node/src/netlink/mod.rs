//! A minimal, synchronous netlink client: what a sliver start and destroy need, without a child
//! process (`ip`, `tc`, `nft`) or an async runtime on the hot path.
//!
//! - this file: the socket, a message builder (headers, attributes, nests) and an attribute
//!   walker; requests are acknowledged one by one, nftables batches as a whole;
//! - [`route`]: links (veth with its peer born in the sliver's netns), addresses, routes, HTB;
//! - [`nft`]: set elements and rule listing/deletion in the node's nftables table.
//!
//! Everything here is encoding: which objects to create, and when, is `net`'s business.

pub mod nft;
pub mod route;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One netlink message under construction: header, fixed family header, attributes.
pub(crate) struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    pub fn new(ty: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set by `finish`
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        Self {
            buf,
            nests: Vec::new(),
        }
    }

    /// Appends raw bytes (a family header such as `ifinfomsg`), padded to 4 bytes.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    pub fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.raw(data)
    }

    pub fn u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    /// A NUL-terminated string attribute.
    pub fn str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut b = Vec::with_capacity(s.len() + 1);
        b.extend_from_slice(s.as_bytes());
        b.push(0);
        self.attr(ty, &b)
    }

    pub fn nest(&mut self, ty: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn end(&mut self) -> &mut Self {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn add_flags(&mut self, flags: u16) {
        let f = u16::from_ne_bytes([self.buf[6], self.buf[7]]) | flags;
        self.buf[6..8].copy_from_slice(&f.to_ne_bytes());
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// One reply message: its type and what follows the netlink header.
pub(crate) struct Reply {
    pub ty: u16,
    pub payload: Vec<u8>,
}

/// A netlink socket of one protocol, bound in the network namespace of the thread that opened it.
pub(crate) struct Socket {
    fd: OwnedFd,
    seq: u32,
}

pub(crate) const NETLINK_ROUTE: i32 = 0;
pub(crate) const NETLINK_NETFILTER: i32 = 12;

impl Socket {
    pub fn open(protocol: i32) -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        Self::from_fd(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// A netlink socket opened elsewhere (it stays bound to the namespace it was made in).
    pub fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        // A lost reply must not hang the node manager.
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a valid timeval and its size is passed.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, seq: 1 })
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: sends `bytes` (a valid slice) to the kernel (a zeroed sockaddr_nl is pid 0).
        let r = unsafe {
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one datagram and splits it into (sequence, reply) messages.
    fn recv(&mut self) -> io::Result<Vec<(u32, Reply)>> {
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: receives into `buf`, a valid writable buffer of the given length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut at = 0;
        let n = n as usize;
        while at + NLMSG_HDRLEN <= n {
            let len = u32_at(&buf, at) as usize;
            if len < NLMSG_HDRLEN || at + len > n {
                break;
            }
            let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            let seq = u32_at(&buf, at + 8);
            out.push((
                seq,
                Reply {
                    ty,
                    payload: buf[at + NLMSG_HDRLEN..at + len].to_vec(),
                },
            ));
            at += align4(len);
        }
        Ok(out)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends one request and waits for its acknowledgement.
    pub fn request(&mut self, mut msg: Msg) -> io::Result<()> {
        let seq = self.next_seq();
        msg.add_flags(NLM_F_ACK);
        self.send(&msg.finish(seq))?;
        loop {
            for (s, r) in self.recv()? {
                if s == seq && r.ty == NLMSG_ERROR {
                    return ack_result(&r.payload);
                }
            }
        }
    }

    /// Sends one request and returns its replies, up to its acknowledgement.
    pub fn query(&mut self, mut msg: Msg) -> io::Result<Vec<Reply>> {
        let seq = self.next_seq();
        msg.add_flags(NLM_F_ACK);
        self.send(&msg.finish(seq))?;
        let mut out = Vec::new();
        loop {
            for (s, r) in self.recv()? {
                if s != seq {
                    continue;
                }
                if r.ty == NLMSG_ERROR {
                    ack_result(&r.payload)?;
                    return Ok(out);
                }
                out.push(r);
            }
        }
    }

    /// Sends a dump request; every reply message until the end of the dump.
    pub fn dump(&mut self, mut msg: Msg) -> io::Result<Vec<Reply>> {
        let seq = self.next_seq();
        msg.add_flags(NLM_F_DUMP);
        self.send(&msg.finish(seq))?;
        let mut out = Vec::new();
        loop {
            for (s, r) in self.recv()? {
                if s != seq {
                    continue;
                }
                match r.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        ack_result(&r.payload)?;
                        return Ok(out);
                    }
                    _ => out.push(r),
                }
            }
        }
    }

    /// Sends `msgs` as one nfnetlink batch (applied atomically: all or none) and waits for
    /// each message's acknowledgement; the first error, if any.
    pub fn batch(&mut self, msgs: Vec<Msg>) -> io::Result<()> {
        let mut bytes = Vec::new();
        let begin = self.next_seq();
        bytes.extend(nft::batch_marker(nft::NFNL_MSG_BATCH_BEGIN).finish(begin));
        let mut pending = std::collections::BTreeSet::new();
        for mut m in msgs {
            let seq = self.next_seq();
            m.add_flags(NLM_F_ACK);
            bytes.extend(m.finish(seq));
            pending.insert(seq);
        }
        let end = self.next_seq();
        bytes.extend(nft::batch_marker(nft::NFNL_MSG_BATCH_END).finish(end));
        self.send(&bytes)?;
        let mut first_err = None;
        while !pending.is_empty() {
            for (s, r) in self.recv()? {
                if r.ty == NLMSG_ERROR && pending.remove(&s) {
                    if let Err(e) = ack_result(&r.payload) {
                        first_err.get_or_insert(e);
                        // An aborted batch acknowledges nothing else.
                        pending.clear();
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An NLMSG_ERROR payload: 0 is an acknowledgement, else a negative errno.
fn ack_result(payload: &[u8]) -> io::Result<()> {
    if payload.len() < 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short netlink ack",
        ));
    }
    match i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]) {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

/// Walks the attributes in `b`: (type without flags, value).
pub(crate) fn attrs(b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= b.len() {
        let len = u16::from_ne_bytes([b[at], b[at + 1]]) as usize;
        let ty = u16::from_ne_bytes([b[at + 2], b[at + 3]]) & 0x3fff;
        if len < 4 || at + len > b.len() {
            break;
        }
        out.push((ty, &b[at + 4..at + len]));
        at += align4(len);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_padded_and_nests_measured() {
        let mut m = Msg::new(16, NLM_F_CREATE);
        m.raw(&[1, 2, 3]).nest(18).str(1, "veth").end().u32(4, 7);
        let b = m.finish(9);
        assert_eq!(u32_at(&b, 0) as usize, b.len());
        assert_eq!(u32_at(&b, 8), 9);
        // header 16 + raw 4 + nest header 4 + "veth\0" attr 12 + u32 attr 8
        assert_eq!(b.len(), 44);
        let top = attrs(&b[20..]);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].0, 18);
        assert_eq!(attrs(top[0].1), vec![(1u16, &b"veth\0"[..])]);
        assert_eq!(top[1], (4, &7u32.to_ne_bytes()[..]));
    }
}

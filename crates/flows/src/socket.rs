//! The kernel side: a raw `NETLINK_NETFILTER` socket. Small and unsafe-by-necessity; every
//! `unsafe` block is a plain syscall on a descriptor this struct owns.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// What one receive attempt got.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv {
    /// A datagram of this many bytes from the kernel is in the buffer.
    Data(usize),
    /// Nothing arrived within the wait.
    Empty,
    /// The kernel dropped messages because our receive buffer was full (ENOBUFS).
    Overrun,
    /// A datagram not sent by the kernel (port id ≠ 0), or cut short: skipped.
    Skipped,
}

pub struct NlSocket {
    fd: OwnedFd,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl NlSocket {
    /// Opens a socket in the calling thread's network namespace (a netlink socket stays bound to
    /// the namespace it was created in, whatever thread uses it later), subscribed to the given
    /// nfnetlink multicast groups.
    pub fn open(groups: &[u32]) -> io::Result<NlSocket> {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        })?;
        // SAFETY: fd is a fresh descriptor we own from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // Group n is bit n-1 of the bind mask (all conntrack groups are < 32).
        addr.nl_groups = groups
            .iter()
            .filter(|g| (1..=32).contains(*g))
            .fold(0, |m, g| m | 1 << (g - 1));
        // SAFETY: addr is a valid sockaddr_nl and the length matches it.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        Ok(NlSocket { fd })
    }

    fn setsockopt(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
    ) -> io::Result<()> {
        // SAFETY: value is a live c_int and the length says so.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                &value as *const libc::c_int as *const libc::c_void,
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .map(|_| ())
    }

    fn getsockopt(&self, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: value/len are live and sized for an int option.
        cvt(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                &mut value as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        })?;
        Ok(value)
    }

    /// Sets the receive buffer, past `net.core.rmem_max` when we have CAP_NET_ADMIN (a burst of
    /// short flows must fit while we are busy); returns what the kernel granted.
    pub fn set_rcvbuf(&self, bytes: usize) -> io::Result<usize> {
        let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        if self
            .setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want)
            .is_err()
        {
            self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, want)?;
        }
        Ok(self.getsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF)?.max(0) as usize)
    }

    /// Asks the kernel to report failed deliveries to the sender. For conntrack this switches on
    /// reliable destroy events: an entry whose destroy event did not fit in our buffer is kept on
    /// a dying list and the event is delivered again later, instead of being lost.
    pub fn set_broadcast_error(&self) -> io::Result<()> {
        self.setsockopt(libc::SOL_NETLINK, libc::NETLINK_BROADCAST_ERROR, 1)
    }

    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl all-zero = the kernel (port id 0).
        let mut to: libc::sockaddr_nl = unsafe { mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: msg and to are live for the call; lengths match.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &to as *const libc::sockaddr_nl as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != msg.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short netlink send",
            ));
        }
        Ok(())
    }

    /// Receives one datagram into `buf`, waiting up to `wait` (zero: do not wait).
    pub fn recv(&self, buf: &mut [u8], wait: Duration) -> io::Result<Recv> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            0 => return Ok(Recv::Empty),
            r if r < 0 => {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::Interrupted {
                    Ok(Recv::Empty)
                } else {
                    Err(e)
                };
            }
            _ => {}
        }
        // SAFETY: as above.
        let mut from: libc::sockaddr_nl = unsafe { mem::zeroed() };
        let mut fromlen = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; we fill the fields recvmsg reads.
        let mut mh: libc::msghdr = unsafe { mem::zeroed() };
        mh.msg_name = &mut from as *mut libc::sockaddr_nl as *mut libc::c_void;
        mh.msg_namelen = fromlen;
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        // SAFETY: mh points at live buffers sized as declared.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut mh, libc::MSG_DONTWAIT) };
        fromlen = mh.msg_namelen;
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOBUFS) => Ok(Recv::Overrun),
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(Recv::Empty),
                _ => Err(e),
            };
        }
        // Only the kernel speaks for conntrack; a truncated datagram cannot be framed reliably.
        if from.nl_pid != 0
            || (fromlen as usize) < mem::size_of::<libc::sockaddr_nl>()
            || mh.msg_flags & libc::MSG_TRUNC != 0
        {
            return Ok(Recv::Skipped);
        }
        Ok(Recv::Data(n as usize))
    }
}

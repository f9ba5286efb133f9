//! rtnetlink: links, addresses, routes and the HTB shaper, each one request on a socket of the
//! calling thread's network namespace ([`in_netns`] runs code in a sliver's).

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{Msg, Socket, NETLINK_ROUTE, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWQDISC: u16 = 36;
const RTM_NEWTCLASS: u16 = 40;

const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_INIT: u16 = 2;
const TCA_HTB_RATE64: u16 = 6;
const TCA_HTB_CEIL64: u16 = 7;

const IFF_UP: u32 = 1;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const TC_H_ROOT: u32 = 0xFFFF_FFFF;
const TC_LINKLAYER_ETHERNET: u8 = 1;

/// `struct ifinfomsg`: family, type, index, flags, change.
fn ifinfo(index: u32, up: bool) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = libc::AF_UNSPEC as u8;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    if up {
        b[8..12].copy_from_slice(&IFF_UP.to_ne_bytes());
        b[12..16].copy_from_slice(&IFF_UP.to_ne_bytes());
    }
    b
}

pub(crate) struct Route(Socket);

impl Route {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        Socket::open(NETLINK_ROUTE).map(Self)
    }

    /// A copy of process `pid`'s rtnetlink socket `fd` (`pidfd_getfd`, which needs ptrace
    /// rights over it): a socket in that process's network namespace, with no thread of ours
    /// joining it.
    pub fn of_process(pid: u32, fd: i32) -> io::Result<Self> {
        // SAFETY: pidfd_open(2) with a pid and no flags; returns a new descriptor or -1.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0) };
        if pidfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as libc::c_int) };
        // SAFETY: pidfd_getfd(2) on our pidfd with a descriptor number and no flags; returns a
        // new close-on-exec descriptor or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                pidfd.as_raw_fd() as libc::c_long,
                fd as libc::c_long,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Socket::from_fd(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }).map(Self)
    }

    /// `ip link add NAME type veth peer name PEER netns NETNS index PEER_INDEX`: the peer is
    /// born in `netns`, so nothing ever has to move it (moving a device waits for the network's
    /// RCU grace periods, ~16 ms here), with index `peer_index` there (0: the kernel's choice).
    /// Both ends are down (a veth cannot be brought up before its peer is linked to it): see
    /// [`Self::set_up`].
    pub fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        netns: &File,
        peer_index: u32,
    ) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.raw(&ifinfo(0, false))
            .str(IFLA_IFNAME, name)
            .nest(IFLA_LINKINFO)
            .str(IFLA_INFO_KIND, "veth")
            .nest(IFLA_INFO_DATA)
            .nest(VETH_INFO_PEER)
            .raw(&ifinfo(peer_index, false))
            .str(IFLA_IFNAME, peer)
            .u32(IFLA_NET_NS_FD, netns.as_raw_fd() as u32)
            .end()
            .end()
            .end();
        self.0.request(m)
    }

    /// `ip link del` by index.
    pub fn del_link(&mut self, index: u32) -> io::Result<()> {
        let mut m = Msg::new(RTM_DELLINK, 0);
        m.raw(&ifinfo(index, false));
        self.0.request(m)
    }

    /// `ip link del NAME`.
    pub fn del_link_named(&mut self, name: &str) -> io::Result<()> {
        let mut m = Msg::new(RTM_DELLINK, 0);
        m.raw(&ifinfo(0, false)).str(IFLA_IFNAME, name);
        self.0.request(m)
    }

    /// `ip link set up` by index.
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, 0);
        m.raw(&ifinfo(index, true));
        self.0.request(m)
    }

    /// `ip link set INDEX name NAME up`, in one request: a device is renamed only while down,
    /// and the kernel renames before it changes the flags.
    pub fn rename_up(&mut self, index: u32, name: &str) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, 0);
        m.raw(&ifinfo(index, true)).str(IFLA_IFNAME, name);
        self.0.request(m)
    }

    /// `ip addr add ADDR/32 dev INDEX`.
    pub fn add_addr32(&mut self, index: u32, addr: Ipv4Addr) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
        let mut h = [0u8; 8];
        h[0] = libc::AF_INET as u8;
        h[1] = 32;
        h[4..8].copy_from_slice(&index.to_ne_bytes());
        m.raw(&h)
            .attr(IFA_LOCAL, &addr.octets())
            .attr(IFA_ADDRESS, &addr.octets());
        self.0.request(m)
    }

    /// `ip route replace DST/32 dev INDEX` (scope link), or with `gateway` and `dst` None,
    /// `ip route replace default via GATEWAY dev INDEX`.
    pub fn replace_route(
        &mut self,
        index: u32,
        dst: Option<Ipv4Addr>,
        gateway: Option<Ipv4Addr>,
    ) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
        let scope = if gateway.is_some() {
            RT_SCOPE_UNIVERSE
        } else {
            RT_SCOPE_LINK
        };
        let h = [
            libc::AF_INET as u8,
            if dst.is_some() { 32 } else { 0 },
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            scope,
            RTN_UNICAST,
            0,
            0,
            0,
            0,
        ];
        m.raw(&h);
        if let Some(d) = dst {
            m.attr(RTA_DST, &d.octets());
        }
        if let Some(g) = gateway {
            m.attr(RTA_GATEWAY, &g.octets());
        }
        m.u32(RTA_OIF, index);
        self.0.request(m)
    }

    /// The HTB shaper of `net::shaping_script` on a device without one: root qdisc `1:` whose
    /// default class `1:1` has rate = ceil = `rate` bits/s and `burst` bytes of burst.
    pub fn add_htb(&mut self, index: u32, rate: u64, burst: u64) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE);
        m.raw(&tcmsg(index, 0x0001_0000, TC_H_ROOT))
            .str(TCA_KIND, "htb");
        // struct tc_htb_glob: version, rate2quantum, defcls, debug, direct_pkts.
        let glob: Vec<u8> = [3u32, 10, 1, 0, 0]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        m.nest(TCA_OPTIONS).attr(TCA_HTB_INIT, &glob).end();
        self.0.request(m)?;

        let bytes_per_s = (rate / 8).max(1);
        // The kernel keeps buffers in psched ticks of 64 ns.
        let ticks = u32::try_from(burst.saturating_mul(1_000_000_000) / bytes_per_s / 64)
            .unwrap_or(u32::MAX);
        let spec = ratespec(bytes_per_s);
        let mut opt = Vec::with_capacity(44);
        opt.extend_from_slice(&spec); // rate
        opt.extend_from_slice(&spec); // ceil
        for v in [ticks, ticks, 0, 0, 0] {
            // buffer, cbuffer, quantum (0: the kernel derives it), level, prio
            opt.extend_from_slice(&v.to_ne_bytes());
        }
        let mut m = Msg::new(RTM_NEWTCLASS, NLM_F_CREATE | NLM_F_EXCL);
        m.raw(&tcmsg(index, 0x0001_0001, 0x0001_0000))
            .str(TCA_KIND, "htb")
            .nest(TCA_OPTIONS)
            .attr(TCA_HTB_PARMS, &opt);
        if bytes_per_s >= u64::from(u32::MAX) {
            m.attr(TCA_HTB_RATE64, &bytes_per_s.to_ne_bytes())
                .attr(TCA_HTB_CEIL64, &bytes_per_s.to_ne_bytes());
        }
        m.end();
        self.0.request(m)
    }
}

/// `struct tcmsg`: family, ifindex, handle, parent, info.
fn tcmsg(index: u32, handle: u32, parent: u32) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&handle.to_ne_bytes());
    b[12..16].copy_from_slice(&parent.to_ne_bytes());
    b
}

/// `struct tc_ratespec` for `bytes_per_s`, link layer Ethernet (so no rate table is needed).
fn ratespec(bytes_per_s: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[1] = TC_LINKLAYER_ETHERNET;
    let r = u32::try_from(bytes_per_s).unwrap_or(u32::MAX);
    b[8..12].copy_from_slice(&r.to_ne_bytes());
    b
}

/// The index of interface `name` in the calling thread's network namespace.
pub(crate) fn index_of(name: &str) -> io::Result<u32> {
    let c =
        std::ffi::CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: if_nametoindex reads a valid NUL-terminated string and returns 0 or an index.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// Runs `f` on a short-lived thread that joined the network namespace `netns`: the caller's
/// threads stay where they are, and no `nsenter` process is needed.
pub(crate) fn in_netns<T: Send>(
    netns: &File,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratespec_and_headers_are_laid_out_like_the_kernel_structs() {
        let r = ratespec(625_000);
        assert_eq!(r[1], TC_LINKLAYER_ETHERNET);
        assert_eq!(u32::from_ne_bytes([r[8], r[9], r[10], r[11]]), 625_000);
        let t = tcmsg(3, 0x1_0001, 0x1_0000);
        assert_eq!(u32::from_ne_bytes([t[4], t[5], t[6], t[7]]), 3);
        let i = ifinfo(2, true);
        assert_eq!(u32::from_ne_bytes([i[8], i[9], i[10], i[11]]), IFF_UP);
    }
}

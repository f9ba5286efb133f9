//! A sliver's link to the node: a veth pair whose host end (`names::veth_name`) carries the
//! node's gateway address and the sliver's /32 route, and whose other end is `eth0` in the
//! sliver's network namespace, with the sliver's address, its routes and its egress shaper. All
//! by netlink, no child process.
//!
//! Making the pair is most of the cost of wiring a sliver (the kernel registers two devices:
//! 0.3–0.7 ms on a 2-core VM), and it needs nothing of the sliver. So a launcher waiting in the
//! pool (`launchers`) gets its pair ahead, into the network namespace it made while waiting
//! ([`Veth::make`]): host end down under a temporary name, and a netlink socket kept open inside
//! the namespace. A start then only names, addresses and raises it ([`Veth::wire`]), beside the
//! launcher building the root filesystem. A pair made ahead and never used goes with its
//! namespace (it holds a reference on it through the socket until dropped).

use std::fs::File;
use std::net::Ipv4Addr;

use crate::error::NodeError;
use crate::names::{self, NodeNames};
use crate::net::{burst_of, ifindex, nl_err};
use crate::netlink::route::{self, Route};

/// A veth pair into a sliver's network namespace, not yet configured.
pub(crate) struct Veth {
    /// The host end's index (its name may still be temporary).
    host: u32,
    host_name: String,
    /// A socket in the sliver's network namespace (a netlink socket stays in the namespace it
    /// was made in), and `eth0`'s index there.
    inside: Route,
    eth0: u32,
}

impl Veth {
    /// A veth pair whose host end is `host_name` (down) and whose other end is `eth0` in
    /// `netns`, born there; the namespace's loopback is raised. An interface left under that
    /// name by a previous incarnation whose namespace is somehow still alive is deleted first.
    pub(crate) fn make(netns: &File, host_name: &str) -> Result<Self, NodeError> {
        let mut rt = Route::open().map_err(|e| nl_err("opening route socket", e))?;
        if let Some(i) = ifindex(host_name) {
            let _ = rt.del_link(i);
        }
        rt.add_veth(host_name, "eth0", netns)
            .map_err(|e| nl_err(&format!("creating veth {host_name}"), e))?;
        let made = route::index_of(host_name).and_then(|host| {
            let inside = route::in_netns(netns, || {
                let mut rt = Route::open()?;
                rt.set_up(route::index_of("lo")?)?;
                let eth0 = route::index_of("eth0")?;
                Ok((rt, eth0))
            });
            match inside {
                Ok((inside, eth0)) => Ok(Self {
                    host,
                    host_name: host_name.to_string(),
                    inside,
                    eth0,
                }),
                Err(e) => {
                    // Its peer would keep the name `eth0` taken in the namespace.
                    let _ = rt.del_link(host);
                    Err(e)
                }
            }
        });
        made.map_err(|e| nl_err(&format!("setting up veth {host_name}"), e))
    }

    /// Plugs the sliver `slice` into the node's network with `addr`, and shapes its egress to
    /// `rate` bits/s if given: the host end takes the sliver's name, the gateway address and
    /// the route to `addr`; `eth0` takes `addr` and routes to and via the gateway.
    pub(crate) fn wire(
        mut self,
        n: &NodeNames,
        slice: &str,
        addr: Ipv4Addr,
        rate: Option<u64>,
    ) -> Result<(), NodeError> {
        let veth = names::veth_name(slice);
        let gw = n.gateway();
        let mut rt = Route::open().map_err(|e| nl_err("opening route socket", e))?;
        let host = self.host;
        let named = if self.host_name == veth {
            Ok(())
        } else {
            if let Some(i) = ifindex(&veth) {
                // Left from a previous incarnation whose netns is somehow still alive.
                let _ = rt.del_link(i);
            }
            rt.set_name(host, &veth)
        };
        named
            .and_then(|()| rt.add_addr32(host, gw))
            .and_then(|()| rt.set_up(host))
            .and_then(|()| rt.replace_route(host, Some(addr), None))
            .map_err(|e| nl_err(&format!("configuring {veth}"), e))?;
        let (inside, eth0) = (&mut self.inside, self.eth0);
        inside
            .add_addr32(eth0, addr)
            .and_then(|()| inside.set_up(eth0))
            .and_then(|()| inside.replace_route(eth0, Some(gw), None))
            .and_then(|()| inside.replace_route(eth0, None, Some(gw)))
            .and_then(|()| match rate {
                Some(r) => inside.add_htb(eth0, r, burst_of(r)),
                None => Ok(()),
            })
            .map_err(|e| nl_err("configuring the sliver's eth0", e))
    }
}

impl Veth {
    /// Deletes a pair no start took (both ends go at once), rather than leave it to the
    /// kernel's teardown of its namespace, which happens later, in the background.
    pub(crate) fn delete(self) {
        if let Ok(mut rt) = Route::open() {
            let _ = rt.del_link(self.host);
        }
    }
}

/// The temporary name of the host end of a pair made ahead for launcher `pid`: outside the
/// sliver naming scheme (`names::is_veth_name`), so nothing takes it for a sliver's.
pub(crate) fn pooled_name(pid: u32) -> String {
    format!("slp-{pid:x}")
}

/// [`Veth::make`] and [`Veth::wire`] at once, for a launcher that had no pair made ahead.
pub(crate) fn attach(
    n: &NodeNames,
    slice: &str,
    netns: &File,
    addr: Ipv4Addr,
    rate: Option<u64>,
) -> Result<(), NodeError> {
    Veth::make(netns, &names::veth_name(slice))?.wire(n, slice, addr, rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_names_fit_an_interface_name_and_are_no_slivers() {
        let name = pooled_name(u32::MAX);
        assert!(name.len() <= 15, "{name}");
        assert!(!names::is_veth_name(&name));
    }
}

//! A sliver's link to the node: a veth pair whose host end (`names::veth_name`) carries the
//! node's gateway address and the sliver's /32 route, and whose other end is `eth0` in the
//! sliver's network namespace, with the sliver's address, its routes and its egress shaper. All
//! by netlink, no child process: the pair is made with its peer born in the namespace
//! ([`Veth::make`]), then named, addressed and raised ([`Veth::wire`]); the inside is
//! configured on a netlink socket made by a thread that joined the namespace (a socket stays in
//! the namespace it was made in).

use std::fs::File;
use std::net::Ipv4Addr;

use crate::error::NodeError;
use crate::names::{self, NodeNames};
use crate::net::{burst_of, ifindex, nl_err};
use crate::netlink::route::{self, Route};

/// A veth pair into a sliver's network namespace, not yet configured.
pub(crate) struct Veth {
    /// The host end's index, and a socket in the node's namespace.
    host: u32,
    host_rt: Route,
    /// A socket in the sliver's network namespace (a netlink socket stays in the namespace it
    /// was made in), and `eth0`'s index there.
    inside: Route,
    eth0: u32,
}

impl Veth {
    /// A veth pair whose host end is `host_name` (down) and whose other end is `eth0` in
    /// `netns`, born there; the namespace's loopback is raised. An interface left under that
    /// name by a previous incarnation whose namespace is somehow still alive is deleted first.
    /// `inside`: a socket in `netns` (the launcher's, see `sandbox::launch`), which is new, so
    /// its loopback has index 1 and `eth0` is given index 2; without one, a thread that joins
    /// `netns` opens one and looks the indexes up.
    pub(crate) fn make(
        netns: &File,
        host_name: &str,
        inside: Option<Route>,
    ) -> Result<Self, NodeError> {
        let mut rt = Route::open().map_err(|e| nl_err("opening route socket", e))?;
        if let Some(i) = ifindex(host_name) {
            let _ = rt.del_link(i);
        }
        let eth0 = if inside.is_some() { NEW_NETNS_ETH0 } else { 0 };
        rt.add_veth(host_name, "eth0", netns, eth0)
            .map_err(|e| nl_err(&format!("creating veth {host_name}"), e))?;
        let made = route::index_of(host_name).and_then(|host| {
            let (inside, eth0) = match inside {
                Some(mut rt) => {
                    rt.set_up(LOOPBACK)?;
                    (rt, NEW_NETNS_ETH0)
                }
                None => route::in_netns(netns, || {
                    let mut rt = Route::open()?;
                    rt.set_up(route::index_of("lo")?)?;
                    let eth0 = route::index_of("eth0")?;
                    Ok((rt, eth0))
                })?,
            };
            Ok(Self {
                host,
                host_rt: rt,
                inside,
                eth0,
            })
        });
        made.map_err(|e| {
            // Its peer would keep the name `eth0` taken in the namespace.
            if let Ok(mut rt) = Route::open() {
                let _ = rt.del_link_named(host_name);
            }
            nl_err(&format!("setting up veth {host_name}"), e)
        })
    }

    /// Plugs the sliver `slice` into the node's network with `addr`, and shapes its egress to
    /// `rate` bits/s if given: the host end takes the gateway address and the route to `addr`;
    /// `eth0` takes `addr` and routes to and via the gateway.
    pub(crate) fn wire(
        mut self,
        n: &NodeNames,
        slice: &str,
        addr: Ipv4Addr,
        rate: Option<u64>,
    ) -> Result<(), NodeError> {
        let veth = names::veth_name(slice);
        let gw = n.gateway();
        let (rt, host) = (&mut self.host_rt, self.host);
        rt.add_addr32(host, gw)
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

/// The loopback's index in every network namespace.
const LOOPBACK: u32 = 1;
/// The index `eth0` gets in a new network namespace (where only the loopback exists).
const NEW_NETNS_ETH0: u32 = 2;

/// [`Veth::make`] and [`Veth::wire`] at once.
pub(crate) fn attach(
    n: &NodeNames,
    slice: &str,
    netns: &File,
    inside: Option<Route>,
    addr: Ipv4Addr,
    rate: Option<u64>,
) -> Result<(), NodeError> {
    Veth::make(netns, &names::veth_name(slice), inside)?.wire(n, slice, addr, rate)
}

//! A sliver's link to the node: a veth pair whose host end (`names::veth_name`) carries the
//! node's gateway address and the sliver's /32 route, and whose other end is `eth0` in the
//! sliver's network namespace, with the sliver's address, its routes and its egress shaper. All
//! by netlink, no child process: the pair is made with its peer born in the namespace, and the
//! inside is configured on a netlink socket in that namespace — the launcher's (see
//! `sandbox::launch`), or one made by a thread that joined it (a socket stays in the namespace it
//! was made in).

use std::fs::File;
use std::net::Ipv4Addr;

use crate::error::NodeError;
use crate::names::{self, NodeNames};
use crate::net::{burst_of, ifindex, nl_err};
use crate::netlink::route::{self, Route};

/// The loopback's index in every network namespace.
const LOOPBACK: u32 = 1;
/// The index `eth0` gets in a new network namespace (where only the loopback exists).
const NEW_NETNS_ETH0: u32 = 2;

/// Plugs the sliver `slice`, whose network namespace is `netns`, into the node's network with
/// `addr`, and shapes its egress to `rate` bits/s if given: the host end takes the gateway
/// address and the route to `addr`; `eth0` takes `addr` and routes to and via the gateway.
///
/// `inside`: a socket in `netns`, which is new, so its loopback has index 1 and `eth0` is given
/// index 2; without one, a thread that joins `netns` opens one and looks the indexes up. An
/// interface left under the host end's name by a previous incarnation whose namespace is somehow
/// still alive is deleted first.
pub(crate) fn attach(
    n: &NodeNames,
    slice: &str,
    netns: &File,
    inside: Option<Route>,
    addr: Ipv4Addr,
    rate: Option<u64>,
) -> Result<(), NodeError> {
    let veth = names::veth_name(slice);
    let gw = n.gateway();
    let mut rt = Route::open().map_err(|e| nl_err("opening route socket", e))?;
    if let Some(i) = ifindex(&veth) {
        let _ = rt.del_link(i);
    }
    let pinned = if inside.is_some() { NEW_NETNS_ETH0 } else { 0 };
    rt.add_veth(&veth, "eth0", netns, pinned)
        .map_err(|e| nl_err(&format!("creating veth {veth}"), e))?;
    let made = route::index_of(&veth).and_then(|host| {
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
        Ok((host, inside, eth0))
    });
    let (host, mut inside, eth0) = made.map_err(|e| {
        // Its peer would keep the name `eth0` taken in the namespace.
        let _ = rt.del_link_named(&veth);
        nl_err(&format!("setting up veth {veth}"), e)
    })?;
    rt.add_addr32(host, gw)
        .and_then(|()| rt.set_up(host))
        .and_then(|()| rt.replace_route(host, Some(addr), None))
        .map_err(|e| nl_err(&format!("configuring {veth}"), e))?;
    inside
        .set_up(eth0)
        .map_err(|e| nl_err("setting the sliver's eth0 up", e))?;
    configure_eth0(&mut inside, eth0, addr, gw, rate)
}

/// `eth0` (index `eth0`, on socket `inside` in the sliver's namespace) takes `addr`, the route
/// to gateway `gw` and the default route through it, and the egress shaper at `rate`.
fn configure_eth0(
    inside: &mut Route,
    eth0: u32,
    addr: Ipv4Addr,
    gw: Ipv4Addr,
    rate: Option<u64>,
) -> Result<(), NodeError> {
    inside
        .add_addr32(eth0, addr)
        .and_then(|()| inside.replace_route(eth0, Some(gw), None))
        .and_then(|()| inside.replace_route(eth0, None, Some(gw)))
        .and_then(|()| match rate {
            Some(r) => inside.add_htb(eth0, r, burst_of(r)),
            None => Ok(()),
        })
        .map_err(|e| nl_err("configuring the sliver's eth0", e))
}

/// A veth pair made ahead for a warm sliver (`warm`) in its new network namespace `netns`, whose
/// socket `inside` is: the host end, down, under the temporary name `temp` with the gateway
/// address; `eth0` and the loopback up. Returns the host end's index; [`plug`] finishes it.
pub(crate) fn prepare(
    n: &NodeNames,
    temp: &str,
    netns: &File,
    inside: &mut Route,
) -> Result<u32, NodeError> {
    let mut rt = Route::open().map_err(|e| nl_err("opening route socket", e))?;
    rt.add_veth(temp, "eth0", netns, NEW_NETNS_ETH0)
        .map_err(|e| nl_err(&format!("creating veth {temp}"), e))?;
    route::index_of(temp)
        .and_then(|host| {
            rt.add_addr32(host, n.gateway())?;
            inside.set_up(LOOPBACK)?;
            inside.set_up(NEW_NETNS_ETH0)?;
            Ok(host)
        })
        .map_err(|e| {
            let _ = rt.del_link_named(temp);
            nl_err(&format!("setting up veth {temp}"), e)
        })
}

/// Finishes a pair made by [`prepare`] for sliver `slice`, as [`attach`] makes one: the host
/// end (index `host`) takes the sliver's name, comes up and routes to `addr`; `eth0` takes
/// `addr`, its routes and the egress shaper.
pub(crate) fn plug(
    n: &NodeNames,
    slice: &str,
    host: u32,
    mut inside: Route,
    addr: Ipv4Addr,
    rate: Option<u64>,
) -> Result<(), NodeError> {
    let veth = names::veth_name(slice);
    let gw = n.gateway();
    let mut rt = Route::open().map_err(|e| nl_err("opening route socket", e))?;
    rt.rename_up(host, &veth)
        .and_then(|()| rt.replace_route(host, Some(addr), None))
        .map_err(|e| nl_err(&format!("configuring {veth}"), e))?;
    configure_eth0(&mut inside, NEW_NETNS_ETH0, addr, gw, rate)
}

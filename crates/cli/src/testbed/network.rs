//! The testbed's network: the host bridge `slup0` and, per node, a namespace `slup-n<i>` joined
//! to it by a veth (`eth0` inside) with the node's address and a default route via the bridge.
//! The host ends of the veths go with their namespaces; `down` deletes the bridge.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::process::run;
use super::{host_addr, netns, node_addr, BRIDGE};

/// Creates the bridge and the namespaces of nodes 1..=`nodes`.
pub(super) fn setup_network(nodes: u8) -> Result<()> {
    let h = host_addr();
    run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    run("ip", &["addr", "add", &format!("{h}/24"), "dev", BRIDGE])?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    for i in 1..=nodes {
        let ns = netns(i);
        run("ip", &["netns", "add", &ns])?;
        run(
            "ip",
            &[
                "link", "add", &ns, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        run("ip", &["link", "set", &ns, "master", BRIDGE, "up"])?;
        configure_node(&ns, i)?;
    }
    Ok(())
}

/// Inside node `i`'s namespace `ns`: loopback, `eth0` with the node's address, default route.
fn configure_node(ns: &str, i: u8) -> Result<()> {
    let batch = format!(
        "link set lo up\naddr add {}/24 dev eth0\nlink set eth0 up\nroute add default via {}\n",
        node_addr(i),
        host_addr()
    );
    let mut c = Command::new("ip");
    c.args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().context("running ip")?;
    if let Some(mut w) = child.stdin.take() {
        w.write_all(batch.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "configuring {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

//! Root integration tests of sliver networking: NAT to the uplink and node port forwards.
//! The "uplink" is a network namespace the test creates; nothing outside the machine is touched.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::*;
use slicelab_model::tags::{PortForward, Protocol};
use slicelab_node::Runtime;

#[test]
fn sliver_reaches_uplink_through_nat_and_node_ports_reach_sliver() {
    let Some(()) = root_or_skip("sliver_reaches_uplink_through_nat_and_node_ports_reach_sliver")
    else {
        return;
    };
    let node = TestNode::new(4);
    let up = UplinkNs::new(4);
    let empty_node = node.counts();

    // A server on the uplink side records who connected.
    let server_addr: SocketAddr = (up.peer, 9000).into();
    let server = up.run(move || {
        let l = TcpListener::bind(server_addr).expect("bind uplink server");
        let (mut c, peer) = l.accept().expect("accept");
        let _ = c.write_all(b"pong\n");
        peer
    });

    let mut web = spec(
        "pl_web",
        Some("echo ready; exec nc -ll -p 80 -e /bin/echo hello-from-web"),
    );
    web.resources.ports = vec![PortForward {
        node_port: 18080,
        sliver_port: 80,
        protocol: Protocol::Tcp,
    }];
    node.start(&web);
    node.start(&spec("pl_other", Some("echo ready; exec sleep 100000")));
    node.wait_console("pl_web", "ready", Duration::from_secs(10));
    node.wait_console("pl_other", "ready", Duration::from_secs(10));

    // Outbound: masqueraded to the node's address on the uplink.
    let out = node.sh_ok("pl_web", &format!("echo ping | nc -w 3 {} 9000", up.peer));
    assert_eq!(out.trim(), "pong");
    let peer = server.join().expect("server thread");
    assert_eq!(peer.ip(), std::net::IpAddr::V4(up.host), "not masqueraded");

    // Inbound: the node's port 18080 on its uplink address reaches the sliver's port 80.
    let host = up.host;
    let got = up
        .run(move || {
            let mut s = TcpStream::connect_timeout(&(host, 18080).into(), Duration::from_secs(3))
                .expect("connect node port");
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            got
        })
        .join()
        .unwrap();
    assert_eq!(got.trim(), "hello-from-web");
    // Another sliver reaches it only through the node's public port, not its address.
    let gw = node.names().gateway();
    let via_port = node.sh_ok("pl_other", &format!("echo | nc -w 3 {gw} 18080"));
    assert_eq!(via_port.trim(), "hello-from-web");
    let direct = node.sh(
        "pl_other",
        &format!("echo | nc -w 2 {} 80", node.address("pl_web")),
    );
    assert!(
        !String::from_utf8_lossy(&direct.stdout).contains("hello"),
        "direct sliver-to-sliver traffic"
    );

    // Removing the port forward takes effect live.
    let mut closed = web.clone();
    closed.resources.ports.clear();
    node.rt().update(&closed).unwrap();
    let refused = node.sh("pl_other", &format!("echo | nc -w 2 {gw} 18080"));
    assert!(!String::from_utf8_lossy(&refused.stdout).contains("hello"));

    for s in ["pl_web", "pl_other"] {
        node.rt().destroy(s).unwrap();
    }
    assert_eq!(node.counts(), empty_node, "destroy leaked kernel objects");
    drop(up);
    node.assert_no_leaks_after_cleanup();
}

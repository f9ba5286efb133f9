//! Root integration tests of the sliver runtime (no central needed). Skipped when not root.

mod common;

use std::time::Duration;

use common::*;
use slicelab_node::Runtime;

#[test]
fn sliver_is_isolated_and_confined() {
    let Some(()) = root_or_skip("sliver_is_isolated_and_confined") else { return };
    let node = TestNode::new(1);
    node.start(&spec("pl_one", Some("echo ready; exec sleep 100000")));
    node.wait_console("pl_one", "ready", Duration::from_secs(10));
    assert_eq!(node.sh_ok("pl_one", "hostname").trim(), "pl_one");
    let ps = node.sh_ok("pl_one", "ps -o pid,comm");
    eprintln!("{ps}");
}

//! `cargo bench -p slicelab-node`: median create → initscript-running time of N slivers
//! (env SLICELAB_BENCH_N, default 50) next to `runc run`, `lxc-execute` with a veth and
//! `unshare` of the same image, with each start step's median and the destroy times; then the
//! RSS of this process (it holds the runtime, as the node manager does) with 100 slivers running
//! (env SLICELAB_BENCH_RSS_N).
//! Needs root; prints a skip reason otherwise. Run by `cargo test --all-targets` (without the
//! `--bench` flag cargo bench passes), it is only a smoke test with 3 slivers.

use std::net::Ipv4Addr;

use slicelab_node::{bench_sliver, NodeNames, RuntimeConfig};

fn main() {
    // This binary is also the sliver init it benchmarks.
    slicelab_node::maybe_run_sliver_init();
    if !nix::unistd::geteuid().is_root() {
        println!("bench sliver: skipped (needs root)");
        return;
    }
    let benching = std::env::args().any(|a| a == "--bench");
    let n = std::env::var("SLICELAB_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 50 } else { 3 });
    let dir = match tempfile::Builder::new().prefix("slicelab-bench").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("bench sliver: {e}");
            std::process::exit(1);
        }
    };
    let names = NodeNames {
        gateway_if: "slbench0".into(),
        subnet: Ipv4Addr::new(10, 79, 250, 0),
        nft_table: "slicelab_bench".into(),
        cgroup_parent: "slicelab-bench".into(),
    };
    let mut cfg = RuntimeConfig::new(dir.path());
    cfg.names = names.clone();
    let rss_slivers = std::env::var("SLICELAB_BENCH_RSS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 100 } else { 0 });
    let result = bench_sliver(n, rss_slivers, &cfg);
    let _ = slicelab_node::cleanup(dir.path(), &names, true);
    match result {
        Ok(r) => print!("{r}"),
        Err(e) => {
            eprintln!("bench sliver: {e}");
            std::process::exit(1);
        }
    }
}

//! Host binary for tests and benchmarks: the sliver init / exec helper (via
//! `maybe_run_sliver_init`), plus `reconcile-file` — a reconciler driven by a desired-state JSON
//! file instead of central, used to test crash-safety by SIGKILLing it.

use std::path::PathBuf;
use std::time::Duration;

use slicelab_model::DesiredSlivers;
use slicelab_node::{reconcile, LinuxRuntime, NodeNames, RuntimeConfig};

fn main() {
    slicelab_node::maybe_run_sliver_init();
    let args: Vec<String> = std::env::args().collect();
    // reconcile-file STATE_DIR DESIRED_JSON BRIDGE SUBNET TABLE CGROUP_PARENT
    if args.len() == 8 && args[1] == "reconcile-file" {
        let subnet = match args[5].parse() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bad subnet: {e}");
                std::process::exit(2);
            }
        };
        let cfg = RuntimeConfig {
            names: NodeNames {
                gateway_if: args[4].clone(),
                subnet,
                nft_table: args[6].clone(),
                cgroup_parent: args[7].clone(),
            },
            ..RuntimeConfig::new(PathBuf::from(&args[2]))
        };
        // SAFETY: plain prctl; see daemon::run.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let rt = match LinuxRuntime::new(cfg) {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        loop {
            if let Ok(bytes) = std::fs::read(&args[3]) {
                if let Ok(d) = serde_json::from_slice::<DesiredSlivers>(&bytes) {
                    match reconcile(&rt, &d, slicelab_model::time::now()) {
                        Ok(o) if !o.actions.is_empty() => {
                            println!("applied {} actions", o.actions.len())
                        }
                        Ok(_) => {}
                        Err(e) => eprintln!("reconcile: {e}"),
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    eprintln!("usage: slicelab-sliver-init reconcile-file STATE_DIR DESIRED_JSON BRIDGE SUBNET TABLE CGROUP_PARENT");
    std::process::exit(2);
}

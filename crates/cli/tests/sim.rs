//! The scale simulation end to end at a size CI affords: simulated agents apply a change made
//! through the API, and the report's numbers are real measurements.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_nodes_apply_api_changes() {
    let nodes: usize = std::env::var("SLICELAB_SIM_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let report = slicelab_sim::run(slicelab_sim::SimConfig {
        nodes,
        exe: env!("CARGO_BIN_EXE_slicelab").into(),
        db: None,
        timeout: Duration::from_secs(120),
        agents: None,
        pin: false,
    })
    .await
    .expect("simulation runs");
    println!("{report}");
    assert_eq!(report.nodes, nodes);
    for p in [&report.add, &report.delete] {
        assert!(p.p50 <= p.p99 && p.p99 <= p.max);
        assert!(
            p.max > Duration::ZERO,
            "every agent took some time to apply the change"
        );
        assert!(p.max < Duration::from_secs(120));
    }
    assert!(report.central_cpu_s > 0.0, "central did work");
    assert!(report.central_rss_peak_mb > 1.0);
    assert!(report.requests_per_s > 0.0);
}

/// `--centrals 2`: the same scenario against one central and against two replicas on one
/// PostgreSQL database, in one run, both measured (PostgreSQL only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_measured_next_to_one_central() {
    let Ok(pg) = std::env::var("SLICELAB_TEST_PG") else {
        assert!(std::env::var("CI").is_err(), "CI must set SLICELAB_TEST_PG");
        eprintln!("SKIPPED: set SLICELAB_TEST_PG to compare replicas (PostgreSQL only)");
        return;
    };
    let report = slicelab_sim::run_with_replicas(
        slicelab_sim::SimConfig {
            nodes: 40,
            exe: env!("CARGO_BIN_EXE_slicelab").into(),
            db: Some(pg),
            timeout: Duration::from_secs(120),
            agents: None,
            pin: false,
        },
        2,
    )
    .await
    .expect("simulation runs");
    println!("{report}");
    let replicas = report.replicas.as_ref().expect("the replicas' run");
    assert_eq!(replicas.centrals, 2);
    for p in [
        &report.add,
        &report.delete,
        &replicas.run.add,
        &replicas.run.delete,
    ] {
        assert!(p.p50 <= p.p99 && p.p99 <= p.max);
        assert!(p.max > Duration::ZERO && p.max < Duration::from_secs(120));
    }
    assert!(replicas.run.central_cpu_s > 0.0 && replicas.run.requests_per_s > 0.0);
    assert!(report.to_string().contains("2 replicas"));
}

/// `slicelab sim -o json` prints its figures as JSON (durations in milliseconds), for scripts and
/// the benchmark table.
#[test]
fn sim_prints_json_when_asked() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_slicelab"))
        .args(["-o", "json", "sim", "--nodes", "10", "--timeout", "120"])
        .env_remove("SLICELAB_OUTPUT")
        .output()
        .expect("running slicelab sim");
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    assert_eq!(v["nodes"], 10);
    for phase in ["add", "delete"] {
        let p = &v[phase];
        let (p50, p99, max) = (
            p["p50_ms"].as_f64().expect("p50"),
            p["p99_ms"].as_f64().expect("p99"),
            p["max_ms"].as_f64().expect("max"),
        );
        assert!(0.0 < max && p50 <= p99 && p99 <= max, "{v}");
    }
    assert!(v["central_cpu_s"].as_f64().expect("cpu") > 0.0);
    assert!(
        v["central_cpu_per_change_s"]
            .as_f64()
            .expect("cpu per change")
            > 0.0
    );
    assert_eq!(v["changes"], 2);
    assert_eq!(v["agents"], 10);
    assert!(v["replicas"].is_null());
}

/// Past the agents one process holds, every node is registered and concerned by the changes and
/// a spread sample of them runs an agent (`--nodes 100000`); here at a small size, pinned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_of_the_nodes_runs_agents() {
    let report = slicelab_sim::run(slicelab_sim::SimConfig {
        nodes: 60,
        exe: env!("CARGO_BIN_EXE_slicelab").into(),
        db: None,
        timeout: Duration::from_secs(120),
        agents: Some(12),
        pin: true,
    })
    .await
    .expect("simulation runs");
    println!("{report}");
    assert_eq!((report.nodes, report.agents, report.changes), (60, 12, 2));
    assert!(report.to_string().contains("12 of them"));
    assert!(report.single().cpu_per_change_s() > 0.0);
    assert!(report.add.max > Duration::ZERO && report.delete.max > Duration::ZERO);
}

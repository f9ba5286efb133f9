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

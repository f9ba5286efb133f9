//! `slicelab sim`: runs the scale simulation (`slicelab_sim`) and prints its report.

use anyhow::{Context, Result};

use crate::args::SimArgs;
use crate::output::print;

pub(crate) async fn sim(a: SimArgs) -> Result<()> {
    let exe = std::env::current_exe().context("finding the slicelab binary")?;
    eprintln!(
        "simulating {} nodes against a new central (this takes a while)...",
        a.nodes
    );
    let report = slicelab_sim::run(slicelab_sim::SimConfig {
        nodes: a.nodes,
        exe,
        db: a.db,
        timeout: std::time::Duration::from_secs(a.timeout),
    })
    .await?;
    print(&report.to_string())
}

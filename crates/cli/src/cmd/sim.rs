//! `slicelab sim`: runs the scale simulation (`slicelab_sim`) and prints its report.

use anyhow::{bail, Context, Result};

use crate::args::{Output, SimArgs};
use crate::output::emit;

pub(crate) async fn sim(out: Output, a: SimArgs) -> Result<()> {
    if a.agent_process {
        return Ok(slicelab_sim::serve_agents().await?);
    }
    let exe = std::env::current_exe().context("finding the slicelab binary")?;
    let timeout = std::time::Duration::from_secs(a.timeout);
    let report = if a.centrals > 1 {
        let db = replica_server(a.db)?;
        eprintln!(
            "simulating {} nodes against one central, then {} central replicas on PostgreSQL \
             (this takes a while)...",
            a.nodes, a.centrals
        );
        let cfg = slicelab_sim::SimConfig {
            nodes: a.nodes,
            exe,
            db: Some(db),
            timeout,
            agents: a.agents,
            pin: a.pin,
        };
        slicelab_sim::run_with_replicas(cfg, usize::from(a.centrals)).await?
    } else {
        eprintln!(
            "simulating {} nodes against a new central (this takes a while)...",
            a.nodes
        );
        slicelab_sim::run(slicelab_sim::SimConfig {
            nodes: a.nodes,
            exe,
            db: a.db,
            timeout,
            agents: a.agents,
            pin: a.pin,
        })
        .await?
    };
    emit(out, &report.to_json(), |_| report.to_string())
}

/// The PostgreSQL server replicas share: `--db`, else `SLICELAB_TEST_PG`, else `SLICELAB_DB`.
fn replica_server(db: Option<String>) -> Result<String> {
    let pg = |u: &str| u.starts_with("postgres://") || u.starts_with("postgresql://");
    if let Some(u) = db {
        if pg(&u) {
            return Ok(u);
        }
        bail!("--centrals needs PostgreSQL (replicas share one database): --db {u:?} is not a postgres:// URL");
    }
    for var in ["SLICELAB_TEST_PG", "SLICELAB_DB"] {
        if let Ok(u) = std::env::var(var) {
            if pg(&u) {
                return Ok(u);
            }
        }
    }
    bail!(
        "--centrals needs PostgreSQL (replicas share one database): give --db postgres://USER:PW@HOST/DB \
         (a role that may create databases) or set SLICELAB_TEST_PG"
    )
}

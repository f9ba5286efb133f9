//! `slicelab sim`: the size of a simulated platform.

use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
With --centrals N (N > 1) the scenario runs twice, each on a new database of the PostgreSQL
server given by --db (or SLICELAB_TEST_PG, or SLICELAB_DB), as a role that may create
databases: against one central, then against N central replicas on one database, the simulated
nodes spread over them and the changes written through the first; propagation is printed side
by side.")]
pub struct SimArgs {
    /// How many simulated nodes.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Database for the simulated central [default: a temporary SQLite file]; with
    /// `--centrals N`, a PostgreSQL server (`postgres://USER:PW@HOST/DB`).
    #[arg(long)]
    pub db: Option<String>,
    /// Longest wait for one phase, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Central replicas to compare with one central (1: one central only).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub centrals: u16,
}

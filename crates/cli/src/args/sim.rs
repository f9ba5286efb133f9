//! `slicelab sim`: the size of a simulated platform.

use clap::Args;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// How many simulated nodes.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Database for the simulated central [default: a temporary SQLite file].
    #[arg(long)]
    pub db: Option<String>,
    /// Longest wait for one phase, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

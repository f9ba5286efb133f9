//! `slicelab flows`: a slice's or node's network flows.

use clap::Args;

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// The slice whose flows to show.
    #[arg(long)]
    pub slice: Option<String>,
    /// The node whose flows to show.
    #[arg(long)]
    pub node: Option<String>,
    /// Start of the window [default: 24h].
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

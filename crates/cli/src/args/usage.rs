//! `slicelab usage`: whose resource usage, over which window.

use clap::Args;

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The slice (omit for the platform, or use --node / --site).
    #[arg(conflicts_with_all = ["node", "site", "top"])]
    pub slice: Option<String>,
    /// A node's own totals.
    #[arg(long, conflicts_with_all = ["site", "top"])]
    pub node: Option<String>,
    /// A site's nodes' totals.
    #[arg(long, conflicts_with = "top")]
    pub site: Option<String>,
    /// The top consumers among slices instead of a series.
    #[arg(long)]
    pub top: bool,
    /// With --top: rank by cpu, tx or rx.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "tx", "rx"])]
    pub by: String,
    /// Start of the window: a duration ago (24h, 7d), RFC 3339 or Unix seconds [default: 24h].
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Length of one point, e.g. 10m, 1h [default: about 100 points].
    #[arg(long, value_name = "DURATION")]
    pub step: Option<String>,
}

//! `slicelab defaults`: the default allocation of slivers whose slice has no tag for a resource.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DefaultsCmd {
    /// Show the platform defaults and every node's overrides.
    Show,
    /// Set a platform default (admin), or with --node that node's override.
    Set {
        /// A resource tag: cpu_share, cpu_pct, mem_max, pids_max, disk_max, net_max_rate,
        /// net_max_kbyte, net_share.
        tag: String,
        value: String,
        /// Override the default on this node only.
        #[arg(long)]
        node: Option<String>,
    },
    /// Remove a platform default, or with --node that node's override.
    #[command(visible_alias = "rm")]
    Unset {
        tag: String,
        #[arg(long)]
        node: Option<String>,
    },
}

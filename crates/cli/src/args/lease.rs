//! `slicelab lease`: reservations of reservable nodes for a slice.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum LeaseCmd {
    /// Reserve NODE for SLICE: during the window only that slice's sliver runs there.
    Add {
        slice: String,
        node: String,
        /// Start: RFC 3339, a date, Unix seconds, or `now` [default: now].
        #[arg(long, value_name = "TIME")]
        start: Option<String>,
        /// How long, e.g. `2h`, `30m`, `1d`.
        #[arg(long, value_name = "DURATION", conflicts_with = "end")]
        duration: Option<String>,
        /// End: RFC 3339, a date or Unix seconds.
        #[arg(long, value_name = "TIME", required_unless_present = "duration")]
        end: Option<String>,
    },
    /// List current and future leases.
    #[command(visible_alias = "ls")]
    List {
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        slice: Option<String>,
    },
    /// Cancel a lease.
    #[command(visible_alias = "rm")]
    Delete { id: i64 },
}

//! `slicelab lookup`: which slice sent traffic from a node to an address.

use clap::Args;

use super::common::TrustArgs;

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The node the traffic came from (hostname).
    #[arg(long)]
    pub node: String,
    /// The address that received it.
    #[arg(long)]
    pub remote: String,
    #[arg(long)]
    pub port: Option<u16>,
    /// Start of the window [default: 24h].
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Central to ask, if not the logged-in one.
    #[arg(long, env = "SLICELAB_CENTRAL")]
    pub central: Option<String>,
    /// How to trust that central (with --central; else the login's).
    #[command(flatten)]
    pub trust: TrustArgs,
}

//! `slicelab exec`: which slivers run the command, and how.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The slice whose slivers run the command.
    pub slice: String,
    /// Only these nodes (hostnames, comma-separated) [default: all nodes of the slice].
    #[arg(long, value_delimiter = ',', value_name = "HOST,...")]
    pub nodes: Vec<String>,
    /// Give up on a node after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Port of the nodes' SSH gateways.
    #[arg(long, short = 'p', value_name = "PORT", default_value_t = 22)]
    pub port: u16,
    /// SSH private key [default: ssh's own defaults, plus the local testbed's generated key].
    #[arg(long, short = 'i', value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Run every node through an OpenSSH client process (reads ~/.ssh/config, agents and
    /// passphrase-protected keys) [default: SSH in-process, handing a node to OpenSSH only when
    /// its host key or accepted key is beyond the in-process client].
    #[arg(long)]
    pub openssh: bool,
    /// At most this many nodes at once.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub parallel: usize,
    /// The command and its arguments (after `--`), run with `sh -c` in each sliver.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

//! `slicelab capture`: which sliver's packets, which ones, for how long, and where to.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The slice whose sliver to capture.
    pub slice: String,
    /// The node (hostname) of the sliver.
    #[arg(long, short = 'n', value_name = "HOST")]
    pub node: String,
    /// Which packets: a tcpdump filter expression (`man pcap-filter`), compiled to BPF and
    /// applied in the node's kernel [default: every packet].
    #[arg(long, short = 'f', value_name = "EXPR")]
    pub filter: Option<String>,
    /// How long to capture (`30s`, `5m`; at most 1h).
    #[arg(long, short = 'd', value_name = "DURATION", default_value = "30s")]
    pub duration: String,
    /// Stop after this many packets.
    #[arg(long, short = 'c', value_name = "N")]
    pub packets: Option<u64>,
    /// Bytes kept of each packet (64 to 262144).
    #[arg(long, short = 's', value_name = "BYTES")]
    pub snaplen: Option<u32>,
    /// Where the pcapng goes: a file, or `-` for standard output (pipe it into `tcpdump -r -`
    /// or Wireshark).
    #[arg(long, short = 'w', value_name = "FILE", default_value = "-")]
    pub write: String,
    /// Port of the nodes' SSH gateways.
    #[arg(long, short = 'p', value_name = "PORT", default_value_t = 22)]
    pub port: u16,
    /// SSH private key [default: ssh's own defaults, plus the local testbed's generated key].
    #[arg(long, short = 'i', value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

//! `slicelab traffic`: a measured run between two slivers of a slice.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use slicelab_model::traffic::{parse_duration, parse_rate, Pattern};

#[derive(Debug, Args)]
pub struct TrafficArgs {
    /// The slice whose slivers send and receive.
    pub slice: String,
    /// The node whose sliver sends.
    #[arg(long, value_name = "NODE")]
    pub from: String,
    /// The node whose sliver receives.
    #[arg(long, value_name = "NODE")]
    pub to: String,
    /// TCP (a paced stream) instead of UDP.
    #[arg(long, conflicts_with = "udp")]
    pub tcp: bool,
    /// UDP datagrams (the default).
    #[arg(long)]
    pub udp: bool,
    /// Payload rate: bits per second with tc/iperf3 units (10mbit, 500k, 1G).
    #[arg(long, value_name = "RATE", default_value = "10mbit", value_parser = rate_parser)]
    pub rate: u64,
    /// How long to send (10s, 2m).
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = duration_parser)]
    pub duration: u32,
    /// How sends are spaced: fixed gaps, exponential gaps, or 1 s at twice the rate then 1 s off.
    #[arg(long, value_enum, default_value_t = PatternArg::Constant)]
    pub pattern: PatternArg,
    /// UDP payload per datagram or TCP bytes per write [default: 1460 for UDP, 131072 for TCP].
    #[arg(long, value_name = "BYTES")]
    pub size: Option<u32>,
    /// The address the sender aims at [default: the --to node's hostname, resolved by the
    /// sending node].
    #[arg(long, value_name = "HOST")]
    pub to_address: Option<String>,
    /// Port of the nodes' SSH gateways.
    #[arg(long, short = 'p', value_name = "PORT", default_value_t = 22)]
    pub port: u16,
    /// SSH private key [default: ssh's own defaults, plus the local testbed's generated key].
    #[arg(long, short = 'i', value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PatternArg {
    Constant,
    Poisson,
    OnOff,
}

impl From<PatternArg> for Pattern {
    fn from(p: PatternArg) -> Pattern {
        match p {
            PatternArg::Constant => Pattern::Constant,
            PatternArg::Poisson => Pattern::Poisson,
            PatternArg::OnOff => Pattern::OnOff,
        }
    }
}

fn rate_parser(s: &str) -> Result<u64, String> {
    parse_rate(s).map_err(|e| e.message)
}

fn duration_parser(s: &str) -> Result<u32, String> {
    parse_duration(s).map_err(|e| e.message)
}

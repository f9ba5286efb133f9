//! `slicelab peer`: peer authorities that share nodes with this one (federation).

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PeerCmd {
    /// Register peer authority NAME at URL (admins). Both admins register each other with the
    /// same secret, exchanged out of band; NAME must be the peer's `--authority` name.
    Add {
        name: String,
        url: String,
        /// The SHA-256 fingerprint of the peer central's CA (what its start printed).
        #[arg(long, value_name = "FP")]
        ca_fingerprint: Option<String>,
        /// A file holding the shared secret (at least 32 characters; `-`: standard input).
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        /// How many slivers the peer's slices may hold on our nodes together [default: 10].
        #[arg(long, value_name = "N")]
        max_slivers: Option<i64>,
        /// CPU its slices may reserve here together (`cpu_reserve`), percent of one core
        /// [default: 0: no guarantees].
        #[arg(long, value_name = "PCT")]
        max_cpu_reserve: Option<i64>,
        /// Memory its slices may reserve here together (`mem_reserve`), MiB [default: 0].
        #[arg(long, value_name = "MIB")]
        max_mem_reserve: Option<i64>,
    },
    /// List the peers, their state and the last exchange.
    #[command(visible_alias = "ls")]
    List,
    /// Show one peer.
    Show { name: String },
    /// Change a peer's URL, CA, secret or quota (admins).
    Update {
        name: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, value_name = "FP")]
        ca_fingerprint: Option<String>,
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        #[arg(long, value_name = "N")]
        max_slivers: Option<i64>,
        #[arg(long, value_name = "PCT")]
        max_cpu_reserve: Option<i64>,
        #[arg(long, value_name = "MIB")]
        max_mem_reserve: Option<i64>,
    },
    /// Stop every sliver of the peer's slices here at once (kept) and refuse its changes; the
    /// peer sees the reason (admins).
    Suspend {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Let a suspended peer's slivers run again (admins).
    Resume { name: String },
    /// Remove a peer: its slivers here are destroyed, its nodes leave our slices (admins).
    #[command(visible_alias = "rm")]
    Remove { name: String },
}

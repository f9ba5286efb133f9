//! `slicelab central`: the central authority daemon's flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
On the first start an admin account is created; its password is taken from
SLICELAB_ADMIN_PASSWORD, or generated and printed once.

Central serves HTTPS: with --tls-cert/--tls-key, or else with a CA of its own made on the
first start, whose fingerprint it prints (clients pin it: `slicelab login --ca-fingerprint`).")]
pub struct CentralArgs {
    /// Database: `sqlite://PATH` (created on first start) or `postgres://...`
    /// [default: sqlite:///var/lib/slicelab/central.db as root, else in the user's data dir].
    #[arg(long, env = "SLICELAB_DB", value_name = "URL")]
    pub db: Option<String>,
    /// Address to serve the API on.
    #[arg(
        long,
        env = "SLICELAB_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Email of the admin created on the first start.
    #[arg(
        long,
        env = "SLICELAB_ADMIN_EMAIL",
        value_name = "EMAIL",
        default_value = "admin@localhost"
    )]
    pub admin_email: String,
    /// Directory of image blobs (layers; may grow to many GB)
    /// [default: `blobs/` beside a SQLite database, else /var/lib/slicelab/blobs].
    #[arg(long, env = "SLICELAB_BLOB_DIR", value_name = "DIR")]
    pub blob_dir: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM; with --tls-key) instead of central's own CA.
    #[arg(
        long,
        env = "SLICELAB_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "SLICELAB_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Where central keeps its own CA (made on the first start; replicas share it)
    /// [default: `tls/` beside a SQLite database, else /var/lib/slicelab/tls].
    #[arg(long, env = "SLICELAB_TLS_DIR", value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// A name or address clients use to reach central, for its own CA's server certificate
    /// (the host name, localhost and the listen address are always included). Repeatable.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub tls_name: Vec<String>,
    /// Serve plain HTTP (only behind a TLS-terminating proxy, or on loopback).
    #[arg(long, env = "SLICELAB_NO_TLS", conflicts_with_all = ["tls_cert", "tls_dir"])]
    pub no_tls: bool,
    /// This central's authority name among peers (a login_base-like name, e.g. `plc`): its
    /// slices are `NAME_<slice>` on peers' nodes. Without it, central does not federate.
    #[arg(long, env = "SLICELAB_AUTHORITY", value_name = "NAME")]
    pub authority: Option<String>,
    /// Seconds between exchanges with each peer (registry, slices, status).
    #[arg(long, env = "SLICELAB_PEER_SYNC", value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub peer_sync: u64,
}

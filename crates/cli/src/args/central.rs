//! `slicelab central`: the central authority daemon's flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
On the first start an admin account is created; its password is taken from
SLICELAB_ADMIN_PASSWORD, or generated and printed once.")]
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
}

//! `slicelab up` / `slicelab down`: the local testbed's size and directory.

use std::path::PathBuf;

use clap::Args;

/// Where `slicelab up` keeps the testbed's state, logs and keys.
pub const DEFAULT_TESTBED_DIR: &str = "/var/lib/slicelab/up";

#[derive(Debug, Args)]
pub struct UpArgs {
    /// How many nodes (node managers) to start.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=50))]
    pub nodes: u8,
    /// Over how many demo sites to spread them (`demo`, `site2`, ...).
    #[arg(long, value_name = "S", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=20))]
    pub sites: u8,
    /// Start the testbed, print how to use it and return (stop it with `slicelab down`).
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Port of central's API on the testbed bridge.
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// The testbed's directory (state, logs, keys).
    #[arg(long, env = "SLICELAB_UP_DIR", value_name = "DIR", default_value = DEFAULT_TESTBED_DIR)]
    pub dir: PathBuf,
    /// Do not offer the Debian image (built with mmdebstrap once, then cached in
    /// $SLICELAB_IMAGE_CACHE or /var/cache/slicelab/images; needs network the first time).
    #[arg(long)]
    pub no_debian_image: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// The testbed's directory.
    #[arg(long, env = "SLICELAB_UP_DIR", value_name = "DIR", default_value = DEFAULT_TESTBED_DIR)]
    pub dir: PathBuf,
}

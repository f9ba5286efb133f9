//! `slicelab image`: sliver root filesystem images on this node.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Import a directory tree as a sliver root filesystem image on this node.
    #[command(after_help = "Example: slicelab image import base /srv/rootfs/debian")]
    Import {
        /// The image's name, as slices name it in their `image` tag.
        name: String,
        /// The root filesystem to copy.
        dir: PathBuf,
        /// The node manager's state directory.
        #[arg(
            long,
            env = "SLICELAB_STATE_DIR",
            value_name = "DIR",
            default_value = "/var/lib/slicelab/node"
        )]
        state_dir: PathBuf,
    },
}

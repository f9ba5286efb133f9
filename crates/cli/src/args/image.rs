//! `slicelab image`: sliver root filesystem images on this node.

use std::path::PathBuf;

use clap::Subcommand;

use super::common::DEFAULT_NODE_STATE_DIR;

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
            default_value = DEFAULT_NODE_STATE_DIR
        )]
        state_dir: PathBuf,
    },
}

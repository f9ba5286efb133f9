//! `slicelab image`: sliver root filesystem images, published at central (`list`, `show`,
//! `delete`) and on this node (`import`).

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
    /// List the images published at central that you may use.
    #[command(visible_alias = "ls")]
    List,
    /// Show an image published at central: its digest, config and layers.
    Show {
        /// The image's name.
        name: String,
    },
    /// Delete an image published at central (no slice's `image` tag may name it).
    #[command(visible_alias = "rm")]
    Delete {
        /// The image's name.
        name: String,
    },
}

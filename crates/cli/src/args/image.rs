//! `slicelab image`: sliver root filesystem images, published at central and fetched by nodes
//! the first time a sliver needs one.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Publish an image from a file: an OCI image layout (directory or tar), a `docker save`
    /// archive, or a plain root filesystem tarball (.tar, .tar.gz, .tar.zst).
    #[command(
        after_help = "Examples:\n  slicelab image import mydebian rootfs.tar.zst\n  \
                            docker save ubuntu:24.04 -o ubuntu.tar && slicelab image import ubuntu ubuntu.tar"
    )]
    Import {
        /// The image's name, as slices name it in their `image` tag.
        name: String,
        /// The archive or directory.
        file: PathBuf,
        #[command(flatten)]
        publish: PublishArgs,
    },
    /// Publish an image pulled from an OCI distribution registry (Docker Hub, GHCR, a
    /// `docker-registry` of your own): anonymous, or with --user and a password on stdin.
    #[command(after_help = "Examples:\n  slicelab image pull alpine alpine:3.20\n  \
                            slicelab image pull tools ghcr.io/acme/tools:1.2 --user me --password-stdin\n  \
                            slicelab image pull mine 127.0.0.1:5000/mine:v1 --insecure")]
    Pull {
        /// The image's name at central.
        name: String,
        /// `[HOST[:PORT]/]REPO[:TAG|@sha256:...]` (no host: Docker Hub).
        reference: String,
        /// Registry user (the password is read from stdin).
        #[arg(long, requires = "password_stdin")]
        user: Option<String>,
        /// Read the registry password from stdin.
        #[arg(long, requires = "user")]
        password_stdin: bool,
        /// Plain HTTP to the registry (for one on loopback or a lab network).
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        publish: PublishArgs,
    },
    /// Build a Debian image with mmdebstrap (as root) and publish it.
    #[command(
        after_help = "Example: slicelab image build py --debian bookworm --include python3,iproute2"
    )]
    Build {
        /// The image's name at central.
        name: String,
        /// The Debian suite (bookworm, trixie, ...).
        #[arg(long, value_name = "SUITE")]
        debian: String,
        /// Packages on top of `minbase`, comma-separated.
        #[arg(long, value_name = "PKG,...", value_delimiter = ',')]
        include: Vec<String>,
        /// The Debian mirror [default: `http://deb.debian.org/debian`].
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
        #[command(flatten)]
        publish: PublishArgs,
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

/// Who may use a published image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VisibilityArg {
    /// Slices of the image's site only (counts against the site's image quota).
    Site,
    /// Every slice (admins only).
    Platform,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Who may use it.
    #[arg(long, value_enum, default_value_t = VisibilityArg::Site)]
    pub visibility: VisibilityArg,
    /// The site it belongs to (login base) [default: your first site].
    #[arg(long, value_name = "LOGIN_BASE")]
    pub site: Option<String>,
}

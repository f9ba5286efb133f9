//! slicelab's images: content-addressed root filesystems.
//!
//! - [`archive`]: open an image on disk (an OCI layout, its tar, a `docker save` tar or a plain
//!   root filesystem tarball) and write one as an OCI layout;
//! - [`registry`]: pull an image from an OCI distribution (v2) registry;
//! - [`unpack`]: unpack one layer into a directory that becomes an overlayfs lower layer, as host
//!   root, safely (the crate's security boundary);
//! - [`build`]: build a Debian root filesystem tarball with mmdebstrap;
//! - [`digest`], [`source`], [`error`]: what they share.
//!
//! No `unsafe`: the `*at()` and `openat2` calls go through rustix.

#![forbid(unsafe_code)]

pub mod archive;
pub mod build;
mod compress;
pub mod digest;
pub mod error;
mod platform;
pub mod registry;
pub mod source;
pub mod unpack;

pub use error::ImageError;
pub use source::{ImageSource, LocalLayer};
pub use unpack::{unpack_layer, unpack_layer_within, Limits, UnpackReport};

//! Images on the node.
//!
//! * [`builtin`]: the built-in busybox image (`base`) and trees imported by hand into
//!   `<state_dir>/images/<name>` — what a slice gets when its `image` names no published image.
//! * [`store`]: published images, content-addressed: one unpacked directory per layer, shared by
//!   every image and every sliver that uses it, stacked as overlayfs lower layers; the manifest
//!   each was fetched for; garbage collection under a disk budget.
//! * [`fetch`]: fetching an image lazily, the first time a sliver needs it, from central (or a
//!   mirror), verifying every byte by digest, resuming interrupted downloads, with progress and
//!   back-off.

pub mod builtin;
pub mod fetch;
pub mod gate;
pub mod store;

pub use builtin::{ensure_image, import_image, list_images, DEFAULT_IMAGE};

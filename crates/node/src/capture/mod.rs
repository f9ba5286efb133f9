//! Packet capture of a sliver (`slicelab capture SLICE --node NODE`, issue #14): on the host end
//! of the sliver's veth ([`crate::names::veth_name`]), so the sliver can neither hide nor forge
//! what is recorded; a tcpdump filter compiled to classic BPF by libpcap and applied in the
//! kernel; bounded in time, packets and bytes by [`slicelab_model::CaptureLimits`]; written as a
//! pcapng stream that `tcpdump -r -` and Wireshark read while it grows.
//!
//! - [`filter`]: compiling and checking filter expressions ([`compile_filter`]);
//! - `live`: the capture loop ([`run_capture`]);
//! - `pcapng`: the stream's blocks.

pub mod filter;
mod live;
mod pcapng;

use thiserror::Error;

pub use filter::{compile_filter, CompiledFilter};
pub use live::{run_capture, TICK};

/// Why a capture could not run. A client that goes away is not an error: the capture ends with
/// [`slicelab_model::CaptureEnd::Client`].
#[derive(Debug, Error)]
pub enum CaptureError {
    /// The filter expression does not compile; `message` is libpcap's.
    #[error("bad filter {expr:?}: {message}")]
    Filter { expr: String, message: String },
    /// The interface name is malformed or names no interface in this network namespace.
    #[error("interface {ifname:?}: {message}")]
    Interface { ifname: String, message: String },
    /// libpcap could not open a capture on the interface (permission, socket); its message.
    #[error("cannot capture on {ifname:?}: {message}")]
    Open { ifname: String, message: String },
    /// Reading packets failed mid-capture.
    #[error("capture failed: {0}")]
    Read(String),
    /// A block could not be encoded as pcapng (not an I/O error of the output).
    #[error("pcapng: {0}")]
    Encode(String),
}

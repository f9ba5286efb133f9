//! The capture loop: a libpcap live capture on one interface, its filter attached in the kernel,
//! read without blocking and polled at most [`TICK`] apart so the duration, the caller's stop flag
//! and the flush to a live reader are all checked at that pace.
//!
//! Filtering boundary: libpcap attaches the compiled program to its `AF_PACKET` socket with
//! `SO_ATTACH_FILTER`, so the kernel drops non-matching packets before they reach user space.
//! Packets queued between the socket's bind and the attach are not let through either: libpcap
//! (1.10) filters what was already in its ring in user space with the same program before handing
//! any packet over. No packet that fails the filter is written.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use pcap::{Active, Capture, Precision};
use slicelab_model::{CaptureEnd, CaptureLimits, CaptureSummary};

use super::pcapng::{packet_block_len, PcapNgOut, WriteFailed};
use super::CaptureError;

/// The longest the loop waits before looking at the clock, the stop flag and flushing.
pub const TICK: Duration = Duration::from_millis(100);

/// Kernel buffer for packets not yet read (libpcap's default is 2 MiB).
const BUFFER_BYTES: i32 = 8 << 20;

/// Captures on `ifname` until a bound in `limits` is reached, `stop` is set, or writing to `out`
/// fails (the client went away: the capture ends with [`CaptureEnd::Client`], not an error).
/// Blocking: run it on a thread of its own (`spawn_blocking`). Packets in both directions are
/// captured; on the host end of a sliver's veth "in" is what the sliver sent.
pub fn run_capture(
    ifname: &str,
    limits: &CaptureLimits,
    out: &mut dyn Write,
    stop: &AtomicBool,
) -> Result<CaptureSummary, CaptureError> {
    check_ifname(ifname)?;
    let mut cap = open(ifname, limits)?;
    let deadline = Instant::now() + limits.duration;
    let linktype = u32::try_from(cap.get_datalink().0).unwrap_or(1);
    let mut packets = 0;
    let (bytes, ended) = match PcapNgOut::start(out, linktype, limits.snaplen, ifname) {
        Err(WriteFailed::Io) => (0, CaptureEnd::Client),
        Err(WriteFailed::Encode(m)) => return Err(CaptureError::Encode(m)),
        Ok(mut w) => {
            let ended = pump(&mut cap, &mut w, limits, deadline, stop, &mut packets)?;
            (w.bytes(), ended)
        }
    };
    let dropped = cap
        .stats()
        .map(|s| u64::from(s.dropped) + u64::from(s.if_dropped))
        .unwrap_or(0);
    Ok(CaptureSummary {
        packets,
        bytes,
        dropped,
        ended,
    })
}

/// Interface names are at most 15 bytes and never contain `/`, whitespace or NUL.
fn check_ifname(ifname: &str) -> Result<(), CaptureError> {
    let bad = |message: &str| CaptureError::Interface {
        ifname: ifname.to_string(),
        message: message.to_string(),
    };
    if ifname.is_empty()
        || ifname.len() > 15
        || ifname
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(bad("not an interface name"));
    }
    let name = std::ffi::CString::new(ifname).map_err(|_| bad("not an interface name"))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::if_nametoindex(name.as_ptr()) } == 0 {
        return Err(bad("no such interface"));
    }
    Ok(())
}

/// A live, non-blocking capture on `ifname` with the filter attached.
fn open(ifname: &str, limits: &CaptureLimits) -> Result<Capture<Active>, CaptureError> {
    let open_err = |e: pcap::Error| CaptureError::Open {
        ifname: ifname.to_string(),
        message: e.to_string(),
    };
    let snaplen = i32::try_from(limits.snaplen).unwrap_or(i32::MAX);
    let mut cap = Capture::from_device(ifname)
        .map_err(open_err)?
        .promisc(false)
        .snaplen(snaplen)
        .immediate_mode(true)
        .timeout(i32::try_from(TICK.as_millis()).unwrap_or(100))
        .buffer_size(BUFFER_BYTES)
        .precision(Precision::Nano)
        .open()
        .map_err(open_err)?;
    cap.filter(&limits.filter, true)
        .map_err(|e| CaptureError::Filter {
            expr: limits.filter.clone(),
            message: e.to_string(),
        })?;
    cap.setnonblock().map_err(open_err)
}

/// Moves packets from the capture to the stream until a bound is reached; counts into `packets`.
fn pump(
    cap: &mut Capture<Active>,
    w: &mut PcapNgOut<'_>,
    limits: &CaptureLimits,
    deadline: Instant,
    stop: &AtomicBool,
    packets: &mut u64,
) -> Result<CaptureEnd, CaptureError> {
    loop {
        // Everything ready now, checking the clock between packets under heavy traffic.
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            let p = match cap.next_packet() {
                Ok(p) => p,
                Err(pcap::Error::TimeoutExpired) => break,
                Err(e) => return Err(CaptureError::Read(e.to_string())),
            };
            if w.bytes() + packet_block_len(p.header.caplen) > limits.max_bytes {
                return finish(w, CaptureEnd::Bytes);
            }
            match w.packet(timestamp(p.header), p.header.len, p.data) {
                Ok(()) => {}
                Err(WriteFailed::Io) => return Ok(CaptureEnd::Client),
                Err(WriteFailed::Encode(m)) => return Err(CaptureError::Encode(m)),
            }
            *packets += 1;
            if *packets >= limits.max_packets {
                return finish(w, CaptureEnd::Packets);
            }
        }
        if w.flush().is_err() || stop.load(Ordering::Relaxed) {
            return Ok(CaptureEnd::Client);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(CaptureEnd::Duration);
        }
        let wait = TICK.min(deadline - now);
        let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(CaptureError::Read(format!("poll: {e}"))),
        }
    }
}

/// Flushes what was written; a failed flush means the client went away.
fn finish(w: &mut PcapNgOut<'_>, ended: CaptureEnd) -> Result<CaptureEnd, CaptureError> {
    Ok(match w.flush() {
        Ok(()) => ended,
        Err(_) => CaptureEnd::Client,
    })
}

/// The packet's time: with nanosecond precision libpcap puts nanoseconds in `tv_usec`.
fn timestamp(h: &pcap::PacketHeader) -> Duration {
    let secs = u64::try_from(h.ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(h.ts.tv_usec).unwrap_or(0).min(999_999_999);
    Duration::new(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked_before_opening() {
        let stop = AtomicBool::new(false);
        let limits = CaptureLimits::default();
        for name in ["", "a/b", "sl-x y", "0123456789abcdef", "slcap-missing0"] {
            let r = run_capture(name, &limits, &mut Vec::new(), &stop);
            assert!(
                matches!(r, Err(CaptureError::Interface { .. })),
                "{name:?}: {r:?}"
            );
        }
    }
}

//! The UDP run, inside the sliver. Every datagram starts with a header of two big-endian u64s:
//! the sequence number (its top bits flag a probe or the end marker) and the send time
//! (nanoseconds on the sender's clock; in the end marker, the number of datagrams sent). The
//! receiver echoes each probe's header back, and the sender times the round trip; probes are
//! the data datagram due first in each 100 ms.

use std::io::{self, ErrorKind, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slicelab_model::traffic::{ReceiverResult, SenderResult, TrafficLine, TrafficRequest};

use super::pace::Schedule;
use super::stats::{bits_per_second, percentiles, UdpTally};
use super::{emit, nanos_since, seed, set_buffer, sleep_until, FIRST_PACKET_WAIT};

/// The datagram is a probe: echo its header.
const PROBE: u64 = 1 << 63;
/// The datagram marks the end of the run; its time field is the number sent.
const FIN: u64 = 1 << 62;
const SEQ_MASK: u64 = !(PROBE | FIN);
const HEADER: usize = 16;
/// How often the sender asks for an echo.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// A receiver that heard nothing this long after the run started stops (longer than the on-off
/// pattern's silence).
const IDLE_STOP: Duration = Duration::from_secs(3);
/// How long the sender waits for the last echoes.
const ECHO_DRAIN: Duration = Duration::from_millis(500);

fn header(buf: &mut [u8], seq: u64, time: u64) {
    buf[..8].copy_from_slice(&seq.to_be_bytes());
    buf[8..HEADER].copy_from_slice(&time.to_be_bytes());
}

fn parse(buf: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_be_bytes(buf.get(..8)?.try_into().ok()?);
    let time = u64::from_be_bytes(buf.get(8..HEADER)?.try_into().ok()?);
    Some((seq, time))
}

/// Sends the run to `dest`; returns the sender's result.
pub fn send(req: &TrafficRequest, dest: SocketAddr) -> io::Result<SenderResult> {
    let sock = UdpSocket::bind(("0.0.0.0", 0))?;
    sock.connect(dest)?;
    set_buffer(&sock, libc::SO_SNDBUF, 4 << 20);
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let rtts = Arc::new(Mutex::new(Vec::<f64>::new()));
    let echoes = {
        let (sock, done, rtts) = (sock.try_clone()?, done.clone(), rtts.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !done.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    if let Some((seq, sent)) = parse(&buf[..n]) {
                        if seq & PROBE != 0 {
                            let rtt = nanos_since(start).saturating_sub(sent);
                            if let Ok(mut v) = rtts.lock() {
                                v.push(rtt as f64 / 1e6);
                            }
                        }
                    }
                }
            }
        })
    };
    let mut buf = vec![0u8; req.size as usize];
    let mut sched = Schedule::new(req.pattern, req.rate, req.size, seed());
    let end = Duration::from_secs(u64::from(req.duration));
    let (mut packets, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None, Duration::ZERO);
    let mut next_probe = Duration::ZERO;
    loop {
        let due = sched.next_due();
        if due >= end {
            break;
        }
        sleep_until(start + due);
        let mut seq = packets;
        if due >= next_probe {
            seq |= PROBE;
            next_probe = due + PROBE_EVERY;
        }
        header(&mut buf, seq, nanos_since(start));
        match sock.send(&buf) {
            Ok(n) => {
                packets += 1;
                bytes += n as u64;
                let now = start.elapsed();
                first.get_or_insert(now);
                last = now;
            }
            // An ICMP error for an earlier datagram (nobody listening yet) or a full queue:
            // this datagram was not sent.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::WouldBlock
                ) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
            Err(e) => return Err(e),
        }
    }
    std::thread::sleep(ECHO_DRAIN);
    let mut fin = [0u8; HEADER];
    header(&mut fin, FIN, packets);
    for _ in 0..5 {
        let _ = sock.send(&fin);
        std::thread::sleep(Duration::from_millis(10));
    }
    done.store(true, Ordering::Relaxed);
    let _ = echoes.join();
    let mut rtts = rtts.lock().map(|v| v.clone()).unwrap_or_default();
    let seconds = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
    Ok(SenderResult {
        packets,
        bytes,
        seconds,
        // n sends span n−1 gaps: the rate is the bytes after the first over the span.
        rate: bits_per_second(bytes.saturating_sub(bytes / packets.max(1)), seconds),
        rtt_samples: rtts.len() as u64,
        rtt_ms: percentiles(&mut rtts),
        retransmits: None,
    })
}

/// Binds `port`, says so, and tallies the run until the sender's end marker (or silence).
pub fn receive(
    req: &TrafficRequest,
    port: u16,
    out: &mut impl Write,
) -> io::Result<ReceiverResult> {
    let sock = UdpSocket::bind(("0.0.0.0", port))?;
    set_buffer(&sock, libc::SO_RCVBUF, 8 << 20);
    emit(out, &TrafficLine::Listening { port })?;
    let start = Instant::now();
    let mut buf = vec![0u8; 65_536];
    let mut tally = UdpTally::default();
    let mut sent_packets = None;
    let mut first: Option<Instant> = None;
    let cap = Duration::from_secs(u64::from(req.duration) + 30);
    loop {
        let now = Instant::now();
        let wait = match first {
            None => FIRST_PACKET_WAIT.checked_sub(now - start),
            Some(f) => cap.checked_sub(now - f).map(|left| left.min(IDLE_STOP)),
        };
        let Some(wait) = wait.filter(|w| !w.is_zero()) else {
            break;
        };
        sock.set_read_timeout(Some(wait))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if first.is_some() {
                    break;
                }
                continue;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let arrived = nanos_since(start);
        let Some((seq, time)) = parse(&buf[..n]) else {
            continue;
        };
        if seq & FIN != 0 {
            sent_packets = Some(time);
            break;
        }
        first.get_or_insert_with(Instant::now);
        tally.add(seq & SEQ_MASK, n, time, arrived);
        if seq & PROBE != 0 {
            let _ = sock.send_to(&buf[..HEADER], from);
        }
    }
    Ok(ReceiverResult {
        packets: tally.packets,
        bytes: tally.bytes,
        seconds: tally.seconds(),
        throughput: tally.throughput(),
        jitter_ms: tally.jitter_percentiles(),
        rfc3550_jitter_ms: tally.rfc3550_ms(),
        out_of_order: tally.out_of_order,
        sent_packets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_with_flags() {
        let mut b = [0u8; 32];
        header(&mut b, 7 | PROBE, 123_456);
        let (seq, t) = parse(&b).unwrap();
        assert_eq!(
            (seq & SEQ_MASK, seq & PROBE != 0, seq & FIN != 0, t),
            (7, true, false, 123_456)
        );
        assert_eq!(parse(&b[..15]), None);
    }
}

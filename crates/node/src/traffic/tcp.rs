//! The TCP run, inside the sliver: the sender writes paced chunks and samples the kernel's RTT
//! estimate (`TCP_INFO`) every 100 ms; the receiver counts bytes until the sender's EOF.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use slicelab_model::traffic::{ReceiverResult, SenderResult, TrafficLine, TrafficRequest};

use super::pace::Schedule;
use super::stats::{bits_per_second, percentiles};
use super::{emit, seed, sleep_until, FIRST_PACKET_WAIT};

const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// A receiver that read nothing this long stops.
const IDLE_STOP: Duration = Duration::from_secs(5);

/// (smoothed RTT in ms, total retransmits) of a connected socket.
fn tcp_info(s: &TcpStream) -> Option<(f64, u64)> {
    // SAFETY: tcp_info is plain old data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the pointer and length describe `info`, which outlives the call.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (r == 0).then(|| {
        (
            f64::from(info.tcpi_rtt) / 1000.0,
            u64::from(info.tcpi_total_retrans),
        )
    })
}

/// Sends the run to `dest`; returns once the receiver has read everything.
pub fn send(req: &TrafficRequest, dest: SocketAddr) -> io::Result<SenderResult> {
    let mut s = TcpStream::connect_timeout(&dest, Duration::from_secs(10))?;
    let buf = vec![0u8; req.size as usize];
    let mut sched = Schedule::new(req.pattern, req.rate, req.size, seed());
    let end = Duration::from_secs(u64::from(req.duration));
    let start = Instant::now();
    let (mut writes, mut bytes, mut last) = (0u64, 0u64, Duration::ZERO);
    let mut rtts = Vec::new();
    let mut next_sample = SAMPLE_EVERY;
    loop {
        let due = sched.next_due();
        if due >= end {
            break;
        }
        sleep_until(start + due);
        s.write_all(&buf)?;
        writes += 1;
        bytes += buf.len() as u64;
        last = start.elapsed();
        if last >= next_sample {
            next_sample = last + SAMPLE_EVERY;
            if let Some((rtt, _)) = tcp_info(&s) {
                rtts.push(rtt);
            }
        }
    }
    let retransmits = tcp_info(&s).map(|(_, r)| r);
    s.shutdown(Shutdown::Write)?;
    // The receiver closes once it has read our EOF: everything arrived.
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut sink = [0u8; 64];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    Ok(SenderResult {
        packets: writes,
        bytes,
        seconds: last.as_secs_f64(),
        rate: bits_per_second(bytes, last.as_secs_f64()),
        rtt_samples: rtts.len() as u64,
        rtt_ms: percentiles(&mut rtts),
        retransmits,
    })
}

/// Listens on `port`, says so, accepts one connection and reads it to its end.
pub fn receive(
    req: &TrafficRequest,
    port: u16,
    out: &mut impl Write,
) -> io::Result<ReceiverResult> {
    let l = TcpListener::bind(("0.0.0.0", port))?;
    l.set_nonblocking(true)?;
    emit(out, &TrafficLine::Listening { port })?;
    let t0 = Instant::now();
    let mut s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if t0.elapsed() > FIRST_PACKET_WAIT {
                    return Err(io::Error::new(ErrorKind::TimedOut, "no sender connected"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    };
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(IDLE_STOP))?;
    let cap = Duration::from_secs(u64::from(req.duration) + 60);
    let mut buf = vec![0u8; 256 * 1024];
    let (mut reads, mut bytes, mut after_first) = (0u64, 0u64, 0u64);
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        reads += 1;
        bytes += n as u64;
        match first {
            None => first = Some(now),
            Some(f) => {
                after_first += n as u64;
                if now - f > cap {
                    break;
                }
            }
        }
        last = Some(now);
    }
    drop(s);
    let seconds = match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    Ok(ReceiverResult {
        packets: reads,
        bytes,
        seconds,
        throughput: bits_per_second(after_first, seconds),
        jitter_ms: None,
        rfc3550_jitter_ms: None,
        out_of_order: 0,
        sent_packets: None,
    })
}

//! The node manager's side of the launcher handshake (`sandbox::handshake`): the launcher's and
//! the sliver init's [`Report`] lines, read from the launcher's stdout with a deadline.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::sandbox::handshake::Report;

/// The launcher's and init's [`Report`] lines, read from their pipe with a deadline.
pub(crate) struct Reports {
    out: std::process::ChildStdout,
    buf: Vec<u8>,
    deadline: Instant,
}

impl Reports {
    pub(crate) fn new(out: std::process::ChildStdout, deadline: Instant) -> Self {
        Self {
            out,
            buf: Vec::new(),
            deadline,
        }
    }

    /// From now on, reports are waited for until `within` from now (a warm sliver's reports
    /// are read when it is made, and again when it is taken).
    pub(crate) fn wait_within(&mut self, within: Duration) {
        self.deadline = Instant::now() + within;
    }

    /// The next report (lines that are none are skipped); `Err`: why there is none.
    pub(crate) fn next(&mut self) -> Result<Report, String> {
        use std::io::Read;
        loop {
            while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                if let Some(r) = Report::parse(&String::from_utf8_lossy(&line)) {
                    return Ok(r);
                }
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out building the sliver".into());
            }
            let mut pfd = libc::pollfd {
                fd: self.out.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, 1000) as libc::c_int;
            // SAFETY: one valid pollfd that outlives the call.
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                continue;
            }
            let mut chunk = [0u8; 512];
            match self.out.read(&mut chunk) {
                Ok(0) => return Err("sliver init exited during setup (see console.log)".into()),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading the launcher's reports: {e}")),
            }
        }
    }
}

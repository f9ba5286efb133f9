//! The node manager's recent log, in memory, for its site's staff (`ssh site_admin@NODE log`):
//! every line the daemon logs also lands here (the last [`KEPT`] lines), so the staff read the
//! node manager's log without a shell on the machine. The binary installs [`LogTee`] as the
//! `tracing` writer of the daemons.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

/// Lines kept.
pub const KEPT: usize = 5000;

static RING: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// A writer for one log event: to standard error, and (when dropped) into the ring.
#[derive(Default)]
pub struct LogTee {
    buf: Vec<u8>,
}

impl LogTee {
    pub fn new() -> LogTee {
        LogTee::default()
    }
}

impl Write for LogTee {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        std::io::stderr().write(b)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl Drop for LogTee {
    fn drop(&mut self) {
        let text = strip_ansi(&String::from_utf8_lossy(&self.buf));
        push_lines(&text);
    }
}

fn push_lines(text: &str) {
    let mut ring = RING.lock().unwrap_or_else(|p| p.into_inner());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if ring.len() == KEPT {
            ring.pop_front();
        }
        ring.push_back(line.to_string());
    }
}

/// The last `n` lines logged, oldest first.
pub fn tail(n: usize) -> Vec<String> {
    let ring = RING.lock().unwrap_or_else(|p| p.into_inner());
    ring.iter()
        .skip(ring.len().saturating_sub(n))
        .cloned()
        .collect()
}

/// Removes terminal colour sequences (`ESC [ … letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_without_colours() {
        {
            let mut t = LogTee::new();
            let _ = t.write_all(b"\x1b[32m INFO\x1b[0m logring-test one\nlogring-test two\n");
        }
        let last = tail(KEPT);
        let mine: Vec<_> = last.iter().filter(|l| l.contains("logring-test")).collect();
        assert_eq!(mine, vec![" INFO logring-test one", "logring-test two"]);
        assert_eq!(strip_ansi("a\x1b[1;31mb"), "ab");
    }
}

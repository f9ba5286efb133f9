//! `slicelab exec`'s progress line on a terminal: `done N · failed M · pending K`, redrawn in
//! place as results arrive. Output lines printed meanwhile clear it first and redraw it after,
//! so it always stays the last line; it is cleared before the summary. Off (every call a plain
//! print) when stderr is not a terminal or with `-o json`.

use std::io::Write;
use std::sync::Mutex;

/// Counts of a fan-out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub done: usize,
    pub failed: usize,
    pub pending: usize,
}

/// The line for `c`: what people read.
pub(super) fn render(c: Counts) -> String {
    format!(
        "done {} · failed {} · pending {}",
        c.done, c.failed, c.pending
    )
}

/// Erase the current line: carriage return, then "erase in line".
const CLEAR: &str = "\r\x1b[2K";

/// Where a fan-out's output and its progress line meet.
#[derive(Debug)]
pub(super) struct Progress {
    /// `None`: no progress line (not a terminal, or `-o json`).
    counts: Option<Mutex<Counts>>,
}

impl Progress {
    pub(super) fn new(shown: bool, total: usize) -> Progress {
        let p = Progress {
            counts: shown.then(|| {
                Mutex::new(Counts {
                    pending: total,
                    ..Counts::default()
                })
            }),
        };
        p.redraw();
        p
    }

    fn redraw(&self) {
        if let Some(c) = &self.counts {
            let c = *c.lock().unwrap_or_else(|e| e.into_inner());
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "{CLEAR}{}", render(c));
            let _ = e.flush();
        }
    }

    /// Prints one output line (to stderr or stdout) above the progress line.
    pub(super) fn line(&self, to_stderr: bool, text: &str) {
        if self.counts.is_none() {
            if to_stderr {
                eprintln!("{text}");
            } else {
                println!("{text}");
            }
            return;
        }
        // Hold the counts' lock across clear, print and redraw, so two nodes' lines do not
        // interleave with each other's redraws.
        let guard = self
            .counts
            .as_ref()
            .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{CLEAR}");
        let _ = err.flush();
        if to_stderr {
            let _ = writeln!(err, "{text}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        if let Some(c) = guard.as_deref() {
            let _ = write!(err, "{}", render(*c));
            let _ = err.flush();
        }
    }

    /// One node finished.
    pub(super) fn finished(&self, ok: bool) {
        if let Some(c) = &self.counts {
            {
                let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
                c.pending = c.pending.saturating_sub(1);
                if ok {
                    c.done += 1;
                } else {
                    c.failed += 1;
                }
            }
            self.redraw();
        }
    }

    /// Erases the line, before the summary.
    pub(super) fn clear(&self) {
        if self.counts.is_some() {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "{CLEAR}");
            let _ = e.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_done_failed_and_pending() {
        assert_eq!(
            render(Counts {
                done: 47,
                failed: 1,
                pending: 2
            }),
            "done 47 · failed 1 · pending 2"
        );
    }

    #[test]
    fn without_a_terminal_nothing_is_counted() {
        let p = Progress::new(false, 3);
        p.finished(true);
        assert!(p.counts.is_none());
        let p = Progress::new(true, 3);
        p.finished(true);
        p.finished(false);
        p.clear();
        let c = *p.counts.as_ref().map(|c| c.lock().unwrap()).unwrap();
        assert_eq!(
            c,
            Counts {
                done: 1,
                failed: 1,
                pending: 1
            }
        );
    }
}

//! Progress of `up` on stderr: one updating line on a terminal, a line per change otherwise.

use std::io::{IsTerminal, Write};

/// Shows progress: one updating line on a terminal, a line per change otherwise.
pub(super) struct Progress {
    tty: bool,
    last: String,
}

impl Progress {
    pub(super) fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            last: String::new(),
        }
    }

    /// Shows `msg` (unless it is already showing).
    pub(super) fn set(&mut self, msg: &str) {
        if msg == self.last {
            return;
        }
        self.last = msg.to_string();
        if self.tty {
            eprint!("\r\x1b[K{msg}");
        } else {
            eprintln!("{msg}");
        }
        let _ = std::io::stderr().flush();
    }

    /// Ends the updating line with `msg`.
    pub(super) fn done(&mut self, msg: &str) {
        if self.tty {
            eprintln!("\r\x1b[K{msg}");
        } else if msg != self.last {
            eprintln!("{msg}");
        }
        self.last.clear();
    }
}

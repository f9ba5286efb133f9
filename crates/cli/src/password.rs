//! Reading secrets: from stdin (`--password-stdin`), the environment, or a terminal prompt with
//! echo turned off.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};

use anyhow::{Context, Result};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

use crate::error::CliError;

/// One line from stdin, without its line ending.
pub fn read_stdin_line() -> Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut s)
        .context("reading the password from stdin")?;
    let s = s.trim_end_matches(['\n', '\r']).to_string();
    if s.is_empty() {
        return Err(CliError::Usage("stdin gave an empty password".into()).into());
    }
    Ok(s)
}

/// Restores the terminal's settings when dropped, even on an early return.
struct EchoGuard<'a> {
    tty: &'a File,
    saved: Termios,
}

impl Drop for EchoGuard<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.tty, SetArg::TCSANOW, &self.saved);
    }
}

/// Asks on the controlling terminal; `echo` false hides what is typed.
pub fn prompt(question: &str, echo: bool) -> Result<String> {
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| {
            CliError::Usage(format!(
                "no terminal to ask for the {}; pass it on stdin (--password-stdin) or in the environment",
                question.trim_end_matches([':', ' '])
            ))
        })?;
    let guard = if echo {
        None
    } else {
        let saved = termios::tcgetattr(&tty).context("reading terminal settings")?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        termios::tcsetattr(&tty, SetArg::TCSANOW, &quiet).context("turning off echo")?;
        Some(EchoGuard { tty: &tty, saved })
    };
    (&tty).write_all(question.as_bytes())?;
    (&tty).flush()?;
    let mut line = String::new();
    BufReader::new((&tty).take(4096)).read_line(&mut line)?;
    drop(guard);
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// A password from, in order: stdin when `from_stdin`, the environment variable `env`, or a
/// prompt on the terminal.
pub fn password(from_stdin: bool, env: &str, question: &str) -> Result<String> {
    if from_stdin {
        return read_stdin_line();
    }
    if let Ok(p) = std::env::var(env) {
        if !p.is_empty() {
            return Ok(p);
        }
    }
    if !std::io::stdin().is_terminal() && File::open("/dev/tty").is_err() {
        return Err(CliError::Usage(format!(
            "no password given: use --password-stdin or set {env}"
        ))
        .into());
    }
    let p = prompt(question, false)?;
    if p.is_empty() {
        return Err(CliError::Usage("empty password".into()).into());
    }
    Ok(p)
}

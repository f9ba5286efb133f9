//! The admin context's command language: words split like a shell's (single and double quotes,
//! backslash), then one command. Pure; unit-tested.

use std::fmt;

/// The most a command line may be.
pub const LINE_MAX: usize = 4096;

/// One command of `ssh site_admin@NODE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    /// Every sliver on the node: state, usage, limits, hold.
    Slivers,
    /// One sliver in detail.
    Show(String),
    /// The sliver's processes.
    Ps(String),
    /// The sliver's open flows (conntrack).
    Flows(String),
    /// A capture of the sliver's packets (pcapng on stdout); the arguments as given.
    Capture {
        slice: String,
        args: CaptureArgs,
    },
    /// Stop the sliver and hold it stopped, with a reason.
    Stop {
        slice: String,
        reason: String,
    },
    /// Lift a hold and (re)start the sliver.
    Restart(String),
    /// The node manager's last lines of log.
    Log(usize),
    /// Leave the shell.
    Exit,
}

/// `capture`'s options, before validation (`slicelab_model::capture`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureArgs {
    pub filter: Option<String>,
    pub duration_s: Option<u32>,
    pub packets: Option<u64>,
    pub snaplen: Option<u32>,
}

impl Command {
    /// Whether it only reads (everything but stop and restart, which change a sliver).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Help => "help",
            Command::Slivers => "slivers",
            Command::Show(_) => "show",
            Command::Ps(_) => "ps",
            Command::Flows(_) => "flows",
            Command::Capture { .. } => "capture",
            Command::Stop { .. } => "stop",
            Command::Restart(_) => "restart",
            Command::Log(_) => "log",
            Command::Exit => "exit",
        }
    }
}

/// What the admin context answers to `help`.
pub const HELP: &str = "\
commands of the node's admin context (ssh site_admin@NODE):
  slivers                      every sliver here: state, address, processes, CPU, memory, egress, hold
  show SLICE                   one sliver: its limits and usage
  ps SLICE                     its processes
  flows SLICE                  its open flows (connection tracking)
  capture SLICE [--filter EXPR] [--duration 30s] [--packets N] [--snaplen N]
                               its packets as pcapng on stdout (run as a command, not in the shell:
                               ssh site_admin@NODE \"capture SLICE --filter 'tcp port 80'\" > out.pcapng)
  stop SLICE [REASON]          stop it and keep it stopped here until restarted
  restart SLICE                lift a stop and (re)start it
  log [N]                      the node manager's last N lines of log (default 100)
  help, exit
Every command is logged at central as an event in your name.";

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(m: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(m.into()))
}

/// Splits a line into words like a POSIX shell: `'…'` literal, `"…"` with `\"` and `\\`,
/// backslash escapes outside quotes.
pub fn split_words(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return err("unterminated ' quote"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return err("unterminated \" quote"),
                        },
                        Some(c) => cur.push(c),
                        None => return err("unterminated \" quote"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Quotes `word` so that [`split_words`] gives it back whole (for building command lines).
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@,+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Parses one command line; `Ok(None)` for an empty line.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    if line.len() > LINE_MAX {
        return err(format!("the line is over {LINE_MAX} bytes"));
    }
    let words = split_words(line)?;
    let Some((verb, rest)) = words.split_first() else {
        return Ok(None);
    };
    let slice = |what: &str| -> Result<String, ParseError> {
        match rest.first() {
            Some(s) if !s.starts_with('-') => Ok(s.clone()),
            _ => err(format!("usage: {what} SLICE")),
        }
    };
    let no_more = |n: usize, usage: &str| -> Result<(), ParseError> {
        if rest.len() > n {
            err(format!("unexpected {:?}; usage: {usage}", rest[n]))
        } else {
            Ok(())
        }
    };
    let cmd = match verb.as_str() {
        "help" | "?" => Command::Help,
        "exit" | "quit" | "logout" => Command::Exit,
        "slivers" | "ls" => {
            no_more(0, "slivers")?;
            Command::Slivers
        }
        "show" => {
            no_more(1, "show SLICE")?;
            Command::Show(slice("show")?)
        }
        "ps" => {
            no_more(1, "ps SLICE")?;
            Command::Ps(slice("ps")?)
        }
        "flows" => {
            no_more(1, "flows SLICE")?;
            Command::Flows(slice("flows")?)
        }
        "stop" => Command::Stop {
            slice: slice("stop SLICE [REASON]")?,
            reason: rest[1..].join(" "),
        },
        "restart" | "start" => {
            no_more(1, "restart SLICE")?;
            Command::Restart(slice("restart")?)
        }
        "log" => {
            no_more(1, "log [N]")?;
            let n = match rest.first() {
                None => 100,
                Some(n) => n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=crate::logring::KEPT).contains(n))
                    .ok_or_else(|| {
                        ParseError(format!(
                            "log N: N must be a number of lines, 1 to {}",
                            crate::logring::KEPT
                        ))
                    })?,
            };
            Command::Log(n)
        }
        "capture" => Command::Capture {
            slice: slice("capture SLICE [--filter EXPR] [--duration 30s] [--packets N]")?,
            args: capture_args(&rest[1..])?,
        },
        other => return err(format!("unknown command {other:?}; try `help`")),
    };
    Ok(Some(cmd))
}

fn capture_args(words: &[String]) -> Result<CaptureArgs, ParseError> {
    let mut a = CaptureArgs::default();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (w.as_str(), None),
        };
        let mut value = || -> Result<String, ParseError> {
            match inline.clone().or_else(|| it.next().cloned()) {
                Some(v) => Ok(v),
                None => err(format!("{flag} needs a value")),
            }
        };
        match flag {
            "--filter" | "-f" => a.filter = Some(value()?),
            "--duration" | "-d" => {
                let v = value()?;
                let secs = slicelab_model::time::parse_duration(&v)
                    .map_err(|e| ParseError(format!("--duration: {e}")))?;
                a.duration_s = Some(
                    u32::try_from(secs)
                        .map_err(|_| ParseError(format!("--duration {v:?} is out of range")))?,
                );
            }
            "--packets" | "-c" => {
                let v = value()?;
                a.packets =
                    Some(v.parse().map_err(|_| {
                        ParseError(format!("--packets {v:?} is not a whole number"))
                    })?);
            }
            "--snaplen" | "-s" => {
                let v = value()?;
                a.snaplen =
                    Some(v.parse().map_err(|_| {
                        ParseError(format!("--snaplen {v:?} is not a whole number"))
                    })?);
            }
            other => return err(format!("capture: unknown option {other:?}")),
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"capture pl_a --filter 'udp port 53' -d "3s" a\ b"#).unwrap(),
            vec![
                "capture",
                "pl_a",
                "--filter",
                "udp port 53",
                "-d",
                "3s",
                "a b"
            ]
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("''").unwrap(), vec![""]);
        assert!(split_words("x 'open").is_err());
        for w in ["plain", "with space", "it's", "", "a\"b"] {
            assert_eq!(split_words(&quote(w)).unwrap(), vec![w.to_string()], "{w}");
        }
    }

    #[test]
    fn commands_parse_with_clear_errors() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("slivers").unwrap(), Some(Command::Slivers));
        assert_eq!(parse("ps pl_a").unwrap(), Some(Command::Ps("pl_a".into())));
        assert_eq!(
            parse("stop pl_a eats the uplink").unwrap(),
            Some(Command::Stop {
                slice: "pl_a".into(),
                reason: "eats the uplink".into()
            })
        );
        assert_eq!(parse("log").unwrap(), Some(Command::Log(100)));
        assert_eq!(parse("log 20").unwrap(), Some(Command::Log(20)));
        assert!(parse("log 0").is_err());
        assert!(parse("ps").unwrap_err().0.contains("usage: ps SLICE"));
        assert!(parse("ps pl_a extra").is_err());
        assert!(parse("rm -rf /").unwrap_err().0.contains("unknown command"));
        assert_eq!(
            parse("capture pl_a --filter 'icmp or udp' --duration=5s -c 10").unwrap(),
            Some(Command::Capture {
                slice: "pl_a".into(),
                args: CaptureArgs {
                    filter: Some("icmp or udp".into()),
                    duration_s: Some(5),
                    packets: Some(10),
                    snaplen: None
                }
            })
        );
        assert!(parse("capture pl_a --bogus 1").is_err());
        assert!(parse("capture pl_a --packets many").is_err());
        assert!(parse(&"x".repeat(LINE_MAX + 1)).is_err());
    }
}

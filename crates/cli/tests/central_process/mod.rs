//! A `slicelab central` process as tests start it: its stdout read until it said its URL and its
//! CA's fingerprint (central serves HTTPS with its own CA by default).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Spawned {
    pub child: Child,
    /// `https://ADDR:PORT`, without `/api/v1`.
    pub url: String,
    /// `sha256:HEX` of central's CA.
    pub fingerprint: String,
}

/// Spawns `cmd` (a `slicelab central …` command) with stdout piped and waits for its URL and
/// CA fingerprint.
pub fn spawn(cmd: &mut Command) -> Spawned {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn central");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let (mut url, mut fingerprint) = (String::new(), String::new());
    while url.is_empty() || fingerprint.is_empty() {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).expect("read") > 0,
            "central exited before saying its URL and CA"
        );
        for w in line.split_whitespace() {
            if let Some(u) = w.strip_suffix("/api/v1") {
                url = u.to_string();
            }
            if w.starts_with("sha256:") {
                fingerprint = w.to_string();
            }
        }
    }
    assert!(
        url.starts_with("https://"),
        "central serves HTTPS by default: {url}"
    );
    Spawned {
        child,
        url,
        fingerprint,
    }
}

//! The launcher ↔ node-manager handshake, one line per message on the launcher's stdout and
//! stdin. Typed, so neither side matches bare strings.
//!
//! Node manager → launcher: its `LaunchSpec` (one JSON line), then [`Release::Joined`] once it
//! has moved the launcher into the sliver's cgroups. Launcher → node manager: [`Report::Netns`]
//! (the launcher is in the sliver's new network namespace), [`Report::Pid`] (the sliver init's
//! host pid), then [`Report::Ready`] once the root filesystem is built and the service's first
//! process forked, or [`Report::Error`] at any point. Node manager → that process (the
//! init itself if the sliver has no service): [`Release::Go`] once the network is plugged in;
//! only then does it exec. End of file means the node manager died first, and the launcher,
//! init or service process gives up (the init ends the sliver).
//!
//! A *warm* sliver (`crate::warm`) is built before its slice is known: its launcher forks the init
//! without waiting for [`Release::Joined`], and the init reports [`Report::Warm`] once its root
//! is built. When a slice takes it, the node manager writes its `Assignment` (one JSON line),
//! then [`Release::Joined`] once it has moved the init into the slice's cgroups; from there on it
//! is the handshake above, from [`Report::Ready`].

/// What the launcher and the sliver init tell the node manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The launcher has joined the sliver's new network namespace: `/proc/<launcher>/ns/net` is
    /// it until the launcher exits (once dismissed, after the release), and the launcher's
    /// descriptor given is an rtnetlink socket in it.
    Netns(i32),
    Pid(i32),
    /// A warm sliver's init: its root is built; it waits for its assignment.
    Warm,
    Ready,
    Error(String),
}

impl Report {
    /// The line (without newline) written to stdout.
    pub fn line(&self) -> String {
        match self {
            Report::Netns(fd) => format!("netns {fd}"),
            Report::Pid(p) => format!("pid {p}"),
            Report::Warm => "warm".into(),
            Report::Ready => "ready".into(),
            // One line: a multi-line reason would be cut at the first newline anyway.
            Report::Error(e) => format!("error: {}", e.replace('\n', " ")),
        }
    }

    /// Parses a line; `None` for anything else (a stray print is ignored, not fatal).
    pub fn parse(line: &str) -> Option<Report> {
        let line = line.trim_end();
        if line == "ready" {
            Some(Report::Ready)
        } else if line == "warm" {
            Some(Report::Warm)
        } else if let Some(fd) = line.strip_prefix("netns ") {
            fd.trim().parse().ok().map(Report::Netns)
        } else if let Some(p) = line.strip_prefix("pid ") {
            p.trim().parse().ok().map(Report::Pid)
        } else {
            line.strip_prefix("error: ")
                .map(|e| Report::Error(e.to_string()))
        }
    }

    /// Writes the line to stdout and flushes it (the node manager reads it through a pipe).
    pub fn send(&self) {
        use std::io::Write;
        println!("{}", self.line());
        let _ = std::io::stdout().flush();
    }
}

/// What the node manager tells the launcher and the sliver init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// To the launcher: it is in the sliver's cgroups, so it may fork the init (to a warm
    /// sliver's init: it is in its slice's cgroups, so it may fork the service).
    Joined,
    /// The network is plugged in: confine yourself and start the initscript.
    Go,
}

impl Release {
    pub fn line(&self) -> &'static str {
        match self {
            Release::Joined => "joined\n",
            Release::Go => "go\n",
        }
    }

    pub fn parse(line: &str) -> Option<Release> {
        match line.trim() {
            "joined" => Some(Release::Joined),
            "go" => Some(Release::Go),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips_and_noise_is_ignored() {
        for r in [
            Report::Netns(5),
            Report::Pid(4242),
            Report::Warm,
            Report::Ready,
            Report::Error("mounting overlay: EPERM".into()),
        ] {
            assert_eq!(Report::parse(&r.line()), Some(r));
        }
        assert_eq!(
            Report::parse(&Report::Error("a\nb".into()).line()),
            Some(Report::Error("a b".into()))
        );
        assert_eq!(Report::parse("pid x"), None);
        assert_eq!(Report::parse("hello"), None);
        assert_eq!(Release::parse(Release::Go.line()), Some(Release::Go));
        assert_eq!(
            Release::parse(Release::Joined.line()),
            Some(Release::Joined)
        );
        assert_eq!(Release::parse(""), None);
    }
}

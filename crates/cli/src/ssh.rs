//! The OpenSSH client as the CLI runs it against the nodes' gateways (`slicelab exec`,
//! `capture`, `traffic`): batch mode (never a prompt in the middle of a run), the gateway's
//! port, and the key to use — the one given, else ssh's own defaults plus the local testbed's
//! generated key when there is one.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::args::DEFAULT_TESTBED_DIR;
use crate::testbed::Testbed;

/// The local testbed's generated key, when there is one and we may read it: `slicelab up`
/// registers it for the demo user, and ssh would not find it on its own.
pub fn testbed_key() -> Option<PathBuf> {
    let dir = std::env::var_os("SLICELAB_UP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TESTBED_DIR));
    let key = Testbed::load(&dir)?.user_key?;
    std::fs::File::open(&key).ok().map(|_| key)
}

/// The key to offer: `given`, else the local testbed's (ssh adds its own defaults either way).
pub fn identity(given: Option<&Path>) -> Option<PathBuf> {
    given.map(Path::to_path_buf).or_else(testbed_key)
}

/// `ssh -p PORT [-i KEY] -o BatchMode=yes …`, to which the caller adds the destination (after
/// `--`) and what to run. Killed when dropped.
pub fn client(port: u16, identity: Option<&Path>) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-p", &port.to_string()]);
    if let Some(i) = identity {
        c.arg("-i").arg(i);
    }
    c.args([
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "LogLevel=ERROR",
    ])
    .kill_on_drop(true);
    c
}

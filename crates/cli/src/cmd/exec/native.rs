//! SSH in-process for `slicelab exec`: one `russh` client connection per node, all in this
//! process, instead of an OpenSSH process per node (the process start, config and key loading
//! of every `ssh` were most of a fan-out's cost).
//!
//! It keeps OpenSSH's rules for what it does do, and hands a node back to OpenSSH for what it
//! does not:
//! - **host keys**: the server's key must be recorded for the host (`[host]:port` off port 22)
//!   in `~/.ssh/known_hosts` or `/etc/ssh/ssh_known_hosts` (where `slicelab up` records its
//!   nodes'). A recorded key of the same type that differs refuses the node, as OpenSSH does; a
//!   host with no recorded key (or recorded only through patterns, certificates or files this
//!   parser does not read) goes to OpenSSH, which refuses or accepts it by its own rules;
//! - **keys**: the key given (`-i`, else the local testbed's), then `~/.ssh/id_ed25519`,
//!   `id_ecdsa`, `id_rsa` — the unencrypted ones that load. A node that accepts none of them (the
//!   right key may be in an agent, or passphrase-protected) goes to OpenSSH, which knows both.
//!
//! `~/.ssh/config` is not read: `--openssh` runs every node through OpenSSH when it matters.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelMsg;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The known_hosts files OpenSSH reads by default (per user, then system-wide).
fn known_hosts_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(home) = dirs::home_dir() {
        v.push(home.join(".ssh/known_hosts"));
        v.push(home.join(".ssh/known_hosts2"));
    }
    v.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
    v.push(PathBuf::from("/etc/ssh/ssh_known_hosts2"));
    v
}

/// What the known_hosts files say of a server's key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostKey {
    Known,
    /// Nothing recorded for the host that this parser reads.
    Unknown,
    /// A different key of the same type is recorded: refused, as OpenSSH refuses it.
    Changed(String),
}

fn check_host_key(host: &str, port: u16, key: &russh::keys::PublicKey) -> HostKey {
    for f in known_hosts_files() {
        match russh::keys::check_known_hosts_path(host, port, key, &f) {
            Ok(true) => return HostKey::Known,
            Ok(false) => {}
            Err(russh::keys::Error::KeyChanged { line }) => {
                return HostKey::Changed(format!("{}:{line}", f.display()))
            }
            // An unreadable or unparsable file: what OpenSSH makes of it decides.
            Err(_) => return HostKey::Unknown,
        }
    }
    HostKey::Unknown
}

/// The keys to offer, in order; shared by every connection of a fan-out.
#[derive(Debug, Clone, Default)]
pub(super) struct Keys(Vec<Arc<PrivateKey>>);

impl Keys {
    /// `identity` (the key given, else the testbed's), then OpenSSH's default key files: those
    /// that load without a passphrase.
    pub(super) fn load(identity: Option<&Path>) -> Keys {
        let mut paths: Vec<PathBuf> = identity.map(Path::to_path_buf).into_iter().collect();
        if let Some(home) = dirs::home_dir() {
            for k in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                paths.push(home.join(".ssh").join(k));
            }
        }
        let mut keys: Vec<Arc<PrivateKey>> = Vec::new();
        for p in paths {
            if let Ok(k) = russh::keys::load_secret_key(&p, None) {
                if !keys.iter().any(|o| o.public_key() == k.public_key()) {
                    keys.push(Arc::new(k));
                }
            }
        }
        Keys(keys)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How the remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ended {
    Exit(u32),
    Signal(String),
    /// The channel closed without an exit status.
    Closed,
}

/// Why a node did not run the command in-process.
#[derive(Debug)]
pub(super) enum Failed {
    /// Not decided here (host key not recorded, no key accepted): run it through OpenSSH.
    HandOver(String),
    /// Refused or broken: the node failed.
    Node(String),
}

struct Checker {
    host: String,
    port: u16,
    verdict: Arc<Mutex<Option<HostKey>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let v = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                check_host_key(&self.host, self.port, key)
            }
            // Host certificates need OpenSSH's @cert-authority handling.
            PublicKeyOrCertificate::Certificate(_) => HostKey::Unknown,
        };
        let ok = v == HostKey::Known;
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
        Ok(ok)
    }
}

/// The client settings every connection of a fan-out shares.
pub(super) fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        // Like `ConnectTimeout`/`ServerAlive` unset: the caller's `--timeout` bounds a node.
        inactivity_timeout: None,
        // A session is a few small messages each way, each waited for: with Nagle's algorithm,
        // one that follows an unacknowledged one waits for the node's delayed ACK (40 ms on
        // Linux). OpenSSH sets TCP_NODELAY too.
        nodelay: true,
        ..client::Config::default()
    })
}

/// Splits a stream's chunks into lines for `emit`.
#[derive(Default)]
struct Lines(Vec<u8>);

impl Lines {
    fn push(&mut self, data: &[u8], mut emit: impl FnMut(&str)) {
        self.0.extend_from_slice(data);
        while let Some(i) = self.0.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.0.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..i]);
            emit(text.strip_suffix('\r').unwrap_or(&text));
        }
    }

    fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if !self.0.is_empty() {
            emit(&String::from_utf8_lossy(&self.0));
            self.0.clear();
        }
    }
}

/// Runs `command` as `user@host:port`, each output line to `line(to_stderr, text)`.
pub(super) async fn run(
    config: Arc<client::Config>,
    keys: &Keys,
    host: &str,
    port: u16,
    user: &str,
    command: &str,
    line: impl Fn(bool, &str),
) -> Result<Ended, Failed> {
    let verdict = Arc::new(Mutex::new(None));
    let checker = Checker {
        host: host.to_string(),
        port,
        verdict: verdict.clone(),
    };
    let connect = client::connect(config, (host, port), checker);
    // As OpenSSH's `ConnectTimeout=10` (`crate::ssh::client`).
    let Ok(connected) = tokio::time::timeout(CONNECT_TIMEOUT, connect).await else {
        return Err(Failed::Node(format!(
            "ssh: connect to {host} port {port}: timed out"
        )));
    };
    let mut session = match connected {
        Ok(s) => s,
        Err(e) => {
            let v = verdict.lock().unwrap_or_else(|e| e.into_inner()).clone();
            return Err(match v {
                Some(HostKey::Unknown) => {
                    Failed::HandOver(format!("host key of {host} not recorded"))
                }
                Some(HostKey::Changed(at)) => Failed::Node(format!(
                    "host key of {host} differs from the one recorded at {at}"
                )),
                _ => Failed::Node(format!("ssh: connect to {host} port {port}: {e}")),
            });
        }
    };
    let mut accepted = false;
    for k in &keys.0 {
        let hash = if k.algorithm().is_rsa() {
            // What the server said it verifies (`server-sig-algs`), else SHA-256 as OpenSSH.
            Some(
                session
                    .best_supported_rsa_hash()
                    .await
                    .ok()
                    .flatten()
                    .flatten()
                    .unwrap_or(HashAlg::Sha256),
            )
        } else {
            None
        };
        let r = session
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(k.clone(), hash))
            .await
            .map_err(|e| Failed::Node(format!("ssh: authenticating to {host}: {e}")))?;
        if r.success() {
            accepted = true;
            break;
        }
    }
    if !accepted {
        return Err(Failed::HandOver(format!(
            "no key accepted by {user}@{host}"
        )));
    }
    let broken = |e: russh::Error| Failed::Node(format!("ssh: {host}: {e}"));
    let mut ch = session.channel_open_session().await.map_err(broken)?;
    ch.exec(true, command).await.map_err(broken)?;
    let (mut out, mut err) = (Lines::default(), Lines::default());
    let mut ended = Ended::Closed;
    while let Some(m) = ch.wait().await {
        match m {
            ChannelMsg::Data { data } => out.push(&data, |l| line(false, l)),
            ChannelMsg::ExtendedData { data, ext: 1 } => err.push(&data, |l| line(true, l)),
            ChannelMsg::ExitStatus { exit_status } => ended = Ended::Exit(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                ended = Ended::Signal(format!("{signal_name:?}"))
            }
            _ => {}
        }
    }
    out.finish(|l| line(false, l));
    err.finish(|l| line(true, l));
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_lines_and_the_rest_comes_at_the_end() {
        let mut got = Vec::new();
        let mut l = Lines::default();
        l.push(b"a\r\nb", |s| got.push(s.to_string()));
        l.push(b"c\n\nd", |s| got.push(s.to_string()));
        l.finish(|s| got.push(s.to_string()));
        assert_eq!(got, ["a", "bc", "", "d"]);
    }

    #[test]
    fn an_unrecorded_host_is_unknown() {
        let k = russh::keys::PublicKey::from_openssh(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRRN61nma4N2GreUAcUDfWd8Zw/lRHeLd6XTr7YDLa6",
        )
        .expect("a public key");
        assert_eq!(
            check_host_key("nowhere.invalid", 2222, &k),
            HostKey::Unknown
        );
    }
}

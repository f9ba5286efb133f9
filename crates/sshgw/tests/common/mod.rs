//! Test harness: a gateway on 127.0.0.1 whose "slivers" are plain host directories, driven with
//! the real OpenSSH client.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slicelab_sshgw::{
    AuthorizedKey, Gateway, GatewayConfig, Login, Service, ServiceRequest, SliverAccess,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// TEST ONLY: a `SliverAccess` that runs commands on the host, in a temporary directory per
/// slice. There is no confinement at all; the node crate's implementation enters the sliver.
pub struct HostDirAccess {
    pub base: PathBuf,
    keys: Mutex<HashMap<String, Vec<String>>>,
}

impl HostDirAccess {
    pub fn new(base: &Path) -> Self {
        HostDirAccess {
            base: base.to_path_buf(),
            keys: Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self, slice: &str) -> PathBuf {
        self.base.join(slice)
    }

    pub fn set_keys(&self, slice: &str, keys: Vec<String>) {
        std::fs::create_dir_all(self.dir(slice)).unwrap();
        self.keys.lock().unwrap().insert(slice.to_string(), keys);
    }
}

impl SliverAccess for HostDirAccess {
    fn authorized_keys(&self, user: &str) -> Option<Vec<AuthorizedKey>> {
        let keys = self.keys.lock().unwrap().get(user).cloned()?;
        Some(
            keys.into_iter()
                .map(|key| AuthorizedKey {
                    // The key's comment names its person in these tests.
                    person: key.rsplit(' ').next().unwrap_or_default().to_string(),
                    key,
                })
                .collect(),
        )
    }

    /// TEST ONLY: `slicelab-upper` answers its input in capitals, for a slice's persons.
    fn offers(&self, login: &Login, name: &str) -> bool {
        matches!(login, Login::Slice { .. }) && name == "slicelab-upper"
    }

    /// TEST ONLY: the admin context echoes who asked what; `fail` exits 3 with a message on
    /// stderr; the shell answers each line until `exit`.
    fn service(&self, login: &Login, request: ServiceRequest) -> Service {
        let person = login.person().to_string();
        match request {
            ServiceRequest::Subsystem(_) => Service::InProcess(Box::new(move |mut io| {
                Box::pin(async move {
                    let mut all = String::new();
                    let _ = io.input.read_to_string(&mut all).await;
                    let _ = io.output.write_all(all.to_uppercase().as_bytes()).await;
                    let _ = io.output.flush().await;
                    0
                })
            })),
            ServiceRequest::Exec(cmd) if cmd == "fail" => {
                Service::InProcess(Box::new(move |mut io| {
                    Box::pin(async move {
                        let _ = io.errors.write_all(b"failed as asked\n").await;
                        let _ = io.errors.flush().await;
                        3
                    })
                }))
            }
            ServiceRequest::Exec(cmd) if cmd == "refuse" => {
                Service::Refused("refused as asked".into())
            }
            ServiceRequest::Exec(cmd) => Service::InProcess(Box::new(move |mut io| {
                Box::pin(async move {
                    let _ = io
                        .output
                        .write_all(format!("admin {person}: {cmd}\n").as_bytes())
                        .await;
                    let _ = io.output.flush().await;
                    0
                })
            })),
            ServiceRequest::Shell => Service::InProcess(Box::new(move |io| {
                Box::pin(async move {
                    let mut out = io.output;
                    let mut lines = tokio::io::BufReader::new(io.input).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.trim() == "exit" {
                            break;
                        }
                        let _ = out.write_all(format!("got {line}\n").as_bytes()).await;
                        let _ = out.flush().await;
                    }
                    0
                })
            })),
        }
    }

    fn command(
        &self,
        slice: &str,
        argv: Option<&[String]>,
        env: &[(String, String)],
    ) -> std::io::Result<std::process::Command> {
        let mut cmd = match argv {
            Some([prog, args @ ..]) => {
                let mut c = std::process::Command::new(prog);
                c.args(args);
                c
            }
            Some([]) => return Err(std::io::Error::other("empty argv")),
            None => std::process::Command::new("/bin/sh"),
        };
        cmd.current_dir(self.dir(slice))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.dir(slice))
            .env("USER", slice)
            .envs(env.iter().map(|(k, v)| (k, v)));
        Ok(cmd)
    }

    fn root(&self, slice: &str) -> Option<PathBuf> {
        self.keys
            .lock()
            .unwrap()
            .contains_key(slice)
            .then(|| self.dir(slice))
    }
}

pub struct Harness {
    pub tmp: tempfile::TempDir,
    pub access: Arc<HostDirAccess>,
    pub gw: Option<Gateway>,
    pub port: u16,
}

/// A keypair made with `ssh-keygen`.
pub struct Key {
    pub private: PathBuf,
    pub public_line: String,
}

pub fn keygen(dir: &Path, name: &str) -> Key {
    let private = dir.join(name);
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("{name}@test"))
        .arg("-f")
        .arg(&private)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public_line = std::fs::read_to_string(private.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string();
    Key {
        private,
        public_line,
    }
}

impl Harness {
    pub async fn start() -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let access = Arc::new(HostDirAccess::new(&tmp.path().join("slivers")));
        let cfg = GatewayConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            tmp.path().join("etc/host_key"),
        );
        let gw = slicelab_sshgw::start(cfg, access.clone()).await.unwrap();
        let port = gw.local_addr().port();
        Harness {
            tmp,
            access,
            gw: Some(gw),
            port,
        }
    }

    pub fn key(&self, name: &str) -> Key {
        keygen(self.tmp.path(), name)
    }

    /// `ssh -p PORT USER@127.0.0.1 CMD...` with batch-mode options and only `key`.
    pub fn ssh(&self, user: &str, key: &Key, cmd: &[&str]) -> tokio::process::Command {
        self.ssh_opts(user, key, &[], cmd)
    }

    /// Like [`Harness::ssh`], with more client options before the destination.
    pub fn ssh_opts(
        &self,
        user: &str,
        key: &Key,
        opts: &[&str],
        cmd: &[&str],
    ) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("/usr/bin/ssh");
        c.args(["-F", "/dev/null"])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(opts)
            .args(["-o", "IdentitiesOnly=yes"])
            .args(["-o", "ConnectTimeout=20"])
            .arg("-i")
            .arg(&key.private)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-o", "BatchMode=yes"])
            .arg(format!("{user}@127.0.0.1"))
            .args(cmd)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    }
}

pub async fn output(mut c: tokio::process::Command) -> Output {
    tokio::time::timeout(Duration::from_secs(60), c.output())
        .await
        .expect("ssh did not finish within 60 s")
        .unwrap()
}

pub async fn output_with_stdin(mut c: tokio::process::Command, input: Vec<u8>) -> Output {
    use tokio::io::AsyncWriteExt;
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        drop(stdin);
    });
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("ssh did not finish within 60 s")
        .unwrap();
    let _ = writer.await;
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

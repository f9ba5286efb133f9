//! The node side of the SSH gateway (`slicelab-sshgw`): who may enter which sliver, and how.
//!
//! * Keys come from the node's *current* desired state, shared with the daemon loop
//!   ([`SharedDesired`]): the gateway asks at every login attempt, so removing a person from a
//!   slice revokes their access as soon as the long-poll brings the new state (well under a
//!   second after the change on central). Sessions already open are not cut.
//! * Commands run through the same exec helper as `slicelab exec` (see
//!   [`crate::sandbox`]): it joins the sliver's cgroup and namespaces, forks into the PID
//!   namespace, confines itself like the init and exits with the command's status. It is forked
//!   by the node's exec spawner ([`crate::sandbox::Spawner`]) as the leader of a process group of
//!   its own (with a pty, of a session whose controlling terminal is the pty), which the gateway
//!   kills at channel close; it has no controlling terminal of the node manager's.
//! * A pty, when asked for, is the helper's inherited stdio: a terminal of the *host's* devpts.
//!   The shell gets a working terminal (line editing, window size, job control), but `tty`
//!   inside the sliver names a `/dev/pts/N` that its own devpts does not have.
//! * Files (`sftp`, `scp`) are served under `/proc/<init pid>/root`: the overlay root is mounted
//!   only inside the sliver's mount namespace, so that link is the host's way into it.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, RwLock};

use slicelab_model::objects::BootState;
use slicelab_model::time::now;
use slicelab_model::DesiredSlivers;
use slicelab_sshgw::{
    AuthorizedKey, Login, Program, Service, ServiceRequest, SliverAccess, StartProgram, Started,
    SITE_ADMIN,
};
use tokio::io::AsyncReadExt;

use crate::runtime::LinuxRuntime;
use crate::sandbox::{ExecSpec, Running, Spawner};
use crate::services::capture;
use crate::site_admin::AdminContext;

/// The desired state as last received from central, shared between the daemon loop (writer)
/// and the SSH gateway (reader).
pub type SharedDesired = Arc<RwLock<Option<DesiredSlivers>>>;

/// The node manager's [`SliverAccess`].
pub struct NodeAccess {
    desired: SharedDesired,
    rt: Arc<LinuxRuntime>,
    admin: AdminContext,
    /// Forks the exec helper of each session; without it the gateway spawns the helper itself.
    spawner: Option<Arc<Spawner>>,
}

impl NodeAccess {
    pub fn new(desired: SharedDesired, admin: AdminContext) -> Self {
        Self {
            desired,
            rt: admin.rt.clone(),
            admin,
            spawner: None,
        }
    }

    /// Sessions' programs are forked by `spawner` instead of spawned as a new executable each.
    pub fn with_spawner(mut self, spawner: Arc<Spawner>) -> Self {
        self.spawner = Some(spawner);
        self
    }
}

/// One session's exec helper, to be forked by the [`Spawner`].
struct SpawnedSession {
    spawner: Arc<Spawner>,
    spec: ExecSpec,
}

impl StartProgram for SpawnedSession {
    fn start(self: Box<Self>, stdio: [&OwnedFd; 3], terminal: bool) -> io::Result<Started> {
        let running = self.spawner.spawn(&self.spec, stdio, terminal)?;
        let pid = running.pid;
        let reply = running.into_reply();
        reply.set_nonblocking(true)?;
        let mut reply = tokio::net::UnixStream::from_std(reply)?;
        Ok(Started {
            pid,
            exit: Box::pin(async move {
                let mut b = [0u8; 4];
                reply.read_exact(&mut b).await?;
                Ok(Running::status_of(b))
            }),
        })
    }
}

/// A session's command line: `argv`, or the sliver's login shell when `None`.
fn session_argv(argv: Option<&[String]>) -> io::Result<Vec<String>> {
    match argv {
        Some([]) => Err(io::Error::other("empty command")),
        Some(a) => Ok(a.to_vec()),
        None => Ok(vec!["/bin/sh".into(), "-l".into()]),
    }
}

/// The keys allowed into the node's admin context (`ssh site_admin@NODE`): its staff's, as
/// central last listed them; `None` before central said anything.
pub fn staff_keys(desired: Option<&DesiredSlivers>) -> Option<Vec<AuthorizedKey>> {
    let d = desired?;
    Some(
        d.staff
            .iter()
            .map(|k| AuthorizedKey {
                person: k.person.clone(),
                key: k.key.clone(),
            })
            .collect(),
    )
}

/// The keys allowed into `slice` under `desired` at time `now`: `None` when no sliver of that
/// slice should be running here (unknown, expired, stopped, or the node is not in `boot`).
pub fn slice_keys(
    desired: Option<&DesiredSlivers>,
    slice: &str,
    now: i64,
) -> Option<Vec<AuthorizedKey>> {
    let d = desired?;
    if d.boot_state != BootState::Boot {
        return None;
    }
    d.slivers
        .iter()
        .find(|s| s.slice_name == slice && s.run && s.expires > now)
        .map(|s| {
            s.keys
                .iter()
                .map(|k| AuthorizedKey {
                    person: k.person.clone(),
                    key: k.key.clone(),
                })
                .collect()
        })
}

impl SliverAccess for NodeAccess {
    fn authorized_keys(&self, user: &str) -> Option<Vec<AuthorizedKey>> {
        // A poisoned lock only means a writer panicked mid-assignment of a whole value; the
        // value is still a complete state.
        let g = self.desired.read().unwrap_or_else(|p| p.into_inner());
        if user == SITE_ADMIN {
            return staff_keys(g.as_ref());
        }
        slice_keys(g.as_ref(), user, now())
    }

    fn offers(&self, login: &Login, name: &str) -> bool {
        matches!(login, Login::Slice { .. })
            && (name == capture::SUBSYSTEM || name == crate::traffic::SUBSYSTEM)
    }

    fn service(&self, login: &Login, request: ServiceRequest) -> Service {
        match (login, request) {
            (Login::SiteAdmin { person }, ServiceRequest::Exec(line)) => {
                self.admin.exec(person, line)
            }
            (Login::SiteAdmin { person }, ServiceRequest::Shell) => self.admin.shell(person),
            (Login::Slice { slice, person }, ServiceRequest::Subsystem(name))
                if name == capture::SUBSYSTEM =>
            {
                capture::for_slice(&self.admin, person, slice)
            }
            (Login::Slice { slice, .. }, ServiceRequest::Subsystem(name))
                if name == crate::traffic::SUBSYSTEM =>
            {
                crate::traffic::service(&self.rt, slice)
            }
            _ => Service::Refused("this node offers no such service".into()),
        }
    }

    fn command(
        &self,
        slice: &str,
        argv: Option<&[String]>,
        env: &[(String, String)],
    ) -> io::Result<Command> {
        let argv = session_argv(argv)?;
        self.rt
            .exec_command_env(slice, &argv, env)
            .map_err(|e| io::Error::other(format!("sliver {slice}: {e}")))
    }

    fn program(
        &self,
        slice: &str,
        argv: Option<&[String]>,
        env: &[(String, String)],
    ) -> io::Result<Program> {
        let Some(spawner) = &self.spawner else {
            return self.command(slice, argv, env).map(Program::Command);
        };
        let spec = self
            .rt
            .exec_spec(slice, &session_argv(argv)?, env, None)
            .map_err(|e| io::Error::other(format!("sliver {slice}: {e}")))?;
        Ok(Program::Start(Box::new(SpawnedSession {
            spawner: spawner.clone(),
            spec,
        })))
    }

    fn root(&self, slice: &str) -> Option<PathBuf> {
        let init = self.rt.init_of(slice)?;
        Some(PathBuf::from(format!("/proc/{}/root", init.pid)))
    }

    /// Files copied in over SFTP belong to the sliver's root (its range's base on the host),
    /// exactly as if its root had written them.
    fn file_owner(&self, slice: &str) -> Option<(u32, u32)> {
        self.rt.root_ids(slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slicelab_model::{Resources, SliverSpec};

    fn desired(boot: BootState) -> DesiredSlivers {
        DesiredSlivers {
            node_id: 1,
            hostname: "n1".into(),
            boot_state: boot,
            revision: "r".into(),
            bwlimit: None,
            slivers: vec![SliverSpec {
                slice_id: 1,
                slice_name: "pl_a".into(),
                expires: 100,
                run: true,
                keys: vec![slicelab_model::sliver::SliverKey {
                    person: "a@x".into(),
                    key: "ssh-ed25519 AAAA a@x".into(),
                }],
                resources: Resources::default(),
                image_digest: None,
            }],
            staff: Vec::new(),
        }
    }

    #[test]
    fn staff_keys_are_central_s_list_even_in_safeboot() {
        assert_eq!(
            staff_keys(None),
            None,
            "no admin context before central spoke"
        );
        let mut d = desired(BootState::Safeboot);
        assert_eq!(staff_keys(Some(&d)), Some(vec![]));
        d.staff = vec![slicelab_model::sliver::SliverKey {
            person: "tech@x".into(),
            key: "ssh-ed25519 AAAA tech".into(),
        }];
        let k = staff_keys(Some(&d)).unwrap();
        assert_eq!((k[0].person.as_str(), k.len()), ("tech@x", 1));
    }

    #[test]
    fn keys_only_for_live_slivers_on_booted_nodes() {
        let d = desired(BootState::Boot);
        assert_eq!(slice_keys(Some(&d), "pl_a", 10).map(|k| k.len()), Some(1));
        assert_eq!(slice_keys(Some(&d), "pl_b", 10), None);
        assert_eq!(slice_keys(Some(&d), "pl_a", 100), None, "expired");
        assert_eq!(slice_keys(None, "pl_a", 10), None);
        assert_eq!(
            slice_keys(Some(&desired(BootState::Safeboot)), "pl_a", 10),
            None
        );
    }
}

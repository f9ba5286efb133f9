//! The sliver's service: what its init keeps running.
//!
//! The slice's `initscript` tag wins (run by `/bin/sh -c`, from /root, as root); without one, a
//! published image's own command runs (OCI config: Entrypoint + Cmd, WorkingDir, User), like
//! `docker run IMAGE` would. The image's Env applies to both, and to every `exec`/ssh session.
//! [`Service::for_sliver`] is pure; [`Service::exec`] runs in the forked child, after
//! `pivot_root`, so the user and the command are resolved in the sliver's own files.

use std::ffi::CString;
use std::fs;

use nix::unistd::{chdir, execve, setgid, setgroups, setuid, Gid, Uid};
use serde::{Deserialize, Serialize};
use slicelab_model::image::ImageConfig;

use super::init::sliver_env;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub argv: Vec<String>,
    /// `NAME=value`, over the sliver's defaults (`PATH`, `HOME`, `TERM`, `SLICE`).
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// `user[:group]`, names or numbers.
    pub user: Option<String>,
}

impl Service {
    /// The service of a sliver with this `initscript` tag and image config (`None`: nothing
    /// runs but the init).
    pub fn for_sliver(initscript: Option<&str>, image: Option<&ImageConfig>) -> Option<Self> {
        let env = image.map(|c| c.env.clone()).unwrap_or_default();
        if let Some(script) = initscript {
            return Some(Self {
                argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
                env,
                cwd: Some("/root".into()),
                user: None,
            });
        }
        let c = image?;
        let argv = c.command();
        if argv.is_empty() {
            return None;
        }
        Some(Self {
            argv,
            env,
            cwd: c.working_dir.clone().filter(|d| !d.is_empty()),
            user: c.user.clone().filter(|u| !u.is_empty()),
        })
    }

    /// The environment the service (or a session) gets: defaults, then the image's Env.
    pub fn environment(slice: &str, image_env: &[String]) -> Vec<CString> {
        let mut env: Vec<(String, String)> = Vec::new();
        let defaults = sliver_env(slice);
        let pairs = defaults
            .iter()
            .filter_map(|c| c.to_str().ok().map(String::from))
            .chain(image_env.iter().cloned());
        for kv in pairs {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match env.iter_mut().find(|(ek, _)| ek == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => env.push((k.to_string(), v.to_string())),
            }
        }
        env.into_iter()
            .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
            .collect()
    }

    /// In the forked child: become the user, enter the directory, exec. Returns only on error.
    pub fn exec(&self, slice: &str) -> String {
        match self.prepare(slice) {
            Ok(e) => e.run(),
            Err(e) => e,
        }
    }

    /// In the forked child: become the user, enter the directory and find the program, all
    /// that comes before the `exec` itself (the first service process does it before its
    /// release, so the release costs only the `exec`).
    pub fn prepare(&self, slice: &str) -> Result<Exec, String> {
        let env = Self::environment(slice, &self.env);
        if let Some(u) = &self.user {
            let (uid, gid) = resolve_user(
                u,
                &fs::read_to_string("/etc/passwd").unwrap_or_default(),
                &fs::read_to_string("/etc/group").unwrap_or_default(),
            )?;
            setgroups(&[Gid::from_raw(gid)])
                .and_then(|_| setgid(Gid::from_raw(gid)))
                .and_then(|_| setuid(Uid::from_raw(uid)))
                .map_err(|e| format!("becoming user {u}: {e}"))?;
        }
        let cwd = self.cwd.as_deref().unwrap_or("/");
        if chdir(cwd).is_err() {
            let _ = chdir("/");
        }
        let prog = self.argv.first().ok_or("empty command")?;
        let path = env
            .iter()
            .filter_map(|c| c.to_str().ok())
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or("/usr/bin:/bin")
            .to_string();
        let exe =
            find_program(prog, &path).ok_or_else(|| format!("{prog}: not found in PATH {path}"))?;
        let argv = self
            .argv
            .iter()
            .filter_map(|a| CString::new(a.as_str()).ok())
            .collect();
        let exe = CString::new(exe).map_err(|e| e.to_string())?;
        Ok(Exec {
            prog: prog.clone(),
            exe,
            argv,
            env,
        })
    }
}

/// A service ready to `exec` ([`Service::prepare`]).
pub struct Exec {
    prog: String,
    exe: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
}

impl Exec {
    /// Execs the service. Returns only on error.
    pub fn run(&self) -> String {
        format!(
            "exec {}: {}",
            self.prog,
            execve(&self.exe, &self.argv, &self.env)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        )
    }
}

/// `prog` itself if it has a `/`, else the first executable file of that name on `path`.
fn find_program(prog: &str, path: &str) -> Option<String> {
    if prog.contains('/') {
        return Some(prog.to_string());
    }
    path.split(':').filter(|d| !d.is_empty()).find_map(|d| {
        let p = format!("{d}/{prog}");
        nix::unistd::access(p.as_str(), nix::unistd::AccessFlags::X_OK)
            .ok()
            .map(|_| p)
    })
}

/// `user[:group]` (names or numbers) against passwd/group text: (uid, gid). A user without a
/// group takes its passwd entry's group (0 for an unlisted number).
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32), String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = |text: &str, name: &str| -> Option<Vec<String>> {
        text.lines()
            .map(|l| l.split(':').map(String::from).collect::<Vec<_>>())
            .find(|f| f.len() >= 4 && (f[0] == name || f[2] == name))
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (
            n,
            entry(passwd, user)
                .and_then(|f| f[3].parse().ok())
                .unwrap_or(0),
        ),
        Err(_) => {
            let f = entry(passwd, user)
                .ok_or_else(|| format!("user {user:?} is not in the image's /etc/passwd"))?;
            let uid = f[2].parse().map_err(|_| format!("bad uid for {user:?}"))?;
            (
                uid,
                f[3].parse().map_err(|_| format!("bad gid for {user:?}"))?,
            )
        }
    };
    let gid = match grp {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => entry(group, g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("group {g:?} is not in the image's /etc/group"))?,
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initscript_wins_then_the_image_command() {
        let img = ImageConfig {
            env: vec!["PATH=/opt/bin:/usr/bin".into(), "LANG=C.UTF-8".into()],
            entrypoint: vec!["python3".into()],
            cmd: vec!["-m".into(), "http.server".into()],
            working_dir: Some("/srv".into()),
            user: Some("www-data".into()),
        };
        let s = Service::for_sliver(Some("echo hi"), Some(&img)).unwrap();
        assert_eq!(s.argv, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(s.env, img.env);
        assert_eq!(s.user, None);
        let s = Service::for_sliver(None, Some(&img)).unwrap();
        assert_eq!(s.argv, ["python3", "-m", "http.server"]);
        assert_eq!(
            (s.cwd.as_deref(), s.user.as_deref()),
            (Some("/srv"), Some("www-data"))
        );
        assert_eq!(
            Service::for_sliver(None, Some(&ImageConfig::default())),
            None
        );
        assert_eq!(Service::for_sliver(None, None), None);
    }

    #[test]
    fn image_env_overrides_the_defaults() {
        let env = Service::environment(
            "pl_a",
            &["PATH=/opt/bin".into(), "X=1".into(), "junk".into()],
        );
        let env: Vec<&str> = env.iter().map(|c| c.to_str().unwrap()).collect();
        assert!(env.contains(&"PATH=/opt/bin"));
        assert!(env.contains(&"X=1") && env.contains(&"SLICE=pl_a"));
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
    }

    #[test]
    fn users_resolve_by_name_or_number() {
        let passwd = "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n";
        let group = "root:x:0:\nwww-data:x:33:\nstaff:x:50:\n";
        assert_eq!(resolve_user("www-data", passwd, group), Ok((33, 33)));
        assert_eq!(resolve_user("33:staff", passwd, group), Ok((33, 50)));
        assert_eq!(resolve_user("1000:1000", passwd, group), Ok((1000, 1000)));
        assert_eq!(resolve_user("1000", passwd, group), Ok((1000, 0)));
        assert!(resolve_user("nobody", passwd, group)
            .unwrap_err()
            .contains("nobody"));
        assert!(resolve_user("root:wheel", passwd, group).is_err());
    }
}

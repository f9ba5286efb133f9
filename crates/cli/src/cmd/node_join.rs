//! Bringing a machine in as a node: `node add` / `node join-token` print the one command to run
//! on it; `node join` checks the kernel (`slicelab_node::doctor`), trades the single-use token
//! for the node key over verified TLS, writes `/etc/slicelab/node.{env,key}` and starts the
//! node manager's systemd unit; `node doctor` re-runs the checks, and asks central once joined.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use slicelab_client::Client;
use slicelab_model::{JoinToken, Node};
use slicelab_node::doctor::{self, Check};

use crate::args::{NodeDoctorArgs, NodeJoinArgs, Output, TrustArgs};
use crate::output::emit;

/// The systemd unit `node join` installs when the package has not (kept in `dist/systemd`).
const NODE_UNIT: &str = include_str!("../../../../dist/systemd/slicelab-node.service");
const UNIT_NAME: &str = "slicelab-node.service";

/// What `node add` and `node join-token` print: the token and the command using it.
#[derive(Debug, Serialize)]
pub struct JoinCommand {
    #[serde(flatten)]
    pub token: JoinToken,
    pub command: String,
}

/// The command that joins a machine as the token's node, trusting central as this login does.
pub(crate) fn join_command(t: JoinToken, central: &str, trust: &TrustArgs) -> JoinCommand {
    let mut command = format!("slicelab node join {central} --token {}", t.token);
    match (&trust.ca_fingerprint, &trust.ca) {
        (Some(fp), _) => {
            let _ = write!(command, " --ca-fingerprint {fp}");
        }
        (None, Some(file)) => {
            let _ = write!(command, " --ca {}", file.display());
        }
        (None, None) => {}
    }
    if trust.allow_plain_http {
        command.push_str(" --allow-plain-http");
    }
    JoinCommand { token: t, command }
}

pub(crate) fn join_text(j: &JoinCommand, now: i64) -> String {
    format!(
        "Join a machine as {node}: run this there, as root (the token works once, for {}):\n\n    \
         {}\n",
        crate::timefmt::fmt_span(j.token.expires - now),
        j.command,
        node = j.token.node,
    )
}

/// `node doctor` / the first step of `node join`: the report, as text.
fn report(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let mark = match (c.ok, c.required) {
            (true, _) => "ok  ",
            (false, true) => "FAIL",
            (false, false) => "warn",
        };
        let _ = writeln!(s, "  {mark}  {:16} {}", c.name, c.detail);
    }
    s
}

#[derive(Debug, Serialize)]
struct Doctor {
    ready: bool,
    checks: Vec<Check>,
    /// The node's contact with central, when this machine has joined.
    central: Option<String>,
}

pub(crate) async fn doctor(out: Output, a: NodeDoctorArgs) -> Result<()> {
    let mut checks = doctor::run(&a.state_dir);
    let env_file = a.config_dir.join("node.env");
    let central = if env_file.exists() {
        let c = central_check(&env_file).await;
        checks.push(c.clone());
        Some(c.detail)
    } else {
        None
    };
    let d = Doctor {
        ready: doctor::ready(&checks),
        checks,
        central,
    };
    emit(out, &d, |d| {
        format!(
            "{}\n{}\n",
            report(&d.checks),
            if d.ready {
                "This machine can run a node."
            } else {
                "This machine cannot run a node yet: fix the FAIL lines above."
            }
        )
    })?;
    if !d.ready {
        return Err(crate::error::CliError::Invalid(
            "this machine is not ready to be a node".into(),
        )
        .into());
    }
    Ok(())
}

/// Central answers the node's key from `node.env` over the configured TLS.
async fn central_check(env_file: &Path) -> Check {
    let r = async {
        let env = read_env(env_file)?;
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let central = get("SLICELAB_CENTRAL").context("node.env names no SLICELAB_CENTRAL")?;
        let key_file = get("SLICELAB_NODE_KEY_FILE").context("node.env names no key file")?;
        let key = fs::read_to_string(&key_file)
            .with_context(|| format!("reading {key_file}"))?
            .trim()
            .to_string();
        let trust = TrustArgs {
            ca: get("SLICELAB_CA").map(Into::into),
            ca_fingerprint: get("SLICELAB_CA_FINGERPRINT"),
            allow_plain_http: get("SLICELAB_ALLOW_PLAIN_HTTP").is_some(),
        };
        let client = Client::connect(&crate::trust::endpoint(&central, &trust)?, Some(key))?;
        client
            .desired_slivers(None, std::time::Duration::from_secs(0))
            .await?;
        anyhow::Ok(format!("{} answers this node's key", client.base()))
    }
    .await;
    Check {
        name: "central",
        ok: r.is_ok(),
        required: true,
        detail: r.unwrap_or_else(|e| format!("{e:#}")),
    }
}

/// `KEY=VALUE` lines (no quoting: node.env is ours).
fn read_env(path: &Path) -> Result<Vec<(String, String)>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

#[derive(Debug, Serialize)]
struct Joined {
    node: Node,
    config: String,
    started: &'static str,
}

pub(crate) async fn join(out: Output, a: NodeJoinArgs) -> Result<()> {
    let checks = doctor::run(&a.state_dir);
    eprint!("Checking this machine:\n{}", report(&checks));
    if !doctor::ready(&checks) && !a.skip_checks {
        bail!(
            "this machine cannot run a node yet (the FAIL lines above say what is missing); \
             nothing was changed and the token is still good"
        );
    }
    let endpoint = crate::trust::endpoint(&a.central, &a.trust)?;
    let client = Client::connect(&endpoint, None)?;
    let nk = client
        .join(&a.token)
        .await
        .with_context(|| format!("joining through {}", client.base()))?;
    let config = write_config(&a, &nk.node_key)?;
    let started = if a.no_start {
        "not started (--no-start)"
    } else {
        start_unit(&a.config_dir)?
    };
    let j = Joined {
        node: nk.node,
        config: config.display().to_string(),
        started,
    };
    emit(out, &j, |j| {
        format!(
            "Joined as {} (site {}). Configuration: {}\nNode manager: {}\n",
            j.node.hostname, j.node.site, j.config, j.started
        )
    })
}

/// Writes `node.key` and `node.env` (both 0600) in the config dir; returns node.env's path.
fn write_config(a: &NodeJoinArgs, key: &str) -> Result<std::path::PathBuf> {
    let dir = &a.config_dir;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key_file = dir.join("node.key");
    crate::config::write_private(&key_file, &format!("{key}\n"))?;
    let mut env = format!(
        "# Written by `slicelab node join`; read by slicelab-node.service.\n\
         SLICELAB_CENTRAL={}\nSLICELAB_NODE_KEY_FILE={}\nSLICELAB_STATE_DIR={}\n",
        a.central,
        key_file.display(),
        a.state_dir.display()
    );
    if let Some(fp) = &a.trust.ca_fingerprint {
        let _ = writeln!(env, "SLICELAB_CA_FINGERPRINT={fp}");
    }
    if let Some(ca) = &a.trust.ca {
        let copy = dir.join("central-ca.pem");
        fs::copy(ca, &copy).with_context(|| format!("copying {}", ca.display()))?;
        let _ = writeln!(env, "SLICELAB_CA={}", copy.display());
    }
    if a.trust.allow_plain_http {
        env.push_str("SLICELAB_ALLOW_PLAIN_HTTP=true\n");
    }
    if let Some(l) = a.ssh_listen {
        let _ = writeln!(env, "SLICELAB_SSH_LISTEN={l}");
    }
    if let Some(args) = a
        .node_args
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if args.contains('\n') {
            bail!("--node-args must be one line");
        }
        let _ = writeln!(env, "SLICELAB_NODE_ARGS={args}");
    }
    let env_file = dir.join("node.env");
    crate::config::write_private(&env_file, &env)?;
    Ok(env_file)
}

/// Installs the unit (unless the package did) and starts it; without systemd as init, says how
/// to start the node manager instead.
fn start_unit(config_dir: &Path) -> Result<&'static str> {
    if !Path::new("/run/systemd/system").is_dir() {
        eprintln!(
            "systemd is not running here: start the node manager with\n    \
             set -a; . {}/node.env; set +a; slicelab node",
            config_dir.display()
        );
        return Ok("not started (no systemd): see above");
    }
    let packaged = Path::new("/lib/systemd/system").join(UNIT_NAME);
    if !packaged.exists() {
        // Not from the package: the unit runs this binary, wherever it was installed.
        let exe = std::env::current_exe().context("finding this binary")?;
        let unit = NODE_UNIT.replace("/usr/bin/slicelab ", &format!("{} ", exe.display()));
        let local = Path::new("/etc/systemd/system").join(UNIT_NAME);
        fs::write(&local, unit).with_context(|| format!("writing {}", local.display()))?;
    }
    for args in [&["daemon-reload"][..], &["enable", "--now", UNIT_NAME]] {
        let st = Command::new("systemctl")
            .args(args)
            .status()
            .context("running systemctl")?;
        if !st.success() {
            bail!("systemctl {} failed ({st})", args.join(" "));
        }
    }
    Ok("slicelab-node.service enabled and started")
}

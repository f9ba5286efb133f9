//! The testbed's central: a `slicelab central` process on the bridge address with a SQLite file
//! in the testbed dir and a random admin password, and logging in to it once it answers.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use slicelab_client::{Client, Endpoint, Trust};

use super::keys::random_password;
use super::process::{log_file, spawn_in_netns};
use super::{host_addr, Testbed, DOMAIN};
use crate::args::UpArgs;

/// An email and password to log in with.
pub(super) struct Account {
    pub(super) email: String,
    pub(super) password: String,
}

/// The running central, its admin account and the admin's session.
pub(super) struct Central {
    pub(super) child: Child,
    pub(super) url: String,
    /// The URL with the CA to trust.
    pub(super) endpoint: Endpoint,
    /// The fingerprint of central's own CA.
    pub(super) ca_fingerprint: String,
    pub(super) admin: Client,
    pub(super) admin_account: Account,
}

/// Starts central (recording it in `tb`) and logs in as its admin.
pub(super) async fn start_central(exe: &Path, a: &UpArgs, tb: &mut Testbed) -> Result<Central> {
    let dir = &a.dir;
    let admin_email = format!("admin@{DOMAIN}");
    let admin_password = random_password()?;
    let listen = format!("{}:{}", host_addr(), a.port);
    let url = format!("https://{listen}");
    // The CA central will use, made now (central finds it on start) so its fingerprint is
    // known before central answers.
    let tls_dir = dir.join("tls");
    let names = vec![host_addr().to_string(), format!("central.{DOMAIN}")];
    let ca_fingerprint = slicelab_central::tls::load(&slicelab_central::TlsSource::OwnCa {
        dir: tls_dir.clone(),
        names: names.clone(),
    })
    .context("making central's CA")?
    .ca_fingerprint
    .context("central's own CA has no fingerprint")?;
    let endpoint = Endpoint::new(&url).trust(Trust::fingerprint(&ca_fingerprint)?);
    let mut c = Command::new(exe);
    c.args([
        "central",
        "--listen",
        &listen,
        "--admin-email",
        &admin_email,
        "--tls-name",
        &names.join(","),
    ])
    .arg("--tls-dir")
    .arg(&tls_dir)
    .arg("--db")
    .arg(format!("sqlite://{}", dir.join("central.db").display()))
    .env("SLICELAB_ADMIN_PASSWORD", &admin_password)
    .env_remove("SLICELAB_DB")
    .stdin(Stdio::null())
    .stdout(log_file(dir, "central.log")?)
    .stderr(log_file(dir, "central.err.log")?);
    let mut child = spawn_in_netns(&mut c, None)?;
    tb.central_pid = Some(child.id() as i32);
    tb.central_url = url.clone();
    tb.central_ca_fingerprint = Some(ca_fingerprint.clone());
    tb.save(dir)?;
    let (admin, _) = login_retry(&endpoint, &admin_email, &admin_password, &mut child).await?;
    Ok(Central {
        child,
        url,
        endpoint,
        ca_fingerprint,
        admin,
        admin_account: Account {
            email: admin_email,
            password: admin_password,
        },
    })
}

/// Logs in as `email`, retrying while central starts (up to 30 s, or until it exits). Returns
/// a client with the session and the session token.
pub(super) async fn login_retry(
    endpoint: &Endpoint,
    email: &str,
    pw: &str,
    central: &mut Child,
) -> Result<(Client, String)> {
    let anon = Client::connect(endpoint, None)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match anon.login(email, pw).await {
            Ok(r) => return Ok((anon.with_token(r.token.clone()), r.token)),
            Err(e) => {
                if let Ok(Some(st)) = central.try_wait() {
                    bail!("central exited ({st}); see its log in the testbed dir's logs/");
                }
                if Instant::now() > deadline {
                    return Err(e).context("central did not come up within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

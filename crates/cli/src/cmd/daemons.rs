//! The two daemons the binary starts: `slicelab central` (with the web interface mounted) and the
//! node manager (`slicelab node --central URL --key KEY`). Both run until a signal; neither needs
//! a login. Which database central opens by default is `crate::db_url`'s policy.

use anyhow::{Context, Result};

use crate::args::{CentralArgs, NodeDaemonArgs, NodeNamesArgs};
use crate::db_url;
use crate::error::CliError;
use crate::output::print;

/// `slicelab central`: serves the API and web pages until SIGINT/SIGTERM.
pub(crate) async fn central(a: CentralArgs) -> Result<()> {
    let db_url = db_url::resolve(a.db.clone());
    db_url::create_sqlite_dir(&db_url)?;
    let admin_password = std::env::var("SLICELAB_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let tls = tls_source(&a, &db_url);
    if let Some(name) = &a.authority {
        slicelab_model::names::login_base(name)
            .map_err(|e| CliError::Usage(format!("--authority {name:?}: {}", e.message)))?;
    }
    let running = slicelab_central::start_federated(
        slicelab_central::Config {
            db_url: db_url.clone(),
            listen: a.listen,
            admin_email: a.admin_email.clone(),
            admin_password,
            tls,
        },
        slicelab_central::BlobConfig {
            blob_dir: a.blob_dir.clone(),
            ..Default::default()
        },
        slicelab_web::router(),
        slicelab_central::peering::Federation {
            authority: a.authority.clone(),
            sync_every: std::time::Duration::from_secs(a.peer_sync),
        },
    )
    .await
    .with_context(|| {
        format!(
            "starting central (database {})",
            slicelab_central::redact(&db_url)
        )
    })?;
    let url = running.url();
    let mut text = format!(
        "central: serving {url}/api/v1 (database {})\n",
        slicelab_central::redact(&db_url)
    );
    let mut login_flags = String::new();
    if let Some(t) = &running.tls {
        if let (Some(fp), Some(file)) = (&t.ca_fingerprint, &t.ca_file) {
            text.push_str(&format!(
                "central: its own CA ({}) has fingerprint\n    {fp}\n",
                file.display()
            ));
            login_flags = format!(" --ca-fingerprint {fp}");
        }
    } else if !a.listen.ip().is_loopback() {
        text.push_str("central: WARNING: plain HTTP on a network address (--no-tls)\n");
    }
    if let Some(pw) = &running.generated_admin_password {
        text.push_str(&format!(
            "\nCreated the admin account. Its password is shown only this once:\n\n    \
             email:     {email}\n    password:  {pw}\n\n\
             Log in with:  slicelab login --central {url} --email {email}{login_flags}\n\n",
            email = a.admin_email
        ));
    }
    print(&text)?;
    running.wait_for_signal().await?;
    Ok(())
}

/// The TLS central serves: the files given, none (`--no-tls`), or its own CA for the names
/// clients may use (the listen address, the host name, `--tls-name`).
fn tls_source(a: &CentralArgs, db_url: &str) -> Option<slicelab_central::TlsSource> {
    if a.no_tls {
        return None;
    }
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        return Some(slicelab_central::TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    let mut names = a.tls_name.clone();
    if !a.listen.ip().is_unspecified() {
        names.push(a.listen.ip().to_string());
    }
    if let Ok(h) = nix::unistd::gethostname() {
        names.extend(h.into_string().ok().filter(|h| !h.is_empty()));
    }
    Some(slicelab_central::TlsSource::OwnCa {
        dir: a
            .tls_dir
            .clone()
            .unwrap_or_else(|| db_url::default_tls_dir(db_url)),
        names,
    })
}

/// `slicelab node --central URL --key KEY`: runs the node manager on this machine.
pub(crate) async fn node_manager(a: NodeDaemonArgs) -> Result<()> {
    let central = a.central.ok_or_else(|| {
        CliError::Usage("the node manager needs --central URL (see `slicelab node --help`)".into())
    })?;
    let key =
        match (a.key, a.key_file) {
            (Some(k), _) => k,
            (None, Some(f)) => std::fs::read_to_string(&f)
                .with_context(|| format!("reading the node key from {}", f.display()))?
                .trim()
                .to_string(),
            (None, None) => return Err(CliError::Usage(
                "the node manager needs --key KEY or --key-file FILE (see `slicelab node --help`)"
                    .into(),
            )
            .into()),
        };
    if key.is_empty() {
        return Err(CliError::Usage("the node key is empty".into()).into());
    }
    let endpoint = crate::trust::endpoint(&central, &a.trust)?;
    slicelab_node::run(slicelab_node::Config {
        central,
        trust: endpoint.trust,
        allow_plain_http: a.trust.allow_plain_http,
        key,
        state_dir: a.state_dir,
        names: node_names(&a.names),
        ssh_listen: a.ssh_listen,
        ssh_host_key: a.ssh_host_key,
        image_mirrors: a.image_mirror,
        image_budget: a
            .image_budget
            .map_or(slicelab_node::daemon::DEFAULT_IMAGE_BUDGET, |g| g << 30),
        uplink: a.uplink,
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// The node instance's names: the defaults, with what the flags change.
pub fn node_names(a: &NodeNamesArgs) -> slicelab_node::NodeNames {
    let mut n = slicelab_node::NodeNames::default();
    if let Some(g) = &a.gateway_if {
        n.gateway_if = g.clone();
    }
    if let Some(s) = a.subnet {
        n.subnet = s;
    }
    if let Some(t) = &a.nft_table {
        n.nft_table = t.clone();
    }
    if let Some(c) = &a.cgroup_parent {
        n.cgroup_parent = c.clone();
    }
    n
}

//! `slicelab login`, `logout` and `whoami`: the saved session.

use anyhow::Result;
use slicelab_client::Client;

use crate::args::{LoginArgs, Output};
use crate::config::Config;
use crate::output::emit;
use crate::password;
use crate::render;
use crate::session::{load_config, session, DEFAULT_CENTRAL};
use crate::timefmt::{self, fmt_time_relative};

pub(crate) async fn login(out: Output, a: LoginArgs) -> Result<()> {
    let (mut cfg, path) = load_config()?;
    let central = a
        .central
        .or_else(|| cfg.central.clone())
        .unwrap_or_else(|| DEFAULT_CENTRAL.to_string());
    let email = match a.email.or_else(|| cfg.email.clone()) {
        Some(e) => e,
        None => password::prompt("email: ", true)?,
    };
    let pw = password::password(
        a.password_stdin,
        "SLICELAB_PASSWORD",
        &format!("password for {email}: "),
    )?;
    let mut trust = a.trust.clone();
    if let Some(fp) = crate::trust::ask_first_time(&central, &trust).await? {
        trust.ca_fingerprint = Some(fp);
    }
    let endpoint = crate::trust::endpoint(&central, &trust)?;
    let resp = Client::connect(&endpoint, None)?.login(&email, &pw).await?;
    crate::trust::save(&mut cfg, &trust);
    cfg.central = Some(central.clone());
    cfg.token = Some(resp.token.clone());
    cfg.email = Some(resp.person.email.clone());
    cfg.save(&path)?;
    let now = timefmt::now();
    emit(out, &resp.person, |p| {
        format!(
            "Logged in to {central} as {} ({}); the session expires {}.\nSaved in {}.\n",
            p.email,
            p.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            fmt_time_relative(resp.expires, now),
            path.display()
        )
    })
}

pub(crate) async fn logout() -> Result<()> {
    let s = session()?;
    match s.client.logout().await {
        Ok(()) => {}
        // An expired or revoked session is as good as logged out.
        Err(e) if e.status() == Some(401) => {}
        Err(e) => return Err(e.into()),
    }
    let mut file = Config::load(&s.path)?;
    if file.token.is_some() {
        file.token = None;
        file.save(&s.path)?;
    }
    eprintln!("Logged out of {}.", s.client.base());
    Ok(())
}

pub(crate) async fn whoami(out: Output) -> Result<()> {
    let s = session()?;
    let me = s.client.whoami().await?;
    emit(out, &me, |p| {
        format!("{}central:  {}\n", render::person(p), s.client.base())
    })
}

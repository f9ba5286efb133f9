//! The demo registry `up` creates on its fresh central: the demo sites, a PI and a user (with the
//! demo user's SSH key), and the demo slice with its ports. Nodes are registered as they start
//! (`nodes`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use slicelab_client::Client;
use slicelab_model::objects::{KeyCreate, PersonCreate, SiteCreate, SliceCreate, SliceTagSet};
use slicelab_model::{Role, TagName};

use super::central::{login_retry, Central};
use super::keys::{random_password, user_key};
use super::{site_name, Testbed, DEMO_PORT, DEMO_SLICE, DOMAIN};
use crate::args::UpArgs;

/// The demo persons: a PI (who owns the demo slice) and a user.
pub(super) struct People {
    /// The PI's session token.
    pub(super) pi_token: String,
    pub(super) pi_email: String,
    pub(super) user_email: String,
    /// The password of both demo persons.
    pub(super) person_password: String,
    /// The demo user's private key, and whether `up` generated it.
    pub(super) user_key: PathBuf,
    pub(super) user_key_generated: bool,
}

/// Creates the demo sites, persons and slice (recording the user's key in `tb`); returns the
/// PI's session with the persons.
pub(super) async fn seed_registry(
    a: &UpArgs,
    tb: &mut Testbed,
    central: &mut Central,
) -> Result<(Client, People)> {
    seed_sites(&central.admin, a.sites).await?;
    let person_password = random_password()?;
    let pi_email = format!("pi@demo.{DOMAIN}");
    let user_email = format!("user@demo.{DOMAIN}");
    for (email, first, role) in [
        (&pi_email, "Pat", Role::Pi),
        (&user_email, "Uma", Role::User),
    ] {
        central
            .admin
            .create_person(&PersonCreate {
                email: email.clone(),
                first_name: first.into(),
                last_name: "Demo".into(),
                password: Some(person_password.clone()),
                roles: vec![role],
                sites: vec!["demo".into()],
            })
            .await
            .with_context(|| format!("creating {email}"))?;
    }
    let (public, private, generated) = user_key(&a.dir)?;
    central
        .admin
        .add_key(&user_email, &KeyCreate { key: public })
        .await
        .context("adding the demo user's SSH key")?;
    tb.user_key = Some(private.clone());
    let (pi, pi_token) = login_retry(
        &central.endpoint,
        &pi_email,
        &person_password,
        &mut central.child,
    )
    .await?;
    create_demo_slice(&pi, &[pi_email.clone(), user_email.clone()]).await?;
    let people = People {
        pi_token,
        pi_email,
        user_email,
        person_password,
        user_key: private,
        user_key_generated: generated,
    };
    Ok((pi, people))
}

/// Sites `demo`, `site2`, ... (`sites` of them).
async fn seed_sites(admin: &Client, sites: u8) -> Result<()> {
    for k in 0..sites {
        let login_base = site_name(k);
        admin
            .create_site(&SiteCreate {
                name: if k == 0 {
                    "Demo University".into()
                } else {
                    format!("Demo Site {}", k + 1)
                },
                login_base,
                url: String::new(),
                max_slices: 10,
                latitude: None,
                longitude: None,
            })
            .await
            .context("creating the demo sites")?;
    }
    Ok(())
}

/// The demo slice, with `persons` in it and its service's port open.
async fn create_demo_slice(pi: &Client, persons: &[String]) -> Result<()> {
    pi.create_slice(&SliceCreate {
        name: DEMO_SLICE.into(),
        description: "The demo slice of `slicelab up`: a web page on every node".into(),
        url: String::new(),
    })
    .await
    .context("creating the demo slice")?;
    pi.add_slice_persons(DEMO_SLICE, persons)
        .await
        .context("adding persons to the demo slice")?;
    pi.set_slice_tag(
        DEMO_SLICE,
        TagName::Ports,
        &SliceTagSet {
            value: format!("{DEMO_PORT}/tcp"),
            node: None,
        },
    )
    .await
    .context("setting the demo slice's ports")?;
    Ok(())
}

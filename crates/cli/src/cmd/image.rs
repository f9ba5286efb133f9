//! `slicelab image`: `import`, `pull` and `build` make an image source locally
//! (`slicelab_image`) and publish it (`image_publish`); `list`, `show` and `delete` ask central.

use std::collections::HashMap;

use anyhow::{Context, Result};
use slicelab_client::{Client, Paging, SiteFilter};
use slicelab_image::registry::RegistryAuth;
use slicelab_model::image::Visibility;

use super::image_publish::publish as publish_image;
use crate::args::{ImageCmd, Output, PublishArgs, VisibilityArg};
use crate::output::{emit, emit_list};
use crate::render;
use crate::session::session;

/// Site ids → login bases (sites are public; a testbed has at most a page of them).
async fn site_names(c: &Client) -> Result<HashMap<i64, String>> {
    let f = SiteFilter {
        paging: Paging {
            limit: Some(1000),
            offset: None,
        },
        ..Default::default()
    };
    Ok(c.sites(&f)
        .await?
        .items
        .into_iter()
        .map(|s| (s.id, s.login_base))
        .collect())
}

pub(crate) async fn image(out: Output, c: ImageCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    match c {
        ImageCmd::Import {
            name,
            file,
            publish,
        } => {
            let f = file.clone();
            let src = tokio::task::spawn_blocking(move || slicelab_image::archive::open(&f))
                .await
                .context("image import task")?
                .with_context(|| format!("reading {}", file.display()))?;
            published(out, c_, &name, &publish, &src).await
        }
        ImageCmd::Pull {
            name,
            reference,
            user,
            password_stdin,
            insecure,
            publish,
        } => {
            let auth = match (user, password_stdin) {
                (Some(user), true) => {
                    let mut password = String::new();
                    std::io::stdin()
                        .read_line(&mut password)
                        .context("reading the registry password from stdin")?;
                    RegistryAuth::Basic {
                        user,
                        password: password.trim_end_matches(['\r', '\n']).to_string(),
                    }
                }
                _ => RegistryAuth::Anonymous,
            };
            eprintln!("Pulling {reference}...");
            let src = slicelab_image::registry::pull(&reference, &auth, insecure)
                .await
                .with_context(|| format!("pulling {reference}"))?;
            published(out, c_, &name, &publish, &src).await
        }
        ImageCmd::Build {
            name,
            debian,
            include,
            mirror,
            publish,
        } => {
            let dir = tempfile::tempdir().context("a scratch directory")?;
            let tarball = dir.path().join(format!(
                "{name}.{}",
                slicelab_image::build::TARBALL_EXTENSION
            ));
            let t = tarball.clone();
            let src = tokio::task::spawn_blocking(move || {
                let mut progress = |l: &str| eprintln!("  {l}");
                slicelab_image::build::debian(
                    &debian,
                    &include,
                    mirror.as_deref(),
                    &t,
                    &mut progress,
                )?;
                slicelab_image::archive::open(&t)
            })
            .await
            .context("image build task")??;
            published(out, c_, &name, &publish, &src).await
        }
        ImageCmd::List => {
            let list = c_.images().await?;
            let sites = match out {
                Output::Table if !list.is_empty() => site_names(c_).await?,
                _ => HashMap::new(),
            };
            emit_list(out, &list, |l| render::images(l, &sites))
        }
        ImageCmd::Show { name } => {
            let img = c_.image(&name).await?;
            let sites = match out {
                Output::Table => site_names(c_).await?,
                Output::Json => HashMap::new(),
            };
            emit(out, &img, |i| render::image(i, &sites))
        }
        ImageCmd::Delete { name } => {
            c_.delete_image(&name).await?;
            eprintln!("Deleted image {name}.");
            Ok(())
        }
    }
}

/// Publishes `src` as `name` with `publish`'s visibility and site, then shows it.
async fn published(
    out: Output,
    c: &Client,
    name: &str,
    publish: &PublishArgs,
    src: &slicelab_image::ImageSource,
) -> Result<()> {
    let site_id = match &publish.site {
        Some(login_base) => Some(
            c.site(login_base)
                .await
                .with_context(|| format!("looking up site {login_base}"))?
                .id,
        ),
        None => None,
    };
    let visibility = match publish.visibility {
        VisibilityArg::Site => Visibility::Site,
        VisibilityArg::Platform => Visibility::Platform,
    };
    let mut progress = |l: &str| eprintln!("  {l}");
    let img = publish_image(c, name, visibility, site_id, src, &mut progress).await?;
    eprintln!("Published image {name} ({}).", img.digest);
    let sites = match out {
        Output::Table => site_names(c).await?,
        Output::Json => HashMap::new(),
    };
    emit(out, &img, |i| render::image(i, &sites))
}

//! `slicelab image list | show | delete`: the images published at central; `image import`,
//! which acts on this node only and needs no login, runs in `local`.

use std::collections::HashMap;

use anyhow::Result;
use slicelab_client::{Client, Paging, SiteFilter};

use crate::args::{ImageCmd, Output};
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
    if let ImageCmd::Import {
        name,
        dir,
        state_dir,
    } = c
    {
        return super::local::image_import(name, dir, state_dir).await;
    }
    let s = session()?;
    let c_ = &s.client;
    match c {
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
        // Handled above: it needs no session.
        ImageCmd::Import { .. } => Ok(()),
    }
}

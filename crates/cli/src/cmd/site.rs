//! `slicelab site`: add, list, show, change and delete sites.

use anyhow::Result;
use slicelab_client::{Client, SiteFilter};
use slicelab_model::{SiteCreate, SiteUpdate};

use super::flags::nothing_to_change;
use crate::args::{ListArgs, Output, SiteCmd};
use crate::output::{emit, emit_page};
use crate::paging::fetch;
use crate::render;
use crate::session::session;

pub(crate) async fn site(out: Output, c: SiteCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    match c {
        SiteCmd::Add {
            login_base,
            name,
            url,
            max_slices,
            lat,
            lon,
        } => {
            let body = SiteCreate {
                login_base,
                name,
                url: url.unwrap_or_default(),
                max_slices: max_slices.unwrap_or(10),
                latitude: lat,
                longitude: lon,
            };
            let site = c_.create_site(&body).await?;
            emit(out, &site, render::site)
        }
        SiteCmd::List { login_base, list } => {
            let f = SiteFilter {
                login_base,
                ..Default::default()
            };
            list_sites(out, c_, f, &list).await
        }
        SiteCmd::Show { site } => emit(out, &c_.site(&site).await?, render::site),
        SiteCmd::Update {
            site,
            name,
            url,
            max_slices,
            image_quota_mb,
            lat,
            lon,
            enable,
        } => {
            let body = SiteUpdate {
                name,
                url,
                max_slices,
                latitude: lat,
                longitude: lon,
                enabled: enable.value(),
                image_quota_mb,
            };
            update_site(out, c_, &site, &body).await
        }
        SiteCmd::Delete { site } => {
            c_.delete_site(&site).await?;
            eprintln!("Deleted site {site}.");
            Ok(())
        }
    }
}

/// `site list`: `filter` names the sites, `list` which part of the listing to show.
async fn list_sites(out: Output, c_: &Client, filter: SiteFilter, list: &ListArgs) -> Result<()> {
    let page = fetch(list, |paging| {
        let f = SiteFilter {
            paging,
            ..filter.clone()
        };
        async move { c_.sites(&f).await }
    })
    .await?;
    emit_page(out, &page, render::sites)
}

async fn update_site(out: Output, c_: &Client, site: &str, body: &SiteUpdate) -> Result<()> {
    if body.name.is_none()
        && body.url.is_none()
        && body.max_slices.is_none()
        && body.latitude.is_none()
        && body.longitude.is_none()
        && body.enabled.is_none()
        && body.image_quota_mb.is_none()
    {
        return Err(nothing_to_change(
            "--name, --url, --max-slices, --image-quota-mb, --lat, --lon, --enable, --disable",
        ));
    }
    emit(out, &c_.update_site(site, body).await?, render::site)
}

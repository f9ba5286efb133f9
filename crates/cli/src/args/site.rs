//! `slicelab site`: institutions that contribute nodes and own slices.

use clap::Subcommand;

use super::common::{EnableArgs, ListArgs};

#[derive(Debug, Subcommand)]
pub enum SiteCmd {
    /// Add a site.
    Add {
        /// Short lowercase name; prefixes the site's slice names (e.g. `princeton`).
        login_base: String,
        /// Full name, e.g. "Princeton University".
        #[arg(long)]
        name: String,
        /// Web page.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Most slices the site may have [default: 10].
        #[arg(long, value_name = "N")]
        max_slices: Option<i64>,
        /// Latitude in degrees (-90..90).
        #[arg(
            long,
            visible_alias = "latitude",
            allow_negative_numbers = true,
            requires = "lon"
        )]
        lat: Option<f64>,
        /// Longitude in degrees (-180..180).
        #[arg(
            long,
            visible_alias = "longitude",
            allow_negative_numbers = true,
            requires = "lat"
        )]
        lon: Option<f64>,
    },
    /// List sites.
    #[command(visible_alias = "ls")]
    List {
        /// Only the site with this login_base.
        #[arg(long)]
        login_base: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one site.
    Show {
        /// login_base or id.
        site: String,
    },
    /// Change a site.
    Update {
        /// login_base or id.
        site: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        #[arg(long, value_name = "N")]
        max_slices: Option<i64>,
        /// MiB the site's `site` images may take together (admins only; 20480 for a new site).
        #[arg(long, value_name = "MIB")]
        image_quota_mb: Option<i64>,
        #[arg(long, visible_alias = "latitude", allow_negative_numbers = true)]
        lat: Option<f64>,
        #[arg(long, visible_alias = "longitude", allow_negative_numbers = true)]
        lon: Option<f64>,
        #[command(flatten)]
        enable: EnableArgs,
    },
    /// Delete a site.
    #[command(visible_alias = "rm")]
    Delete {
        /// login_base or id.
        site: String,
    },
}

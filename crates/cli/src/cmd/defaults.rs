//! `slicelab defaults`: show, set and unset the default allocation.

use anyhow::Result;
use slicelab_model::defaults::Defaults;
use slicelab_model::TagName;

use crate::args::{DefaultsCmd, Output};
use crate::error::CliError;
use crate::output::emit;
use crate::session::session;
use crate::table::Table;

pub(crate) async fn defaults(out: Output, c: DefaultsCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    match c {
        DefaultsCmd::Show => emit(out, &c_.defaults().await?, render),
        DefaultsCmd::Set { tag, value, node } => {
            let tag = parse_tag(&tag)?;
            let d = c_.set_default(tag, node.as_deref(), &value).await?;
            emit(out, &d, |d| match &d.node {
                Some(n) => format!("{} = {} on {n}\n", d.name, d.value),
                None => format!("{} = {} (platform)\n", d.name, d.value),
            })
        }
        DefaultsCmd::Unset { tag, node } => {
            let tag = parse_tag(&tag)?;
            c_.delete_default(tag, node.as_deref()).await?;
            match node {
                Some(n) => eprintln!("Removed the {tag} override of {n}."),
                None => eprintln!("Removed the platform default {tag}."),
            }
            Ok(())
        }
    }
}

fn parse_tag(tag: &str) -> Result<TagName> {
    TagName::parse(tag).map_err(|e| CliError::Usage(format!("{tag}: {}", e.message)).into())
}

fn render(d: &Defaults) -> String {
    let mut t = Table::new(&["TAG", "VALUE", "WHERE"]);
    for x in d.platform.iter().chain(&d.nodes) {
        t.row(vec![
            x.name.clone(),
            x.value.clone(),
            x.node.clone().unwrap_or_else(|| "platform".into()),
        ]);
    }
    t.render()
}

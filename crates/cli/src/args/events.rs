//! `slicelab events`: filters of the audit log.

use clap::Args;

use super::common::ListArgs;

#[derive(Debug, Args)]
#[command(after_help = "Example: slicelab events --object-type slice --since 2h")]
pub struct EventsArgs {
    /// Only events about this type of object: site, person, key, node, slice, ...
    #[arg(long, value_name = "TYPE")]
    pub object_type: Option<String>,
    /// Only events about this object (name or id).
    #[arg(long, value_name = "NAME")]
    pub object: Option<String>,
    /// Only events by this actor: `person:<email>`, `node:<hostname>` or `system`.
    #[arg(long, value_name = "ACTOR")]
    pub actor: Option<String>,
    /// Only events newer than this: a duration back (30m, 2h, 7d) or a time (RFC 3339, Unix seconds).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    #[command(flatten)]
    pub list: ListArgs,
}

//! Argument pieces shared by several nouns: value parsers for the model's enums (so help lists
//! the possible values), the `--limit/--offset/--all` and `--enable/--disable` groups, and the
//! node manager's default state directory.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use slicelab_model::tags::ALL_TAGS;
use slicelab_model::{BootState, Role, TagName};

/// The node manager's state directory unless `--state-dir` or `SLICELAB_STATE_DIR` names one.
pub const DEFAULT_NODE_STATE_DIR: &str = "/var/lib/slicelab/node";

pub fn role_parser() -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(["admin", "pi", "tech", "user"])
        .map(|s| Role::parse(&s).expect("listed roles parse"))
}

pub fn boot_state_parser() -> impl TypedValueParser<Value = BootState> {
    PossibleValuesParser::new(["boot", "safeboot", "reinstall", "disabled"])
        .map(|s| BootState::parse(&s).expect("listed boot states parse"))
}

pub fn tag_parser() -> impl TypedValueParser<Value = TagName> {
    PossibleValuesParser::new(ALL_TAGS.iter().map(|t| t.as_str()))
        .map(|s| TagName::parse(&s).expect("listed tags parse"))
}

/// Which part of a listing to show.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Show at most N entries (central's maximum is 1000).
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub limit: Option<i64>,
    /// Skip the first N entries.
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub offset: Option<i64>,
    /// Fetch every page.
    #[arg(long)]
    pub all: bool,
}

/// `--enable` / `--disable`, or neither.
#[derive(Debug, Clone, Args)]
pub struct EnableArgs {
    /// Enable it.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Disable it.
    #[arg(long)]
    pub disable: bool,
}

impl EnableArgs {
    pub fn value(&self) -> Option<bool> {
        match (self.enable, self.disable) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

/// How to trust central's HTTPS: a CA file, a CA fingerprint, or (default) the system's roots.
#[derive(Debug, Clone, Default, Args)]
pub struct TrustArgs {
    /// Trust central only through the CA certificate(s) in this PEM file.
    #[arg(
        long,
        env = "SLICELAB_CA",
        value_name = "FILE",
        conflicts_with = "ca_fingerprint"
    )]
    pub ca: Option<std::path::PathBuf>,
    /// Trust central only through the CA with this fingerprint (`sha256:HEX`, printed by
    /// `slicelab central` when it starts).
    #[arg(long, env = "SLICELAB_CA_FINGERPRINT", value_name = "FP")]
    pub ca_fingerprint: Option<String>,
    /// Allow `http://` to an address that is not loopback: keys, passwords and tokens then
    /// cross the network in clear.
    #[arg(long, env = "SLICELAB_ALLOW_PLAIN_HTTP")]
    pub allow_plain_http: bool,
}

//! `slicelab token`: the person's API tokens.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token; it is shown this once.
    Create {
        /// What the token is for, e.g. `ci-script`.
        name: String,
        /// Lifetime in days [default: 365].
        #[arg(long, value_name = "N")]
        days: Option<i64>,
    },
    /// List your tokens.
    #[command(visible_alias = "ls")]
    List,
    /// Revoke a token.
    #[command(visible_alias = "rm")]
    Delete {
        /// The token's id (see `slicelab token list`).
        id: i64,
    },
}

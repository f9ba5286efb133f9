//! `slicelab key`: the SSH public keys of persons.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Add SSH public keys (one per line of FILE; `-` reads stdin).
    #[command(after_help = "Example: slicelab key add ~/.ssh/id_ed25519.pub")]
    Add {
        /// Whose key [default: you].
        #[arg(long, value_name = "PERSON")]
        person: Option<String>,
        /// An OpenSSH public key file (`*.pub`), or `-` for stdin.
        file: PathBuf,
    },
    /// List a person's keys.
    #[command(visible_alias = "ls")]
    List {
        /// Whose keys [default: yours].
        #[arg(long, value_name = "PERSON")]
        person: Option<String>,
    },
    /// Delete a key.
    #[command(visible_alias = "rm")]
    Delete {
        /// The key's id (see `slicelab key list`).
        id: i64,
    },
}

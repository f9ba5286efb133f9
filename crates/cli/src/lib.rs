//! The `slicelab` binary's library: the command line and everything that runs it. This crate is
//! the edge where `anyhow` lives; errors are mapped to exit codes once, in `error`.
//!
//! - `args`: the command line's definitions (clap), one file per noun;
//! - `cmd`: the code that runs each command, one file per noun, and `cmd::run`, the dispatcher;
//! - `testbed`: `slicelab up` / `down`, a whole testbed on one machine;
//! - `session` (the saved login and a client), `config` (the login's file), `password`;
//! - `output` (JSON or tables), `render` (how objects look), `table`, `timefmt`, `paging`;
//! - `db_url`: which database `slicelab central` opens by default;
//! - `error`: CLI errors, exit codes and messages.

pub mod args;
pub mod cmd;
pub mod config;
pub mod db_url;
pub mod error;
mod output;
mod paging;
pub mod password;
pub mod render;
mod session;
pub mod ssh;
pub mod table;
pub mod testbed;
pub mod timefmt;
mod trust;

pub use args::{Cli, Command, Output};
pub use cmd::run;
pub use error::{exit, exit_code, message, CliError};

/// The argument types under their earlier path (`slicelab::cli::*`).
pub use args as cli;

/// The handlers' public helpers under their earlier path (`slicelab::commands::*`).
pub mod commands {
    pub use crate::cmd::{
        node_key_text, node_names, parse_key_file, run, slice_detail_text, SliceDetail,
    };
    pub use crate::db_url::{default_db_url, sqlite_path};
    pub use crate::session::DEFAULT_CENTRAL;
}

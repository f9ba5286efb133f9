//! The `slicelab` binary's command line: argument parsing (`cli`), the user's saved login
//! (`config`), output formatting (`table`, `render`, `timefmt`), and error → exit-code mapping
//! (`error`). `run` executes a parsed command line. This crate is the edge where `anyhow` lives.

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod exec;
pub mod password;
pub mod render;
pub mod table;
pub mod timefmt;
pub mod up;

pub use cli::{Cli, Command, Output};
pub use commands::run;
pub use error::{exit, exit_code, message, CliError};

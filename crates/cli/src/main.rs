//! The `slicelab` binary: parses the command line, sets up logging (daemons at `info`, user
//! commands at `warn`; `SLICELAB_LOG` overrides) and runs the command on a tokio runtime, turning
//! its error into a message and an exit code. Re-executed as a sliver init or exec helper, it does
//! that job instead, before any thread exists.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // When re-executed as a sliver init or exec helper, this does that job and exits. It must run
    // before any thread (or the tokio runtime) exists.
    slicelab_node::maybe_run_sliver_init();
    let cli = match slicelab::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let default_level = if cli.command.is_daemon() {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("SLICELAB_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_level));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    if cli.command.is_daemon() {
        // The node manager's site staff read its recent log (`ssh site_admin@NODE log`).
        log.with_writer(slicelab_node::logring::LogTee::new).init();
    } else {
        log.with_writer(std::io::stderr).init();
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(slicelab::exit::GENERIC);
        }
    };
    match runtime.block_on(slicelab::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", slicelab::message(&e));
            ExitCode::from(slicelab::exit_code(&e))
        }
    }
}

//! `slicelab-man DIR`: writes the man pages of `slicelab` into DIR, generated from the clap
//! definitions (`slicelab::Cli`), so they never drift from `--help`: `slicelab.1` and one page per
//! subcommand at every depth (`slicelab-node.1`, `slicelab-node-add.1`, …), each listing its
//! options with their environment variables and defaults. Not installed: the Debian package
//! (`scripts/build-deb.sh`) runs it at build time and ships the pages.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use clap_mangen::Man;

const USAGE: &str = "usage: slicelab-man DIR  (writes slicelab.1 and slicelab-*.1 into DIR)";

fn main() -> ExitCode {
    match run() {
        Ok(n) => {
            eprintln!("slicelab-man: wrote {n} pages");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("slicelab-man: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<usize> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        bail!("{USAGE}");
    };
    let dir = PathBuf::from(dir);
    if dir.to_str().is_some_and(|d| d.starts_with('-')) {
        bail!("{USAGE}");
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // `build` names every subcommand for its page (`slicelab-node-add`), as `clap_mangen` expects.
    let mut root = slicelab::Cli::command();
    root.build();
    write_pages(root, &dir)
}

/// Writes the page of `cmd` and of each of its visible subcommands, recursively.
fn write_pages(cmd: clap::Command, dir: &Path) -> Result<usize> {
    let mut written = 0;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += write_pages(sub.clone(), dir)?;
    }
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let page = Man::new(cmd)
        .source(format!("slicelab {version}"))
        .manual("slicelab manual");
    let path = page
        .generate_to(dir)
        .with_context(|| format!("writing {}", dir.join(page.get_filename()).display()))?;
    if std::fs::metadata(&path)?.len() == 0 {
        bail!("{} is empty", path.display());
    }
    Ok(written + 1)
}

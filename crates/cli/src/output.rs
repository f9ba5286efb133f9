//! Printing results: JSON for scripts (`-o json`), tables for people (`render` draws them).
//! Results go to stdout; notes about them ("(none)", "showing 1-100 of 250", "Deleted ...") go to
//! stderr, so `-o json` output is always one JSON document.

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;
use slicelab_model::Page;

use crate::args::Output;

/// Writes to stdout; a closed pipe (`slicelab ... | head`) is not an error.
pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value).context("encoding JSON")?;
    s.push('\n');
    print(&s)
}

/// Prints `value` as JSON, or as the table `human` renders.
pub(crate) fn emit<T: Serialize + ?Sized>(
    out: Output,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> Result<()> {
    match out {
        Output::Json => print_json(value),
        Output::Table => print(&human(value)),
    }
}

/// Prints a page of a listing; in tables, says on stderr when more entries exist.
pub(crate) fn emit_page<T: Serialize>(
    out: Output,
    page: &Page<T>,
    human: impl FnOnce(&[T]) -> String,
) -> Result<()> {
    match out {
        Output::Json => print_json(page),
        Output::Table => {
            if page.items.is_empty() {
                eprintln!("(none)");
                return Ok(());
            }
            print(&human(&page.items))?;
            let shown_to = page.offset + page.items.len() as i64;
            if page.total > shown_to || page.offset > 0 {
                eprintln!(
                    "(showing {}-{} of {}; use --limit/--offset or --all)",
                    page.offset + 1,
                    shown_to,
                    page.total
                );
            }
            Ok(())
        }
    }
}

/// Prints a whole (unpaged) list; in tables, an empty one is `(none)` on stderr.
pub(crate) fn emit_list<T: Serialize>(
    out: Output,
    items: &[T],
    human: impl FnOnce(&[T]) -> String,
) -> Result<()> {
    match out {
        Output::Json => print_json(items),
        Output::Table if items.is_empty() => {
            eprintln!("(none)");
            Ok(())
        }
        Output::Table => print(&human(items)),
    }
}

//! Flag values that only make sense once parsed further (times, durations, "change nothing"):
//! a value that does not parse is a usage error (exit 2) that names its flag.

use anyhow::Result;

use crate::error::CliError;
use crate::timefmt;

/// `r`, with its error message prefixed by the flag that gave the value.
pub(crate) fn flag<T>(name: &str, r: Result<T, String>) -> Result<T, CliError> {
    r.map_err(|m| CliError::Usage(format!("{name}: {m}")))
}

/// An update that would change nothing: name the flags that would.
pub(crate) fn nothing_to_change(flags: &str) -> anyhow::Error {
    CliError::Usage(format!("nothing to change: give at least one of {flags}")).into()
}

/// `--since` as Unix seconds: a duration ago, RFC 3339 or Unix seconds; 24h by default.
pub(crate) fn since(v: Option<&str>, now: i64) -> Result<i64> {
    match v {
        None => Ok(now - 86_400),
        Some(v) => Ok(flag("--since", timefmt::parse_since(v, now))?),
    }
}

//! Running `ip`, `nft` and friends. Batch input goes through stdin so one process does a whole
//! change (fewer forks, and nft applies a batch atomically).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{IoContext, NodeError};

pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, NodeError> {
    let shown = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| format!("running {shown}"))?;
    if let (Some(input), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(input.as_bytes())
            .ctx(|| format!("feeding {shown}"))?;
    }
    let out = child
        .wait_with_output()
        .ctx(|| format!("running {shown}"))?;
    if !out.status.success() {
        return Err(NodeError::Command {
            command: match stdin {
                Some(i) => format!("{shown} <<< {}", i.trim()),
                None => shown,
            },
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

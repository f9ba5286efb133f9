//! `slicelab capture SLICE --node NODE`: central allows the capture (403 for anyone but the
//! slice's persons, the node site's PIs and techs, and admins) and records it; the packets come
//! straight from the node over SSH as pcapng — a person of the slice through the slice's
//! `slicelab-capture` subsystem, site staff through `site_admin@NODE` — into a file or stdout.

use std::io::IsTerminal;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use slicelab_model::capture::{CaptureCreate, CaptureRequest, CaptureTicket, CaptureVia};
use slicelab_node::site_admin::command::quote;
use tokio::io::AsyncWriteExt;

use crate::args::CaptureArgs;
use crate::session::session;
use crate::timefmt::parse_duration;

/// The admin context's command line for a capture.
fn admin_command(slice: &str, r: &CaptureRequest) -> String {
    let mut words = vec!["capture".to_string(), quote(slice)];
    if let Some(f) = &r.filter {
        words.extend(["--filter".into(), quote(f)]);
    }
    if let Some(d) = r.duration_s {
        words.extend(["--duration".into(), format!("{d}s")]);
    }
    if let Some(p) = r.packets {
        words.extend(["--packets".into(), p.to_string()]);
    }
    if let Some(s) = r.snaplen {
        words.extend(["--snaplen".into(), s.to_string()]);
    }
    words.join(" ")
}

pub(crate) async fn capture(a: CaptureArgs) -> Result<()> {
    let to_stdout = a.write == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        bail!("the capture is binary pcapng: write it to a file (-w out.pcapng) or pipe it (| tcpdump -r -)");
    }
    let secs = parse_duration(&a.duration).map_err(anyhow::Error::msg)?;
    let request = CaptureRequest {
        filter: a.filter.clone(),
        duration_s: Some(u32::try_from(secs).context("--duration is too long")?),
        packets: a.packets,
        snaplen: a.snaplen,
    };
    let s = session()?;
    let ticket: CaptureTicket = s
        .client
        .create_capture(
            &a.slice,
            &CaptureCreate {
                node: a.node.clone(),
                request,
            },
        )
        .await
        .with_context(|| format!("asking central to capture {} on {}", a.slice, a.node))?;
    let identity = crate::ssh::identity(a.identity.as_deref());
    let mut ssh = crate::ssh::client(a.port, identity.as_deref());
    let target = format!("{}@{}", ticket.ssh_user, ticket.node);
    let input = match ticket.via {
        CaptureVia::Slice => {
            ssh.arg("-s").arg("--").arg(&target).arg("slicelab-capture");
            Some(format!("{}\n", serde_json::to_string(&ticket.request)?))
        }
        CaptureVia::SiteAdmin => {
            ssh.arg("--")
                .arg(&target)
                .arg(admin_command(&ticket.slice, &ticket.request));
            None
        }
    };
    let stdout = if to_stdout {
        Stdio::inherit()
    } else {
        let f = std::fs::File::create(&a.write).with_context(|| format!("creating {}", a.write))?;
        Stdio::from(f)
    };
    ssh.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(stdout)
    .stderr(Stdio::inherit());
    let mut child = ssh.spawn().context("running ssh")?;
    if let (Some(line), Some(mut stdin)) = (input, child.stdin.take()) {
        // The node reads this one line; the end of input that follows ends nothing.
        stdin.write_all(line.as_bytes()).await?;
        drop(stdin);
    }
    let status = child.wait().await.context("waiting for ssh")?;
    match status.code() {
        Some(0) => Ok(()),
        Some(255) => bail!("ssh to {target} failed (see above)"),
        Some(c) => bail!("the capture on {} failed (exit status {c})", ticket.node),
        None => bail!("ssh was killed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_command_keeps_the_filter_whole() {
        let r = CaptureRequest {
            filter: Some("udp port 53 and host 10.0.0.1".into()),
            duration_s: Some(5),
            packets: Some(10),
            snaplen: None,
        };
        let line = admin_command("pl_a", &r);
        assert_eq!(
            line,
            "capture pl_a --filter 'udp port 53 and host 10.0.0.1' --duration 5s --packets 10"
        );
        let parsed = slicelab_node::site_admin::command::parse(&line).unwrap();
        assert!(matches!(
            parsed,
            Some(slicelab_node::site_admin::command::Command::Capture { .. })
        ));
    }
}

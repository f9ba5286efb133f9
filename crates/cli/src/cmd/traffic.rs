//! `slicelab traffic SLICE --from NODE --to NODE`: a measured run between two slivers, through
//! the nodes' `slicelab-traffic` SSH service (`ssh -s SLICE@NODE slicelab-traffic`, the OpenSSH
//! client and keys of `slicelab exec`: `cli::ssh`). The receiver starts first and says which
//! node port it listens on; then the sender runs, aimed at that port of the receiving node; the
//! report joins both sides' results.

use std::io::IsTerminal;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use slicelab_model::traffic::{
    Percentiles, Proto, Role, TrafficLine, TrafficReport, TrafficRequest, DEFAULT_TCP_SIZE,
    DEFAULT_UDP_SIZE,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::args::{Output, TrafficArgs};
use crate::output::emit;
use crate::session::session;
use crate::table::fields;

/// The nodes' service.
const SUBSYSTEM: &str = "slicelab-traffic";

/// One side's ssh client and its output lines.
struct Side {
    node: String,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

fn request(a: &TrafficArgs) -> TrafficRequest {
    let proto = if a.tcp { Proto::Tcp } else { Proto::Udp };
    TrafficRequest {
        role: Role::Receiver,
        proto,
        rate: a.rate,
        duration: a.duration,
        pattern: a.pattern.into(),
        size: a.size.unwrap_or(match proto {
            Proto::Udp => DEFAULT_UDP_SIZE,
            Proto::Tcp => DEFAULT_TCP_SIZE,
        }),
        to: None,
    }
}

/// Starts `ssh -s SLICE@NODE slicelab-traffic` and sends it `req`.
async fn start(
    a: &TrafficArgs,
    node: &str,
    identity: Option<&Path>,
    req: &TrafficRequest,
) -> Result<Side> {
    let mut c = crate::ssh::client(a.port, identity);
    c.args(["-s", "--"])
        .arg(format!("{}@{node}", a.slice))
        .arg(SUBSYSTEM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = c.spawn().context("cannot run ssh")?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    let mut stdin = child.stdin.take().context("ssh's stdin")?;
    stdin
        .write_all(line.as_bytes())
        .await
        .with_context(|| format!("{node}: sending the request"))?;
    drop(stdin);
    let out = child.stdout.take().context("ssh's stdout")?;
    Ok(Side {
        node: node.to_string(),
        child,
        lines: BufReader::new(out).lines(),
    })
}

/// The side's next line; its ssh's failure when the output ended first.
async fn next(side: &mut Side, within: Duration) -> Result<TrafficLine> {
    let node = side.node.clone();
    let line = tokio::time::timeout(within, side.lines.next_line())
        .await
        .map_err(|_| anyhow!("{node}: no answer within {} s", within.as_secs()))?
        .with_context(|| format!("{node}: reading ssh's output"))?;
    let Some(line) = line else {
        let st = side.child.wait().await?;
        if st.code() == Some(255) {
            bail!("{node}: ssh failed (see its message above)");
        }
        bail!("{node}: the traffic service ended without a result ({st})");
    };
    match serde_json::from_str(&line) {
        Ok(TrafficLine::Error(e)) => bail!("{node}: {e}"),
        Ok(l) => Ok(l),
        Err(_) => bail!("{node}: unexpected output {line:?}"),
    }
}

/// Checks, when logged in, that the slice has slivers on both nodes.
async fn check_nodes(a: &TrafficArgs) -> Result<()> {
    let Ok(s) = session() else {
        return Ok(());
    };
    let slice = s
        .client
        .slice(&a.slice)
        .await
        .with_context(|| format!("looking up slice {}", a.slice))?;
    for n in [&a.from, &a.to] {
        if !slice.nodes.contains(n) {
            bail!(
                "slice {} has no sliver on {n} (add it with `slicelab slice add-nodes {} {n}`)",
                a.slice,
                a.slice
            );
        }
    }
    Ok(())
}

pub(crate) async fn traffic(out: Output, a: TrafficArgs) -> Result<()> {
    let mut req = request(&a);
    // The sender's request, checked here so a bad flag fails before any ssh.
    let mut probe = req.clone();
    probe.role = Role::Sender;
    probe.to = Some(format!("{}:1", a.to_address.as_deref().unwrap_or(&a.to)));
    probe.validate().map_err(|e| anyhow!("--{}", e))?;
    check_nodes(&a).await?;
    let identity = crate::ssh::identity(a.identity.as_deref());
    let tty = std::io::stderr().is_terminal();

    let mut rx = start(&a, &a.to, identity.as_deref(), &req).await?;
    let port = match next(&mut rx, Duration::from_secs(60)).await? {
        TrafficLine::Listening { port } => port,
        other => bail!("{}: unexpected {other:?}", a.to),
    };
    let target = a.to_address.as_deref().unwrap_or(&a.to);
    if tty {
        eprintln!(
            "{} listening on {target}:{port}; {} sending for {} s ...",
            a.to, a.from, a.duration
        );
    }
    req.role = Role::Sender;
    req.to = Some(format!("{target}:{port}"));
    let mut tx = start(&a, &a.from, identity.as_deref(), &req).await?;
    let within = Duration::from_secs(u64::from(a.duration) + 90);
    let sent = match next(&mut tx, within).await? {
        TrafficLine::Sender(s) => s,
        other => bail!("{}: unexpected {other:?}", a.from),
    };
    let got = match next(&mut rx, within).await? {
        TrafficLine::Receiver(r) => r,
        other => bail!("{}: unexpected {other:?}", a.to),
    };
    let _ = tx.child.wait().await;
    let _ = rx.child.wait().await;
    let report = TrafficReport::new(&req, &sent, &got);
    emit(out, &report, |r| render(&a.from, &a.to, r))
}

/// A rate in bit/s with an SI unit.
fn rate(bps: f64) -> String {
    let (v, unit) = match bps {
        b if b >= 1e9 => (b / 1e9, "Gbit/s"),
        b if b >= 1e6 => (b / 1e6, "Mbit/s"),
        b if b >= 1e3 => (b / 1e3, "kbit/s"),
        b => (b, "bit/s"),
    };
    format!("{v:.2} {unit}")
}

fn pct(p: Option<Percentiles>) -> String {
    match p {
        Some(p) => format!(
            "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms",
            p.p50, p.p90, p.p99
        ),
        None => "-".into(),
    }
}

/// The report for people.
pub(crate) fn render(from: &str, to: &str, r: &TrafficReport) -> String {
    let loss = match r.proto {
        Proto::Udp => format!(
            "{} of {} datagrams ({:.2}%)",
            r.lost_packets,
            r.sent_packets,
            r.loss_ratio * 100.0
        ),
        Proto::Tcp => format!(
            "0 (TCP; {} retransmitted segments)",
            r.retransmits.map_or("?".into(), |n| n.to_string())
        ),
    };
    let jitter = match r.rfc3550_jitter_ms {
        Some(j) => format!("{}  (RFC 3550: {j:.3} ms)", pct(r.jitter_ms)),
        None => pct(r.jitter_ms),
    };
    fields(&[
        (
            "path",
            format!(
                "{from} -> {to}  ({}, {}, {} B)",
                r.proto.as_str(),
                r.pattern.as_str(),
                r.size
            ),
        ),
        (
            "throughput",
            format!(
                "{}  (asked {}, sent {})",
                rate(r.throughput),
                rate(r.rate as f64),
                rate(r.sent_rate)
            ),
        ),
        (
            "received",
            format!("{} bytes of {}", r.received_bytes, r.sent_bytes),
        ),
        ("loss", loss),
        ("rtt", pct(r.rtt_ms)),
        ("jitter", jitter),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use slicelab_model::traffic::Pattern;

    #[test]
    fn report_renders_every_figure() {
        let r = TrafficReport {
            proto: Proto::Udp,
            pattern: Pattern::Constant,
            rate: 20_000_000,
            duration: 5,
            size: 1460,
            throughput: 19_990_000.0,
            sent_rate: 20_000_000.0,
            sent_packets: 8562,
            sent_bytes: 12_500_520,
            received_packets: 8562,
            received_bytes: 12_500_520,
            lost_packets: 0,
            loss_ratio: 0.0,
            rtt_ms: Some(Percentiles {
                p50: 0.1,
                p90: 0.2,
                p99: 0.3,
            }),
            jitter_ms: None,
            rfc3550_jitter_ms: Some(0.01),
            retransmits: None,
        };
        let t = render("n1", "n2", &r);
        assert!(t.contains("n1 -> n2  (udp, constant, 1460 B)"), "{t}");
        assert!(t.contains("19.99 Mbit/s  (asked 20.00 Mbit/s"), "{t}");
        assert!(t.contains("0 of 8562 datagrams (0.00%)"), "{t}");
        assert!(
            t.contains("p50 0.100 ms  p90 0.200 ms  p99 0.300 ms"),
            "{t}"
        );
        assert!(t.contains("RFC 3550: 0.010 ms"), "{t}");
    }
}

//! A capture of a sliver's packets as a node service: for the slice's persons as the
//! `slicelab-capture` subsystem of `ssh SLICE@NODE` (the request as one JSON line on standard
//! input), and for the site's staff as `ssh site_admin@NODE "capture SLICE …"`. The packets
//! stream out as pcapng on standard output; a summary goes to standard error; the capture is an
//! action (event `sliver.capture`: who, which sliver, the filter and the size).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;
use slicelab_model::capture::CaptureRequest;
use slicelab_model::sliver::NodeActionKind;
use slicelab_sshgw::{Service, ServiceIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::capture::{run_capture, CaptureError};
use crate::site_admin::command::CaptureArgs;
use crate::site_admin::{write_text, AdminContext};

/// The subsystem's name.
pub const SUBSYSTEM: &str = "slicelab-capture";

/// The longest request line the subsystem reads.
const REQUEST_MAX: usize = 8 * 1024;

/// Exit statuses: 0 captured, 1 could not capture, 2 the request is wrong.
const OK: u32 = 0;
const FAILED: u32 = 1;
const BAD: u32 = 2;

/// `ssh -s SLICE@NODE slicelab-capture` for a person of the slice.
pub fn for_slice(ctx: &AdminContext, person: &str, slice: &str) -> Service {
    let (ctx, person, slice) = (ctx.clone(), person.to_string(), slice.to_string());
    Service::InProcess(Box::new(move |mut io| {
        Box::pin(async move {
            let req = match read_request(&mut io).await {
                Ok(r) => r,
                Err(why) => {
                    write_text(&mut io.errors, &format!("{why}\n"), false).await;
                    let _ = io.errors.flush().await;
                    return BAD;
                }
            };
            capture(&ctx, &person, &slice, req, "slice", &mut io).await
        })
    }))
}

/// `capture SLICE …` in the admin context.
pub async fn for_staff(
    ctx: &AdminContext,
    person: &str,
    slice: &str,
    args: CaptureArgs,
    io: &mut ServiceIo,
) -> u32 {
    let req = CaptureRequest {
        filter: args.filter,
        duration_s: args.duration_s,
        packets: args.packets,
        snaplen: args.snaplen,
    };
    capture(ctx, person, slice, req, "site_admin", io).await
}

/// One JSON line: the [`CaptureRequest`].
async fn read_request(io: &mut ServiceIo) -> Result<CaptureRequest, String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match io.input.read(&mut byte).await {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(format!("reading the request: {e}")),
        }
        if line.len() > REQUEST_MAX {
            return Err(format!("the request is over {REQUEST_MAX} bytes"));
        }
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(CaptureRequest::default());
    }
    serde_json::from_slice(&line).map_err(|e| format!("the capture request is not valid: {e}"))
}

/// A `Write` for the capture thread that hands each buffer to the task writing the channel;
/// fails once that task is gone (the client went away).
struct ToChannel(mpsc::Sender<Vec<u8>>);

impl Write for ToChannel {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(b.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sets the flag when dropped: a capture whose service is cancelled stops at its next tick.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn capture(
    ctx: &AdminContext,
    person: &str,
    slice: &str,
    req: CaptureRequest,
    via: &str,
    io: &mut ServiceIo,
) -> u32 {
    let limits = match req.validate() {
        Ok(l) => l,
        Err(e) => {
            write_text(
                &mut io.errors,
                &format!("{}: {}\n", e.field, e.message),
                false,
            )
            .await;
            let _ = io.errors.flush().await;
            return BAD;
        }
    };
    if ctx.rt.init_of(slice).is_none() {
        write_text(
            &mut io.errors,
            &format!("slice {slice:?} has no running sliver on this node\n"),
            false,
        )
        .await;
        let _ = io.errors.flush().await;
        return FAILED;
    }
    let ifname = crate::names::veth_name(slice);
    let stop = Arc::new(AtomicBool::new(false));
    let _guard = StopOnDrop(stop.clone());
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let lim = limits.clone();
    let worker = tokio::task::spawn_blocking(move || {
        let mut out = ToChannel(tx);
        run_capture(&ifname, &lim, &mut out, &stop)
    });
    while let Some(chunk) = rx.recv().await {
        if io.output.write_all(&chunk).await.is_err() || io.output.flush().await.is_err() {
            break;
        }
    }
    drop(rx);
    let result = match worker.await {
        Ok(r) => r,
        Err(e) => Err(CaptureError::Read(e.to_string())),
    };
    let (status, text) = match result {
        Ok(s) => {
            ctx.actions.record(
                person,
                NodeActionKind::SliverCapture,
                Some(slice),
                json!({
                    "via": via,
                    "filter": limits.filter,
                    "duration_s": limits.duration.as_secs(),
                    "packets": s.packets,
                    "bytes": s.bytes,
                    "dropped": s.dropped,
                    "ended": s.ended,
                }),
            );
            (
                OK,
                format!(
                    "captured {} packets ({} bytes of pcapng, {} dropped by the kernel); ended by {}\n",
                    s.packets,
                    s.bytes,
                    s.dropped,
                    serde_json::to_value(s.ended)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                ),
            )
        }
        Err(e @ CaptureError::Filter { .. }) => (BAD, format!("{e}\n")),
        Err(e) => (FAILED, format!("{e}\n")),
    };
    write_text(&mut io.errors, &text, false).await;
    let _ = io.output.flush().await;
    let _ = io.output.shutdown().await;
    let _ = io.errors.flush().await;
    status
}

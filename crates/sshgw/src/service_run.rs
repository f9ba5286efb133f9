//! Runs a [`Service`] on a channel: a program like `ssh SLICE@NODE CMD`, a future in the
//! gateway's process fed by the channel, or a refusal.

use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use tokio::io::AsyncWriteExt;

use crate::channel::{self, Ctx};
use crate::program::Program;
use crate::service::{Service, ServiceFuture, ServiceIo};

/// How much of the client's input waits for an in-process service to read it.
const INPUT_BUFFER: usize = 64 * 1024;

/// Runs `service` on `channel` to its end; `terminal`: the client asked for a pty.
pub(crate) async fn run(channel: Channel<Msg>, ctx: Ctx, service: Service, terminal: bool) {
    match service {
        Service::Refused(why) => {
            tracing::info!(login = ?ctx.login, "service refused: {why}");
            let (_, tx) = channel.split();
            channel::refuse(&tx, &why, 1).await;
        }
        Service::Process(command) => {
            channel::run_command(channel, ctx, Program::Command(command), None).await
        }
        Service::InProcess(start) => in_process(channel, ctx, start, terminal).await,
    }
}

async fn in_process(
    channel: Channel<Msg>,
    ctx: Ctx,
    start: Box<dyn FnOnce(ServiceIo) -> ServiceFuture + Send>,
    terminal: bool,
) {
    let (mut rx, tx) = channel.split();
    let (input_w, input_r) = tokio::io::duplex(INPUT_BUFFER);
    let io = ServiceIo {
        input: Box::new(input_r),
        output: Box::new(Box::pin(tx.make_writer())),
        errors: Box::new(Box::pin(tx.make_writer_ext(Some(1)))),
        terminal,
    };
    let mut service = start(io);
    let mut input = Some(input_w);
    let mut shutdown = ctx.shutdown.clone();
    let status = loop {
        tokio::select! {
            status = &mut service => break Some(status),
            msg = rx.wait() => match msg {
                None | Some(ChannelMsg::Close) => break None,
                Some(ChannelMsg::Data { data }) => {
                    if let Some(w) = input.as_mut() {
                        // Keep the service running while its input is full.
                        tokio::select! {
                            r = w.write_all(&data) => if r.is_err() { input = None },
                            status = &mut service => break Some(status),
                        }
                    }
                }
                // The client's end of input.
                Some(ChannelMsg::Eof) => input = None,
                Some(_) => {}
            },
            _ = shutdown.changed() => break None,
        }
    };
    drop(service);
    tracing::debug!(login = ?ctx.login, ?status, "service ended");
    match status {
        Some(code) => {
            let _ = tx.eof().await;
            let _ = tx.exit_status(code).await;
            let _ = tx.close().await;
        }
        None => {
            let _ = tx.close().await;
        }
    }
}

//! The admin context's interactive shell: reads a line, runs it, answers, until `exit` or the
//! end of input. On a terminal (the client asked for a pty) it echoes what is typed, handles
//! backspace, ^C (drop the line) and ^D (leave on an empty line), and ends lines with CRLF.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use slicelab_sshgw::ServiceIo;

use super::command::{self, Command, LINE_MAX};
use super::{write_text, AdminContext};

const PROMPT: &str = "site_admin> ";

/// What reading one line ended with.
enum Line {
    Text(String),
    End,
}

/// Reads one line; `pending` keeps bytes read past it.
async fn read_line(io: &mut ServiceIo, pending: &mut Vec<u8>) -> Line {
    let mut line: Vec<u8> = Vec::new();
    loop {
        if pending.is_empty() {
            let mut buf = [0u8; 1024];
            match io.input.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    return if line.is_empty() {
                        Line::End
                    } else {
                        Line::Text(String::from_utf8_lossy(&line).into_owned())
                    };
                }
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        let b = pending.remove(0);
        match b {
            b'\r' | b'\n' => {
                if io.terminal {
                    let _ = io.output.write_all(b"\r\n").await;
                } else if b == b'\r' && pending.first() == Some(&b'\n') {
                    pending.remove(0);
                }
                return Line::Text(String::from_utf8_lossy(&line).into_owned());
            }
            // ^D on an empty line leaves, like a shell.
            4 if line.is_empty() => return Line::End,
            // ^C drops the line.
            3 => {
                if io.terminal {
                    let _ = io.output.write_all(b"^C\r\n").await;
                }
                return Line::Text(String::new());
            }
            0x7f | 0x08 => {
                if line.pop().is_some() && io.terminal {
                    let _ = io.output.write_all(b"\x08 \x08").await;
                }
            }
            b if b < 0x20 => {}
            b => {
                if line.len() < LINE_MAX {
                    line.push(b);
                    if io.terminal {
                        let _ = io.output.write_all(&[b]).await;
                    }
                }
            }
        }
        let _ = io.output.flush().await;
    }
}

pub(super) async fn run(ctx: AdminContext, person: String, mut io: ServiceIo) -> u32 {
    let terminal = io.terminal;
    write_text(
        &mut io.output,
        &format!("admin context of this node for {person}; `help` lists the commands\n"),
        terminal,
    )
    .await;
    let mut pending = Vec::new();
    loop {
        let _ = io.output.write_all(PROMPT.as_bytes()).await;
        let _ = io.output.flush().await;
        let line = match read_line(&mut io, &mut pending).await {
            Line::End => break,
            Line::Text(l) => l,
        };
        match command::parse(&line) {
            Ok(None) => {}
            Ok(Some(Command::Exit)) => break,
            Ok(Some(cmd)) => {
                let (_, text) = ctx.run(&person, cmd).await;
                write_text(&mut io.output, &text, terminal).await;
            }
            Err(e) => write_text(&mut io.output, &format!("{e}\n"), terminal).await,
        }
    }
    if terminal {
        let _ = io.output.write_all(b"\r\n").await;
    }
    let _ = io.output.flush().await;
    0
}

//! `slicelab token`: create, list and revoke the person's API tokens.

use anyhow::Result;
use slicelab_model::TokenCreate;

use crate::args::{Output, TokenCmd};
use crate::output::{emit, emit_list};
use crate::render;
use crate::session::session;
use crate::timefmt::{self, fmt_time_relative};

pub(crate) async fn token(out: Output, c: TokenCmd) -> Result<()> {
    let s = session()?;
    let now = timefmt::now();
    match c {
        TokenCmd::Create { name, days } => {
            let t = s.client.create_token(&TokenCreate { name, days }).await?;
            emit(out, &t, |t| {
                format!(
                    "Token {:?} (id {}) expires {}. It is shown only this once:\n\n    {}\n\nUse it with: SLICELAB_TOKEN=<token> slicelab ...\n",
                    t.info.name,
                    t.info.id,
                    fmt_time_relative(t.info.expires, now),
                    t.token
                )
            })
        }
        TokenCmd::List => {
            let list = s.client.tokens().await?;
            emit_list(out, &list, |l| render::tokens(l, now))
        }
        TokenCmd::Delete { id } => {
            s.client.delete_token(id).await?;
            eprintln!("Deleted token {id}.");
            Ok(())
        }
    }
}

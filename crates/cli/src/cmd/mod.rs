//! The code that runs each command, one file per noun; this file only dispatches. Handlers take
//! the parsed arguments (`crate::args`) and the output format, ask central through the session's
//! client, and print with `crate::output`. The daemons (`central`, the node manager) and the
//! commands that act on this machine only (`node cleanup`, `image import`) need no login.

mod capture;
mod daemons;
mod defaults;
mod events;
mod exec;
mod flags;
mod flows;
mod image;
pub(crate) mod image_publish;
mod key;
mod lease;
mod local;
mod login;
mod lookup;
mod node;
mod node_join;
mod peer;
mod person;
mod sim;
mod site;
mod slice;
mod token;
mod traffic;
mod usage;

use anyhow::Result;
use clap::CommandFactory;

pub use daemons::node_names;
pub use key::parse_key_file;
pub use node::node_key_text;
pub use slice::{slice_detail_text, SliceDetail};

use crate::args::{Cli, Command};
use crate::output::print;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let out = cli.output;
    match cli.command {
        Command::Login(a) => login::login(out, a).await,
        Command::Logout => login::logout().await,
        Command::Whoami => login::whoami(out).await,
        Command::Token(c) => token::token(out, c).await,
        Command::Site(c) => site::site(out, c).await,
        Command::Person(c) => person::person(out, c).await,
        Command::Key(c) => key::key(out, c).await,
        Command::Node(n) => match n.command {
            Some(sub) => node::node(out, sub).await,
            None => daemons::node_manager(n.daemon).await,
        },
        Command::Slice(c) => slice::slice(out, c).await,
        Command::Lease(c) => lease::lease(out, c).await,
        Command::Peer(c) => peer::peer(out, c).await,
        Command::Defaults(c) => defaults::defaults(out, c).await,
        Command::Usage(a) => usage::usage(out, a).await,
        Command::Flows(a) => flows::flows(out, a).await,
        Command::Lookup(a) => lookup::lookup(out, a).await,
        Command::Sim(a) => sim::sim(out, a).await,
        Command::Events(a) => events::events(out, a).await,
        Command::Central(a) => daemons::central(a).await,
        Command::Image(c) => image::image(out, c).await,
        Command::Up(a) => crate::testbed::up(a).await,
        Command::Down(a) => crate::testbed::down(a).await,
        Command::Exec(a) => exec::exec(out, a).await,
        Command::Capture(a) => capture::capture(a).await,
        Command::Traffic(a) => traffic::traffic(out, a).await,
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "slicelab", &mut buf);
            print(&String::from_utf8_lossy(&buf))
        }
    }
}

//! What `up` prints on stdout when the testbed is up: accounts, nodes, and how to use it.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::bring_up::Demo;
use super::debian::DEBIAN_IMAGE;
use super::{Testbed, DEMO_PORT, DEMO_SLICE};
use crate::args::UpArgs;

/// Prints the summary; `login` is where the PI's session was saved, if it was.
pub(super) fn print_summary(
    a: &UpArgs,
    tb: &Testbed,
    d: &Demo,
    login: Option<&Path>,
    took: Duration,
) {
    let mut s = format!(
        "\nslicelab testbed is up: {} nodes at {} site(s), in {:.0?}.\n\n",
        a.nodes, a.sites, took
    );
    s.push_str(&accounts(tb, d));
    s.push_str(&nodes(tb));
    s.push_str(&hints(a, tb, d, login));
    print!("{s}");
    let _ = std::io::stdout().flush();
}

fn accounts(tb: &Testbed, d: &Demo) -> String {
    let mut s = format!("  central   {}   (API under /api/v1)\n", tb.central_url);
    s.push_str(&format!(
        "  admin     {}  password {}\n",
        d.admin.email, d.admin.password
    ));
    s.push_str(&format!(
        "  pi        {}  password {}\n",
        d.people.pi_email, d.people.person_password
    ));
    s.push_str(&format!(
        "  user      {}  password {}\n",
        d.people.user_email, d.people.person_password
    ));
    s.push_str(&format!(
        "  ssh key   {}{}\n\n",
        d.people.user_key.display(),
        if d.people.user_key_generated {
            "  (generated; the demo user's key)"
        } else {
            "  (yours; the demo user's key)"
        }
    ));
    s
}

fn nodes(tb: &Testbed) -> String {
    let w = tb.nodes.iter().map(|n| n.hostname.len()).max().unwrap_or(4);
    let mut s = format!("  {:w$}  {:11}  {}\n", "NODE", "ADDRESS", "DEMO SERVICE");
    for n in &tb.nodes {
        s.push_str(&format!(
            "  {:w$}  {:11}  http://{}:{DEMO_PORT}/\n",
            n.hostname,
            n.address.to_string(),
            n.address
        ));
    }
    s
}

fn hints(a: &UpArgs, tb: &Testbed, d: &Demo, login: Option<&Path>) -> String {
    let ident = if d.people.user_key_generated {
        format!("-i {} ", d.people.user_key.display())
    } else {
        String::new()
    };
    let mut s = format!("\n  Enter a sliver:   ssh {ident}{}\n", d.ssh_target);
    s.push_str(&format!(
        "  Run everywhere:   slicelab exec {DEMO_SLICE} -- uname -n\n"
    ));
    if d.debian == Ok(true) {
        s.push_str(&format!(
            "  Switch to Debian: slicelab slice tag set {DEMO_SLICE} image {DEBIAN_IMAGE}\n"
        ));
    }
    match login {
        Some(p) => s.push_str(&format!(
            "  Logged in as {} (saved in {}): try `slicelab slice list`.\n",
            d.people.pi_email,
            p.display()
        )),
        None => s.push_str(&format!(
            "  Log in with:      slicelab login --central {} --email {}{}\n",
            tb.central_url,
            d.people.pi_email,
            tb.central_ca_fingerprint
                .as_deref()
                .map(|fp| format!(" --ca-fingerprint {fp}"))
                .unwrap_or_default()
        )),
    }
    if a.detach {
        s.push_str("  Stop it with:     sudo slicelab down\n");
    } else {
        s.push_str("  Stop it with:     Ctrl-C here (or sudo slicelab down)\n");
    }
    s.push_str(&format!(
        "  Logs:             {}\n",
        a.dir.join("logs").display()
    ));
    s
}

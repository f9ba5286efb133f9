//! `slicelab login`: where to log in and as whom (`logout` and `whoami` take no arguments).

use clap::Args;

use super::common::TrustArgs;

#[derive(Debug, Args)]
#[command(after_help = "\
The password comes from --password-stdin, else SLICELAB_PASSWORD, else a prompt.
The session and the CA to trust are saved (mode 0600) in the config file: SLICELAB_CONFIG, or
<config dir>/slicelab/config.toml.")]
pub struct LoginArgs {
    /// Central's URL, or several replicas' separated by commas [default: the last one used,
    /// else https://127.0.0.1:8080].
    #[arg(long, env = "SLICELAB_CENTRAL", value_name = "URL")]
    pub central: Option<String>,
    /// Your email [default: the last one used; asked for otherwise].
    #[arg(long, env = "SLICELAB_EMAIL", value_name = "EMAIL")]
    pub email: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// How to trust central's certificate (saved with the session). With none of these and a
    /// certificate the system does not know, login shows central's CA fingerprint and asks.
    #[command(flatten)]
    pub trust: TrustArgs,
}

//! `slicelab node`: two uses under one noun. With flags and no subcommand it runs the node
//! manager (`NodeDaemonArgs`); with a subcommand it manages the registry's nodes (`NodeSub`) or
//! cleans up this machine (`node cleanup`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};
use slicelab_model::BootState;

use super::common::{boot_state_parser, ListArgs, TrustArgs, DEFAULT_NODE_STATE_DIR};

pub(super) const NODE_ABOUT: &str = "\
Run the node manager, or manage the registry's nodes.

With flags and no subcommand, runs the node manager on this machine:
    slicelab node --central URL --key KEY [--state-dir DIR]
With a subcommand, manages nodes in the registry:
    slicelab node add HOSTNAME --site SITE    (prints the command that joins a machine)
    slicelab node join URL --token T          (on the new machine)";

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    subcommand_value_name = "COMMAND",
    subcommand_help_heading = "Registry commands"
)]
pub struct NodeCmd {
    #[command(subcommand)]
    pub command: Option<NodeSub>,
    #[command(flatten)]
    pub daemon: NodeDaemonArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("node_key").required(true).args(["key", "key_file"])))]
pub struct NodeDaemonArgs {
    /// Central's URL, or several replicas' separated by commas (tried in turn).
    #[arg(
        long,
        env = "SLICELAB_CENTRAL",
        value_name = "URL",
        required = true,
        help_heading = "Node manager"
    )]
    pub central: Option<String>,
    /// The node key from `slicelab node add`. Prefer --key-file or SLICELAB_NODE_KEY: command
    /// lines are visible to other users.
    #[arg(
        long,
        env = "SLICELAB_NODE_KEY",
        hide_env_values = true,
        value_name = "KEY",
        help_heading = "Node manager"
    )]
    pub key: Option<String>,
    /// Read the node key from this file.
    #[arg(
        long,
        env = "SLICELAB_NODE_KEY_FILE",
        value_name = "FILE",
        help_heading = "Node manager"
    )]
    pub key_file: Option<PathBuf>,
    /// How to trust central's certificate.
    #[command(flatten, next_help_heading = "Node manager")]
    pub trust: TrustArgs,
    /// Where sliver layers, images and unsent reports live.
    #[arg(
        long,
        env = "SLICELAB_STATE_DIR",
        value_name = "DIR",
        default_value = DEFAULT_NODE_STATE_DIR,
        help_heading = "Node manager"
    )]
    pub state_dir: PathBuf,
    /// Run the SSH gateway (`ssh SLICE@NODE`) on this address, e.g. `0.0.0.0:22`.
    #[arg(
        long,
        env = "SLICELAB_SSH_LISTEN",
        value_name = "ADDR",
        help_heading = "Node manager"
    )]
    pub ssh_listen: Option<SocketAddr>,
    /// The SSH gateway's host key (created if missing) [default: STATE_DIR/ssh_host_ed25519_key].
    #[arg(long, value_name = "FILE", help_heading = "Node manager")]
    pub ssh_host_key: Option<PathBuf>,
    /// Fetch image blobs from this mirror before central (`URL/blobs/sha256/HEX`; a site cache or
    /// a sibling's store; every byte is checked against its digest). Repeatable.
    #[arg(long, value_name = "URL", help_heading = "Node manager")]
    pub image_mirror: Vec<String>,
    /// Unpacked images kept on this node, in GiB; unused ones beyond it are removed, least
    /// recently used first [default: 20].
    #[arg(long, value_name = "GIB", help_heading = "Node manager")]
    pub image_budget: Option<u64>,
    /// The interface whose egress the site's bandwidth cap (the node's `bwlimit`) shapes
    /// [default: the device of the default route].
    #[arg(
        long,
        env = "SLICELAB_UPLINK",
        value_name = "IF",
        help_heading = "Node manager"
    )]
    pub uplink: Option<String>,
    #[command(flatten)]
    pub names: NodeNamesArgs,
}

/// Names of this node manager's shared kernel objects; change them only to run several node
/// managers on one machine.
#[derive(Debug, Clone, Args)]
pub struct NodeNamesArgs {
    /// Interface holding the slivers' gateway address [default: slbr0].
    #[arg(long, value_name = "NAME", help_heading = "Node manager (advanced)")]
    pub gateway_if: Option<String>,
    /// The slivers' internal /24, given by its first address [default: 10.77.0.0].
    #[arg(long, value_name = "A.B.C.0", help_heading = "Node manager (advanced)")]
    pub subnet: Option<std::net::Ipv4Addr>,
    /// nftables table (family inet) of NAT and isolation rules [default: slicelab].
    #[arg(long, value_name = "NAME", help_heading = "Node manager (advanced)")]
    pub nft_table: Option<String>,
    /// cgroup below which each sliver gets its own [default: slicelab].
    #[arg(long, value_name = "PATH", help_heading = "Node manager (advanced)")]
    pub cgroup_parent: Option<String>,
}

/// `--bwlimit`: a rate in bits/s, or `None` for "no cap".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bwlimit(pub Option<u64>);

fn bwlimit_parser(s: &str) -> Result<Bwlimit, String> {
    slicelab_model::parse_bwlimit(s)
        .map(Bwlimit)
        .map_err(|e| e.message)
}

#[derive(Debug, Subcommand)]
pub enum NodeSub {
    /// Add a node; prints the command that joins a machine as this node (with a single-use,
    /// expiring join token) and its one-time node key.
    Add {
        /// The node's DNS name.
        hostname: String,
        /// The site (login_base) that owns it.
        #[arg(long)]
        site: String,
        /// CPU cores [default: 1].
        #[arg(long, value_name = "N")]
        cpu: Option<i64>,
        /// Memory in MiB [default: 1024].
        #[arg(long, value_name = "N")]
        mem_mb: Option<i64>,
        /// Disk in GiB [default: 10].
        #[arg(long, value_name = "N")]
        disk_gb: Option<i64>,
        /// Region for placement, e.g. `europe`.
        #[arg(long)]
        region: Option<String>,
        /// Initial boot state [default: boot].
        #[arg(long, value_parser = boot_state_parser())]
        boot_state: Option<BootState>,
        /// Reservable: slivers run here only during their slice's lease.
        #[arg(long)]
        reservable: bool,
        /// Seconds the join token works [default: 86400].
        #[arg(long, value_name = "SECS")]
        join_ttl: Option<i64>,
    },
    /// List nodes.
    #[command(visible_alias = "ls")]
    List {
        /// Only nodes of this site.
        #[arg(long)]
        site: Option<String>,
        /// Only nodes in this boot state.
        #[arg(long, value_parser = boot_state_parser())]
        boot_state: Option<BootState>,
        /// Only nodes in this region.
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one node.
    Show {
        /// Hostname or id.
        node: String,
    },
    /// Change a node.
    Update {
        /// Hostname or id.
        node: String,
        /// boot: slivers run; safeboot/reinstall: slivers stopped; disabled: out of service.
        #[arg(long, value_parser = boot_state_parser())]
        boot_state: Option<BootState>,
        #[arg(long, value_name = "N")]
        cpu: Option<i64>,
        #[arg(long, value_name = "N")]
        mem_mb: Option<i64>,
        #[arg(long, value_name = "N")]
        disk_gb: Option<i64>,
        #[arg(long)]
        region: Option<String>,
        /// Make the node reservable (slivers run only during leases) or not.
        #[arg(long, value_name = "BOOL")]
        reservable: Option<bool>,
        /// The site's cap on the total egress of the node's slivers (shared by their `net_share`
        /// tags; the node's own traffic keeps a reserved part), e.g. `30mbit`; `none` removes it.
        #[arg(long, value_name = "RATE|none", value_parser = bwlimit_parser)]
        bwlimit: Option<Bwlimit>,
    },
    /// Delete a node.
    #[command(visible_alias = "rm")]
    Delete {
        /// Hostname or id.
        node: String,
    },
    /// Issue a new node key (the old one stops working).
    Rekey {
        /// Hostname or id.
        node: String,
    },
    /// Show the slivers a node last reported.
    Slivers {
        /// Hostname or id.
        node: String,
    },
    /// Remove everything the node manager created on this machine (after a crash or uninstall).
    Cleanup(NodeCleanupArgs),
    /// Issue a new single-use join token for a node (e.g. to reinstall its machine).
    JoinToken {
        /// Hostname or id.
        node: String,
        /// Seconds the token works [default: 86400].
        #[arg(long, value_name = "SECS")]
        ttl: Option<i64>,
    },
    /// Make this machine the node a join token names: check the kernel, get the node key,
    /// write /etc/slicelab/node.env and start the node manager's systemd unit.
    Join(NodeJoinArgs),
    /// Check that this machine has what a node needs (and, once joined, that central answers).
    Doctor(NodeDoctorArgs),
}

#[derive(Debug, Args)]
pub struct NodeJoinArgs {
    /// Central's URL (several replicas' separated by commas).
    pub central: String,
    /// The join token `slicelab node add` or `node join-token` printed.
    #[arg(long, env = "SLICELAB_JOIN_TOKEN", hide_env_values = true)]
    pub token: String,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Where the node's configuration goes (node.env, node.key).
    #[arg(long, value_name = "DIR", default_value = "/etc/slicelab")]
    pub config_dir: PathBuf,
    /// The node manager's state directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_NODE_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Run the SSH gateway (`ssh SLICE@NODE`) on this address [default: none].
    #[arg(long, value_name = "ADDR")]
    pub ssh_listen: Option<SocketAddr>,
    /// More flags for the node manager, kept in node.env as SLICELAB_NODE_ARGS (the unit passes
    /// them on), e.g. `--image-mirror URL --image-budget 40`.
    #[arg(long, value_name = "FLAGS", allow_hyphen_values = true)]
    pub node_args: Option<String>,
    /// Join even if a required kernel feature is missing.
    #[arg(long)]
    pub skip_checks: bool,
    /// Write the configuration but start nothing.
    #[arg(long)]
    pub no_start: bool,
}

#[derive(Debug, Args)]
pub struct NodeDoctorArgs {
    /// Where `node join` wrote the configuration (checked too, with central, when present).
    #[arg(long, value_name = "DIR", default_value = "/etc/slicelab")]
    pub config_dir: PathBuf,
    /// The node manager's state directory.
    #[arg(
        long,
        env = "SLICELAB_STATE_DIR",
        value_name = "DIR",
        default_value = DEFAULT_NODE_STATE_DIR
    )]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct NodeCleanupArgs {
    /// The node manager's state directory.
    #[arg(
        long,
        env = "SLICELAB_STATE_DIR",
        value_name = "DIR",
        default_value = DEFAULT_NODE_STATE_DIR
    )]
    pub state_dir: PathBuf,
    /// Also delete the slivers' writable layers (their files).
    #[arg(long)]
    pub purge: bool,
    #[command(flatten)]
    pub names: NodeNamesArgs,
}

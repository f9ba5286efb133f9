//! The command line (clap derive). One name per concept: the subcommands are the registry's
//! objects (`site`, `person`, `key`, `node`, `slice`) and the daemons (`central`, `node`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use slicelab_model::tags::ALL_TAGS;
use slicelab_model::{BootState, Role, TagName};

const ABOUT: &str = "slicelab: a shared testbed of slices (PlanetLab, rebuilt).";

const LONG_ABOUT: &str = "\
slicelab: a shared testbed of slices (PlanetLab, rebuilt).

One binary holds the central authority (`slicelab central`), the node manager
(`slicelab node --central URL --key KEY`) and the commands people use to manage the
registry: sites, persons, keys, nodes, slices, slice tags and events.";

const AFTER_HELP: &str = "\
Getting started:
  slicelab login --central http://127.0.0.1:8080 --email admin@localhost
  slicelab site add princeton --name 'Princeton University'
  slicelab slice add princeton_demo --description 'first slice'
  slicelab slice add-nodes princeton_demo node1.example.org

Every listing and show command takes `-o json` for scripts.
Environment: SLICELAB_CONFIG (config file), SLICELAB_CENTRAL, SLICELAB_TOKEN (override it).
Exit codes: 0 ok, 1 error, 2 usage, 3 not logged in/not allowed, 4 not found,
5 refused (invalid or conflicting), 6 central unreachable.";

#[derive(Debug, Parser)]
#[command(
    name = "slicelab",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// How to print results: aligned `table`s for people, `json` for scripts.
    #[arg(
        short = 'o',
        long,
        global = true,
        value_enum,
        default_value_t = Output::Table,
        env = "SLICELAB_OUTPUT",
        value_name = "FORMAT"
    )]
    pub output: Output,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

// Parsed once per process; boxing the node daemon's flags would only obscure the matches.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to a central and remember the session.
    Login(LoginArgs),
    /// Log out: revoke the session token and forget it.
    Logout,
    /// Show who you are logged in as.
    Whoami,
    /// Manage your API tokens (long-lived credentials for scripts).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage sites: institutions that contribute nodes and own slices.
    #[command(subcommand)]
    Site(SiteCmd),
    /// Manage persons: users, PIs, techs and admins.
    #[command(subcommand)]
    Person(PersonCmd),
    /// Manage the SSH public keys of persons.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Run the node manager, or manage the registry's nodes.
    #[command(long_about = NODE_ABOUT)]
    Node(NodeCmd),
    /// Manage slices: their nodes, persons, tags and expiry.
    #[command(subcommand)]
    Slice(SliceCmd),
    /// Reserve reservable nodes for a slice for a time window.
    #[command(subcommand)]
    Lease(LeaseCmd),
    /// Show resource usage over time: of a slice, a node, a site or the whole platform.
    #[command(
        after_help = "Examples:\n  slicelab usage princeton_codeen --since 24h --step 1h\n  slicelab usage --top --by tx"
    )]
    Usage(UsageArgs),
    /// Show the network flows of a slice or node (packet auditing).
    Flows(FlowsArgs),
    /// Who sent this? Name the slice behind traffic from a node to an address (no login needed).
    #[command(
        after_help = "Example: slicelab lookup --node node1.princeton.edu --remote 203.0.113.9 --since 2h"
    )]
    Lookup(LookupArgs),
    /// Simulate N nodes (real protocol and reconciler, fake runtime) against a real central and
    /// measure how fast changes propagate.
    #[command(after_help = "Example: slicelab sim --nodes 1000")]
    Sim(SimArgs),
    /// Show the audit log: who changed what, when.
    Events(EventsArgs),
    /// Run the central authority (registry and REST API).
    Central(CentralArgs),
    /// Manage sliver root filesystem images on this node.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Start a local testbed: a central and N node managers in network namespaces, with a demo
    /// slice on every node (as root; Ctrl-C or `slicelab down` tears it down).
    #[command(after_help = "Example: sudo slicelab up --nodes 4 --sites 2")]
    Up(UpArgs),
    /// Tear down the local testbed started by `slicelab up` (also the leftovers of a crashed one).
    Down(DownArgs),
    /// Run a command in every sliver of a slice (over SSH, in parallel) and summarise.
    #[command(after_help = "Example: slicelab exec demo_slice -- uname -n")]
    Exec(ExecArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Example: slicelab completions bash > ~/.local/share/bash-completion/completions/slicelab"
    )]
    Completions {
        /// The shell to generate completions for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Daemons log at `info` by default; user commands only at `warn`.
    pub fn is_daemon(&self) -> bool {
        match self {
            Command::Central(_) | Command::Image(_) | Command::Up(_) | Command::Down(_) => true,
            Command::Node(n) => {
                n.command.is_none() || matches!(n.command, Some(NodeSub::Cleanup(_)))
            }
            _ => false,
        }
    }
}

// ---------- value parsers ----------

pub fn role_parser() -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(["admin", "pi", "tech", "user"])
        .map(|s| Role::parse(&s).expect("listed roles parse"))
}

pub fn boot_state_parser() -> impl TypedValueParser<Value = BootState> {
    PossibleValuesParser::new(["boot", "safeboot", "reinstall", "disabled"])
        .map(|s| BootState::parse(&s).expect("listed boot states parse"))
}

pub fn tag_parser() -> impl TypedValueParser<Value = TagName> {
    PossibleValuesParser::new(ALL_TAGS.iter().map(|t| t.as_str()))
        .map(|s| TagName::parse(&s).expect("listed tags parse"))
}

// ---------- shared argument groups ----------

/// Which part of a listing to show.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Show at most N entries (central's maximum is 1000).
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub limit: Option<i64>,
    /// Skip the first N entries.
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub offset: Option<i64>,
    /// Fetch every page.
    #[arg(long)]
    pub all: bool,
}

/// `--enable` / `--disable`, or neither.
#[derive(Debug, Clone, Args)]
pub struct EnableArgs {
    /// Enable it.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Disable it.
    #[arg(long)]
    pub disable: bool,
}

impl EnableArgs {
    pub fn value(&self) -> Option<bool> {
        match (self.enable, self.disable) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

// ---------- login, tokens ----------

#[derive(Debug, Args)]
#[command(after_help = "\
The password comes from --password-stdin, else SLICELAB_PASSWORD, else a prompt.
The session is saved (mode 0600) in the config file: SLICELAB_CONFIG, or
<config dir>/slicelab/config.toml.")]
pub struct LoginArgs {
    /// Central's URL [default: the last one used, else http://127.0.0.1:8080].
    #[arg(long, env = "SLICELAB_CENTRAL", value_name = "URL")]
    pub central: Option<String>,
    /// Your email [default: the last one used; asked for otherwise].
    #[arg(long, env = "SLICELAB_EMAIL", value_name = "EMAIL")]
    pub email: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token; it is shown this once.
    Create {
        /// What the token is for, e.g. `ci-script`.
        name: String,
        /// Lifetime in days [default: 365].
        #[arg(long, value_name = "N")]
        days: Option<i64>,
    },
    /// List your tokens.
    #[command(visible_alias = "ls")]
    List,
    /// Revoke a token.
    #[command(visible_alias = "rm")]
    Delete {
        /// The token's id (see `slicelab token list`).
        id: i64,
    },
}

// ---------- sites ----------

#[derive(Debug, Subcommand)]
pub enum SiteCmd {
    /// Add a site.
    Add {
        /// Short lowercase name; prefixes the site's slice names (e.g. `princeton`).
        login_base: String,
        /// Full name, e.g. "Princeton University".
        #[arg(long)]
        name: String,
        /// Web page.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Most slices the site may have [default: 10].
        #[arg(long, value_name = "N")]
        max_slices: Option<i64>,
        /// Latitude in degrees (-90..90).
        #[arg(
            long,
            visible_alias = "latitude",
            allow_negative_numbers = true,
            requires = "lon"
        )]
        lat: Option<f64>,
        /// Longitude in degrees (-180..180).
        #[arg(
            long,
            visible_alias = "longitude",
            allow_negative_numbers = true,
            requires = "lat"
        )]
        lon: Option<f64>,
    },
    /// List sites.
    #[command(visible_alias = "ls")]
    List {
        /// Only the site with this login_base.
        #[arg(long)]
        login_base: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one site.
    Show {
        /// login_base or id.
        site: String,
    },
    /// Change a site.
    Update {
        /// login_base or id.
        site: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        #[arg(long, value_name = "N")]
        max_slices: Option<i64>,
        #[arg(long, visible_alias = "latitude", allow_negative_numbers = true)]
        lat: Option<f64>,
        #[arg(long, visible_alias = "longitude", allow_negative_numbers = true)]
        lon: Option<f64>,
        #[command(flatten)]
        enable: EnableArgs,
    },
    /// Delete a site.
    #[command(visible_alias = "rm")]
    Delete {
        /// login_base or id.
        site: String,
    },
}

// ---------- persons ----------

#[derive(Debug, Subcommand)]
pub enum PersonCmd {
    /// Add a person.
    #[command(
        after_help = "Example: slicelab person add alice@example.org --first Alice --last Smith --role pi --site princeton"
    )]
    Add {
        email: String,
        /// First name.
        #[arg(long = "first", visible_alias = "first-name", value_name = "NAME")]
        first_name: String,
        /// Last name.
        #[arg(long = "last", visible_alias = "last-name", value_name = "NAME")]
        last_name: String,
        /// A role: admin, pi, tech or user (repeat for several).
        #[arg(long = "role", value_name = "ROLE", required = true, value_parser = role_parser())]
        roles: Vec<Role>,
        /// A site (login_base) the person belongs to (repeat for several).
        #[arg(long = "site", value_name = "SITE")]
        sites: Vec<String>,
        /// Read an initial password from stdin (else the person cannot log in until one is set).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List persons.
    #[command(visible_alias = "ls")]
    List {
        /// Only members of this site.
        #[arg(long)]
        site: Option<String>,
        /// Only persons with this role.
        #[arg(long, value_parser = role_parser())]
        role: Option<Role>,
        /// Only the person with this email.
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one person.
    Show {
        /// Email or id.
        person: String,
    },
    /// Change a person. --role and --site replace the whole list.
    Update {
        /// Email or id.
        person: String,
        #[arg(long = "first", visible_alias = "first-name", value_name = "NAME")]
        first_name: Option<String>,
        #[arg(long = "last", visible_alias = "last-name", value_name = "NAME")]
        last_name: Option<String>,
        /// The new roles (repeat for several).
        #[arg(long = "role", value_name = "ROLE", value_parser = role_parser())]
        roles: Vec<Role>,
        /// The new sites (repeat for several).
        #[arg(long = "site", value_name = "SITE")]
        sites: Vec<String>,
        /// Read a new password from stdin.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        enable: EnableArgs,
    },
    /// Delete a person.
    #[command(visible_alias = "rm")]
    Delete {
        /// Email or id.
        person: String,
    },
}

// ---------- keys ----------

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Add SSH public keys (one per line of FILE; `-` reads stdin).
    #[command(after_help = "Example: slicelab key add ~/.ssh/id_ed25519.pub")]
    Add {
        /// Whose key [default: you].
        #[arg(long, value_name = "PERSON")]
        person: Option<String>,
        /// An OpenSSH public key file (`*.pub`), or `-` for stdin.
        file: PathBuf,
    },
    /// List a person's keys.
    #[command(visible_alias = "ls")]
    List {
        /// Whose keys [default: yours].
        #[arg(long, value_name = "PERSON")]
        person: Option<String>,
    },
    /// Delete a key.
    #[command(visible_alias = "rm")]
    Delete {
        /// The key's id (see `slicelab key list`).
        id: i64,
    },
}

// ---------- nodes: the daemon and the registry ----------

const NODE_ABOUT: &str = "\
Run the node manager, or manage the registry's nodes.

With flags and no subcommand, runs the node manager on this machine:
    slicelab node --central URL --key KEY [--state-dir DIR]
With a subcommand, manages nodes in the registry:
    slicelab node add HOSTNAME --site SITE    (prints the node key to run it with)";

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
    /// Central's URL.
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
    #[arg(long, value_name = "FILE", help_heading = "Node manager")]
    pub key_file: Option<PathBuf>,
    /// Where sliver layers, images and unsent reports live.
    #[arg(
        long,
        env = "SLICELAB_STATE_DIR",
        value_name = "DIR",
        default_value = "/var/lib/slicelab/node",
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

#[derive(Debug, Subcommand)]
pub enum NodeSub {
    /// Add a node; prints its one-time node key and the command to run it.
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
}

#[derive(Debug, Args)]
pub struct NodeCleanupArgs {
    /// The node manager's state directory.
    #[arg(
        long,
        env = "SLICELAB_STATE_DIR",
        value_name = "DIR",
        default_value = "/var/lib/slicelab/node"
    )]
    pub state_dir: PathBuf,
    /// Also delete the slivers' writable layers (their files).
    #[arg(long)]
    pub purge: bool,
    #[command(flatten)]
    pub names: NodeNamesArgs,
}

// ---------- images ----------

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Import a directory tree as a sliver root filesystem image on this node.
    #[command(after_help = "Example: slicelab image import base /srv/rootfs/debian")]
    Import {
        /// The image's name, as slices name it in their `image` tag.
        name: String,
        /// The root filesystem to copy.
        dir: PathBuf,
        /// The node manager's state directory.
        #[arg(
            long,
            env = "SLICELAB_STATE_DIR",
            value_name = "DIR",
            default_value = "/var/lib/slicelab/node"
        )]
        state_dir: PathBuf,
    },
}

// ---------- slices ----------

#[derive(Debug, Subcommand)]
pub enum SliceCmd {
    /// Add a slice named `<login_base>_<suffix>` (it belongs to that site).
    #[command(
        after_help = "Example: slicelab slice add princeton_demo --description 'measurement study'"
    )]
    Add {
        name: String,
        /// What the slice is for.
        #[arg(long)]
        description: Option<String>,
        /// Web page of the project.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// List slices.
    #[command(visible_alias = "ls")]
    List {
        /// Only slices of this site.
        #[arg(long)]
        site: Option<String>,
        /// Only slices this person (email) is in.
        #[arg(long)]
        person: Option<String>,
        /// Only slices on this node (hostname).
        #[arg(long)]
        node: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one slice with its tags and slivers.
    Show {
        /// Name or id.
        slice: String,
    },
    /// Change a slice.
    Update {
        /// Name or id.
        slice: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// (admins) --enable / --disable the slice everywhere.
        #[command(flatten)]
        enable: EnableArgs,
    },
    /// Delete a slice (its slivers are removed from every node).
    #[command(visible_alias = "rm")]
    Delete {
        /// Name or id.
        slice: String,
    },
    /// Extend a slice's life.
    #[command(group(ArgGroup::new("until").required(true).args(["days", "expires"])))]
    Renew {
        /// Name or id.
        slice: String,
        /// Expire this many days from now.
        #[arg(long, value_name = "N")]
        days: Option<i64>,
        /// Expire at this time: RFC 3339 (2026-11-26T04:13:00Z), a date, or Unix seconds.
        #[arg(long, value_name = "TIME")]
        expires: Option<String>,
    },
    /// Put the slice on nodes: named ones, or let the broker choose with --select.
    #[command(visible_alias = "add-node")]
    AddNodes {
        slice: String,
        /// Hostnames or ids.
        #[arg(required_unless_present = "select", value_name = "NODE")]
        nodes: Vec<String>,
        /// Let the broker pick live nodes, e.g.
        /// 'count=20, distinct=site, min_free_mem=1G, region=europe, max_load=4'
        /// (also: site=, min_free_disk=, min_cores=). It explains a request it cannot satisfy.
        #[arg(long, value_name = "CONSTRAINTS", conflicts_with = "nodes")]
        select: Option<String>,
    },
    /// Take the slice off nodes.
    #[command(visible_alias = "remove-node")]
    RemoveNodes {
        slice: String,
        /// Hostnames or ids.
        #[arg(required = true, value_name = "NODE")]
        nodes: Vec<String>,
    },
    /// Add persons to the slice.
    #[command(visible_alias = "add-persons")]
    AddPerson {
        slice: String,
        /// Emails or ids.
        #[arg(required = true, value_name = "PERSON")]
        persons: Vec<String>,
    },
    /// Remove persons from the slice.
    #[command(visible_alias = "remove-persons")]
    RemovePerson {
        slice: String,
        /// Emails or ids.
        #[arg(required = true, value_name = "PERSON")]
        persons: Vec<String>,
    },
    /// Manage the slice's tags (resources, image, initscript, ports).
    #[command(subcommand)]
    Tag(SliceTagCmd),
    /// Show the slice's slivers as nodes last reported them.
    Slivers {
        /// Name or id.
        slice: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SliceTagCmd {
    /// Set a tag, slice-wide or for one node.
    #[command(after_help = tag_help())]
    Set {
        slice: String,
        #[arg(value_parser = tag_parser())]
        tag: TagName,
        value: String,
        /// Only on this node (hostname or id).
        #[arg(long)]
        node: Option<String>,
    },
    /// List the slice's tags.
    #[command(visible_alias = "ls")]
    List { slice: String },
    /// Delete a tag, slice-wide or of one node.
    #[command(visible_alias = "rm")]
    Delete {
        slice: String,
        #[arg(value_parser = tag_parser())]
        tag: TagName,
        /// The tag of this node only.
        #[arg(long)]
        node: Option<String>,
    },
}

/// The known tags (from the model, so new tags show up here by themselves) and examples.
fn tag_help() -> String {
    let names: Vec<&str> = ALL_TAGS.iter().map(|t| t.as_str()).collect();
    format!(
        "Tags: {}.\nSizes take K, M, G suffixes (mem_max 512M), rates kbit/mbit/gbit (net_max_rate 10mbit),\n\
         ports NODEPORT[:SLIVERPORT][/tcp|/udp],...\n\
         Example: slicelab slice tag set princeton_demo mem_max 512M",
        names.join(", ")
    )
}

// ---------- events ----------

#[derive(Debug, Args)]
#[command(after_help = "Example: slicelab events --object-type slice --since 2h")]
pub struct EventsArgs {
    /// Only events about this type of object: site, person, key, node, slice, ...
    #[arg(long, value_name = "TYPE")]
    pub object_type: Option<String>,
    /// Only events about this object (name or id).
    #[arg(long, value_name = "NAME")]
    pub object: Option<String>,
    /// Only events by this actor: `person:<email>`, `node:<hostname>` or `system`.
    #[arg(long, value_name = "ACTOR")]
    pub actor: Option<String>,
    /// Only events newer than this: a duration back (30m, 2h, 7d) or a time (RFC 3339, Unix seconds).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    #[command(flatten)]
    pub list: ListArgs,
}

// ---------- central ----------

#[derive(Debug, Args)]
#[command(after_help = "\
On the first start an admin account is created; its password is taken from
SLICELAB_ADMIN_PASSWORD, or generated and printed once.")]
pub struct CentralArgs {
    /// Database: `sqlite://PATH` (created on first start) or `postgres://...`
    /// [default: sqlite:///var/lib/slicelab/central.db as root, else in the user's data dir].
    #[arg(long, env = "SLICELAB_DB", value_name = "URL")]
    pub db: Option<String>,
    /// Address to serve the API on.
    #[arg(
        long,
        env = "SLICELAB_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Email of the admin created on the first start.
    #[arg(
        long,
        env = "SLICELAB_ADMIN_EMAIL",
        value_name = "EMAIL",
        default_value = "admin@localhost"
    )]
    pub admin_email: String,
}

#[derive(Debug, Subcommand)]
pub enum LeaseCmd {
    /// Reserve NODE for SLICE: during the window only that slice's sliver runs there.
    Add {
        slice: String,
        node: String,
        /// Start: RFC 3339, a date, Unix seconds, or `now` [default: now].
        #[arg(long, value_name = "TIME")]
        start: Option<String>,
        /// How long, e.g. `2h`, `30m`, `1d`.
        #[arg(long, value_name = "DURATION", conflicts_with = "end")]
        duration: Option<String>,
        /// End: RFC 3339, a date or Unix seconds.
        #[arg(long, value_name = "TIME", required_unless_present = "duration")]
        end: Option<String>,
    },
    /// List current and future leases.
    #[command(visible_alias = "ls")]
    List {
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        slice: Option<String>,
    },
    /// Cancel a lease.
    #[command(visible_alias = "rm")]
    Delete { id: i64 },
}

// ---------- local testbed and exec ----------

/// Where `slicelab up` keeps the testbed's state, logs and keys.
pub const DEFAULT_TESTBED_DIR: &str = "/var/lib/slicelab/up";

#[derive(Debug, Args)]
pub struct UpArgs {
    /// How many nodes (node managers) to start.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=40))]
    pub nodes: u8,
    /// Over how many demo sites to spread them (`demo`, `site2`, ...).
    #[arg(long, value_name = "S", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=20))]
    pub sites: u8,
    /// Start the testbed, print how to use it and return (stop it with `slicelab down`).
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Port of central's API on the testbed bridge.
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// The testbed's directory (state, logs, keys).
    #[arg(long, env = "SLICELAB_UP_DIR", value_name = "DIR", default_value = DEFAULT_TESTBED_DIR)]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// The testbed's directory.
    #[arg(long, env = "SLICELAB_UP_DIR", value_name = "DIR", default_value = DEFAULT_TESTBED_DIR)]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The slice whose slivers run the command.
    pub slice: String,
    /// Only these nodes (hostnames, comma-separated) [default: all nodes of the slice].
    #[arg(long, value_delimiter = ',', value_name = "HOST,...")]
    pub nodes: Vec<String>,
    /// Give up on a node after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Port of the nodes' SSH gateways.
    #[arg(long, short = 'p', value_name = "PORT", default_value_t = 22)]
    pub port: u16,
    /// SSH private key [default: ssh's own defaults, plus the local testbed's generated key].
    #[arg(long, short = 'i', value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// At most this many nodes at once.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub parallel: usize,
    /// The command and its arguments (after `--`), run with `sh -c` in each sliver.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The slice (omit for the platform, or use --node / --site).
    #[arg(conflicts_with_all = ["node", "site", "top"])]
    pub slice: Option<String>,
    /// A node's own totals.
    #[arg(long, conflicts_with_all = ["site", "top"])]
    pub node: Option<String>,
    /// A site's nodes' totals.
    #[arg(long, conflicts_with = "top")]
    pub site: Option<String>,
    /// The top consumers among slices instead of a series.
    #[arg(long)]
    pub top: bool,
    /// With --top: rank by cpu, tx or rx.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "tx", "rx"])]
    pub by: String,
    /// Start of the window: a duration ago (24h, 7d), RFC 3339 or Unix seconds [default: 24h].
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Length of one point, e.g. 10m, 1h [default: about 100 points].
    #[arg(long, value_name = "DURATION")]
    pub step: Option<String>,
}

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// The slice whose flows to show.
    #[arg(long)]
    pub slice: Option<String>,
    /// The node whose flows to show.
    #[arg(long)]
    pub node: Option<String>,
    /// Start of the window [default: 24h].
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The node the traffic came from (hostname).
    #[arg(long)]
    pub node: String,
    /// The address that received it.
    #[arg(long)]
    pub remote: String,
    #[arg(long)]
    pub port: Option<u16>,
    /// Start of the window [default: 24h].
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Central to ask, if not the logged-in one.
    #[arg(long, env = "SLICELAB_CENTRAL")]
    pub central: Option<String>,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// How many simulated nodes.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Database for the simulated central [default: a temporary SQLite file].
    #[arg(long)]
    pub db: Option<String>,
    /// Longest wait for one phase, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

//! The command line's definitions (clap derive), apart from the code that runs them (`crate::cmd`).
//! This file holds the top level: the global `-o` flag and one `Command` per noun. Each noun's
//! flags and subcommands live in a file of their own; `common` holds the pieces they share.
//! One name per concept: the subcommands are the registry's objects (`site`, `person`, `key`,
//! `node`, `slice`, ...) and the daemons (`central`, `node`).

mod capture;
mod central;
mod common;
mod defaults;
mod events;
mod exec;
mod flows;
mod image;
mod key;
mod lease;
mod login;
mod lookup;
mod node;
mod peer;
mod person;
mod sim;
mod site;
mod slice;
mod testbed;
mod token;
mod traffic;
mod usage;

use clap::{Parser, Subcommand, ValueEnum};

pub use capture::CaptureArgs;
pub use central::CentralArgs;
pub use common::{
    boot_state_parser, role_parser, tag_parser, EnableArgs, ListArgs, TrustArgs,
    DEFAULT_NODE_STATE_DIR,
};
pub use defaults::DefaultsCmd;
pub use events::EventsArgs;
pub use exec::ExecArgs;
pub use flows::FlowsArgs;
pub use image::{ImageCmd, PublishArgs, VisibilityArg};
pub use key::KeyCmd;
pub use lease::LeaseCmd;
pub use login::LoginArgs;
pub use lookup::LookupArgs;
pub use node::{
    Bwlimit, NodeCleanupArgs, NodeCmd, NodeDaemonArgs, NodeDoctorArgs, NodeJoinArgs, NodeNamesArgs,
    NodeSub,
};
pub use peer::PeerCmd;
pub use person::PersonCmd;
pub use sim::SimArgs;
pub use site::SiteCmd;
pub use slice::{SliceCmd, SliceTagCmd};
pub use testbed::{DownArgs, UpArgs, DEFAULT_TESTBED_DIR};
pub use token::TokenCmd;
pub use traffic::{PatternArg, TrafficArgs};
pub use usage::UsageArgs;

use node::NODE_ABOUT;

const ABOUT: &str = "slicelab: a shared testbed of slices (PlanetLab, rebuilt).";

const LONG_ABOUT: &str = "\
slicelab: a shared testbed of slices (PlanetLab, rebuilt).

One binary holds the central authority (`slicelab central`), the node manager
(`slicelab node --central URL --key KEY`) and the commands people use to manage the
registry: sites, persons, keys, nodes, slices, slice tags and events.";

const AFTER_HELP: &str = "\
Getting started:
  slicelab login --central https://127.0.0.1:8080 --email admin@localhost
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
    /// Peer authorities that share their nodes with this one (federation; admins write).
    #[command(
        subcommand,
        after_help = "Examples:\n  slicelab peer add ple https://ple.example.org --ca-fingerprint sha256:... --secret-file ple.secret --max-slivers 100\n  slicelab peer suspend ple --reason 'spam from ple_x'"
    )]
    Peer(PeerCmd),
    /// The default allocation: limits of slivers whose slice has no tag for them.
    #[command(
        subcommand,
        after_help = "Examples:\n  slicelab defaults show\n  slicelab defaults set mem_max 2G\n  slicelab defaults set pids_max 4096 --node node1.example.org"
    )]
    Defaults(DefaultsCmd),
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
    Sim(SimArgs),
    /// Show the audit log: who changed what, when.
    Events(EventsArgs),
    /// Run the central authority (registry and REST API).
    Central(CentralArgs),
    /// Sliver root filesystem images: those published at central, and import on this node.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Start a local testbed: a central and N node managers in network namespaces, with a demo
    /// slice on every node (as root; Ctrl-C or `slicelab down` tears it down).
    #[command(after_help = "Example: sudo slicelab up --nodes 4 --sites 2")]
    Up(UpArgs),
    /// Tear down the local testbed started by `slicelab up` (also the leftovers of a crashed one).
    Down(DownArgs),
    /// Record a sliver's packets on its node as pcapng (a tcpdump filter applied in the kernel).
    #[command(
        after_help = "Example: slicelab capture demo_slice --node node1.demo.slicelab.test --filter 'icmp' --duration 10s -w ping.pcapng"
    )]
    Capture(CaptureArgs),
    /// Run a command in every sliver of a slice (over SSH, in parallel) and summarise.
    #[command(after_help = "Example: slicelab exec demo_slice -- uname -n")]
    Exec(ExecArgs),
    /// Measure a path between two slivers of a slice: a paced sender in one, a receiver in the
    /// other (the nodes supply the program); throughput, loss, RTT and jitter.
    #[command(
        after_help = "Example: slicelab traffic demo_slice --from node1 --to node2 --rate 20mbit --duration 5s"
    )]
    Traffic(TrafficArgs),
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
            Command::Central(_) | Command::Up(_) | Command::Down(_) => true,
            Command::Node(n) => {
                n.command.is_none() || matches!(n.command, Some(NodeSub::Cleanup(_)))
            }
            _ => false,
        }
    }
}

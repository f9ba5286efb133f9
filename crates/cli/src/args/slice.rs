//! `slicelab slice`: slices, their nodes, persons, tags and expiry.

use clap::{ArgGroup, Subcommand};
use slicelab_model::tags::ALL_TAGS;
use slicelab_model::TagName;

use super::common::{tag_parser, EnableArgs, ListArgs};

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

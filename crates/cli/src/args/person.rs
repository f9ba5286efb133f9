//! `slicelab person`: users, PIs, techs and admins.

use clap::Subcommand;
use slicelab_model::Role;

use super::common::{role_parser, EnableArgs, ListArgs};

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

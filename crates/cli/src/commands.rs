//! Executes a parsed command line against central (or runs a daemon).

use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use serde::Serialize;
use slicelab_client::{
    Client, EventFilter, NodeFilter, Paging, PersonFilter, SiteFilter, SliceFilter,
};
use slicelab_model::sliver::Sliver;
use slicelab_model::{
    KeyCreate, NodeCreate, NodeUpdate, NodeWithKey, Page, PersonCreate, PersonUpdate, SiteCreate,
    SiteUpdate, Slice, SliceCreate, SliceRenew, SliceTag, SliceTagSet, SliceUpdate, TokenCreate,
};

use crate::cli::*;
use crate::config::{self, Config};
use crate::error::CliError;
use crate::password;
use crate::render;
use crate::timefmt::{self, fmt_time_relative};

/// Central's URL when nothing else names one.
pub const DEFAULT_CENTRAL: &str = "http://127.0.0.1:8080";

/// Writes to stdout; a closed pipe (`slicelab ... | head`) is not an error.
fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value).context("encoding JSON")?;
    s.push('\n');
    print(&s)
}

/// Prints `value` as JSON, or as the table `human` renders.
fn emit<T: Serialize + ?Sized>(
    out: Output,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> Result<()> {
    match out {
        Output::Json => print_json(value),
        Output::Table => print(&human(value)),
    }
}

/// Prints a page of a listing; in tables, says on stderr when more entries exist.
fn emit_page<T: Serialize>(
    out: Output,
    page: &Page<T>,
    human: impl FnOnce(&[T]) -> String,
) -> Result<()> {
    match out {
        Output::Json => print_json(page),
        Output::Table => {
            if page.items.is_empty() {
                eprintln!("(none)");
                return Ok(());
            }
            print(&human(&page.items))?;
            let shown_to = page.offset + page.items.len() as i64;
            if page.total > shown_to || page.offset > 0 {
                eprintln!(
                    "(showing {}-{} of {}; use --limit/--offset or --all)",
                    page.offset + 1,
                    shown_to,
                    page.total
                );
            }
            Ok(())
        }
    }
}

fn emit_list<T: Serialize>(
    out: Output,
    items: &[T],
    human: impl FnOnce(&[T]) -> String,
) -> Result<()> {
    match out {
        Output::Json => print_json(items),
        Output::Table if items.is_empty() => {
            eprintln!("(none)");
            Ok(())
        }
        Output::Table => print(&human(items)),
    }
}

/// One page, or with `--all` every page joined into one.
async fn fetch<T, F, Fut>(args: &ListArgs, mut get: F) -> Result<Page<T>>
where
    F: FnMut(Paging) -> Fut,
    Fut: Future<Output = slicelab_client::Result<Page<T>>>,
{
    if !args.all {
        return Ok(get(Paging {
            limit: args.limit,
            offset: args.offset,
        })
        .await?);
    }
    let mut items = Vec::new();
    let mut total;
    loop {
        let page = get(Paging {
            limit: Some(1000),
            offset: Some(items.len() as i64),
        })
        .await?;
        total = page.total;
        let n = page.items.len();
        items.extend(page.items);
        if n == 0 || items.len() as i64 >= total {
            break;
        }
    }
    let limit = items.len() as i64;
    Ok(Page {
        items,
        total,
        limit,
        offset: 0,
    })
}

/// The saved login with environment overrides, and a client for it.
pub(crate) struct Session {
    pub(crate) client: Client,
    path: PathBuf,
}

fn load_config() -> Result<(Config, PathBuf)> {
    let path = config::path()?;
    Ok((Config::load(&path)?, path))
}

pub(crate) fn session() -> Result<Session> {
    let (file, path) = load_config()?;
    let config = file.with_env();
    let central = config.central.clone().ok_or(CliError::NoCentral)?;
    let token = config.token.clone().ok_or(CliError::NotLoggedIn)?;
    Ok(Session {
        client: Client::new(&central, Some(token)),
        path,
    })
}

fn nothing_to_change(flags: &str) -> anyhow::Error {
    CliError::Usage(format!("nothing to change: give at least one of {flags}")).into()
}

pub async fn run(cli: Cli) -> Result<()> {
    let out = cli.output;
    match cli.command {
        Command::Login(a) => login(out, a).await,
        Command::Logout => logout().await,
        Command::Whoami => {
            let s = session()?;
            let me = s.client.whoami().await?;
            emit(out, &me, |p| {
                format!("{}central:  {}\n", render::person(p), s.client.base())
            })
        }
        Command::Token(c) => token(out, c).await,
        Command::Site(c) => site(out, c).await,
        Command::Person(c) => person(out, c).await,
        Command::Key(c) => key(out, c).await,
        Command::Node(n) => match n.command {
            Some(sub) => node(out, sub).await,
            None => node_daemon(n.daemon).await,
        },
        Command::Slice(c) => slice(out, c).await,
        Command::Lease(c) => lease(out, c).await,
        Command::Usage(a) => usage(out, a).await,
        Command::Flows(a) => flows(out, a).await,
        Command::Lookup(a) => lookup(out, a).await,
        Command::Sim(a) => sim(a).await,
        Command::Events(a) => events(out, a).await,
        Command::Central(a) => central(a).await,
        Command::Image(c) => image(c).await,
        Command::Up(a) => crate::up::up(a).await,
        Command::Down(a) => crate::up::down(a).await,
        Command::Exec(a) => crate::exec::exec(a).await,
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "slicelab", &mut buf);
            print(&String::from_utf8_lossy(&buf))
        }
    }
}

// ---------- login ----------

async fn login(out: Output, a: LoginArgs) -> Result<()> {
    let (mut cfg, path) = load_config()?;
    let central = a
        .central
        .or_else(|| cfg.central.clone())
        .unwrap_or_else(|| DEFAULT_CENTRAL.to_string());
    let email = match a.email.or_else(|| cfg.email.clone()) {
        Some(e) => e,
        None => password::prompt("email: ", true)?,
    };
    let pw = password::password(
        a.password_stdin,
        "SLICELAB_PASSWORD",
        &format!("password for {email}: "),
    )?;
    let resp = Client::new(&central, None).login(&email, &pw).await?;
    cfg.central = Some(central.clone());
    cfg.token = Some(resp.token.clone());
    cfg.email = Some(resp.person.email.clone());
    cfg.save(&path)?;
    let now = timefmt::now();
    emit(out, &resp.person, |p| {
        format!(
            "Logged in to {central} as {} ({}); the session expires {}.\nSaved in {}.\n",
            p.email,
            p.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            fmt_time_relative(resp.expires, now),
            path.display()
        )
    })
}

async fn logout() -> Result<()> {
    let s = session()?;
    match s.client.logout().await {
        Ok(()) => {}
        // An expired or revoked session is as good as logged out.
        Err(e) if e.status() == Some(401) => {}
        Err(e) => return Err(e.into()),
    }
    let mut file = Config::load(&s.path)?;
    if file.token.is_some() {
        file.token = None;
        file.save(&s.path)?;
    }
    eprintln!("Logged out of {}.", s.client.base());
    Ok(())
}

async fn token(out: Output, c: TokenCmd) -> Result<()> {
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

// ---------- sites ----------

async fn site(out: Output, c: SiteCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    match c {
        SiteCmd::Add {
            login_base,
            name,
            url,
            max_slices,
            lat,
            lon,
        } => {
            let body = SiteCreate {
                login_base,
                name,
                url: url.unwrap_or_default(),
                max_slices: max_slices.unwrap_or(10),
                latitude: lat,
                longitude: lon,
            };
            let site = c_.create_site(&body).await?;
            emit(out, &site, render::site)
        }
        SiteCmd::List { login_base, list } => {
            let page = fetch(&list, |paging| {
                let f = SiteFilter {
                    login_base: login_base.clone(),
                    paging,
                };
                async move { c_.sites(&f).await }
            })
            .await?;
            emit_page(out, &page, render::sites)
        }
        SiteCmd::Show { site } => emit(out, &c_.site(&site).await?, render::site),
        SiteCmd::Update {
            site,
            name,
            url,
            max_slices,
            lat,
            lon,
            enable,
        } => {
            let body = SiteUpdate {
                name,
                url,
                max_slices,
                latitude: lat,
                longitude: lon,
                enabled: enable.value(),
            };
            if body.name.is_none()
                && body.url.is_none()
                && body.max_slices.is_none()
                && body.latitude.is_none()
                && body.longitude.is_none()
                && body.enabled.is_none()
            {
                return Err(nothing_to_change(
                    "--name, --url, --max-slices, --lat, --lon, --enable, --disable",
                ));
            }
            emit(out, &c_.update_site(&site, &body).await?, render::site)
        }
        SiteCmd::Delete { site } => {
            c_.delete_site(&site).await?;
            eprintln!("Deleted site {site}.");
            Ok(())
        }
    }
}

// ---------- persons ----------

async fn person(out: Output, c: PersonCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    match c {
        PersonCmd::Add {
            email,
            first_name,
            last_name,
            roles,
            sites,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(password::read_stdin_line()?)
            } else {
                None
            };
            let body = PersonCreate {
                email,
                first_name,
                last_name,
                password,
                roles,
                sites,
            };
            emit(out, &c_.create_person(&body).await?, render::person)
        }
        PersonCmd::List {
            site,
            role,
            email,
            list,
        } => {
            let page = fetch(&list, |paging| {
                let f = PersonFilter {
                    site: site.clone(),
                    role,
                    email: email.clone(),
                    paging,
                };
                async move { c_.persons(&f).await }
            })
            .await?;
            emit_page(out, &page, render::persons)
        }
        PersonCmd::Show { person } => emit(out, &c_.person(&person).await?, render::person),
        PersonCmd::Update {
            person,
            first_name,
            last_name,
            roles,
            sites,
            password_stdin,
            enable,
        } => {
            let password = if password_stdin {
                Some(password::read_stdin_line()?)
            } else {
                None
            };
            let body = PersonUpdate {
                first_name,
                last_name,
                password,
                roles: (!roles.is_empty()).then_some(roles),
                sites: (!sites.is_empty()).then_some(sites),
                enabled: enable.value(),
            };
            if body.first_name.is_none()
                && body.last_name.is_none()
                && body.password.is_none()
                && body.roles.is_none()
                && body.sites.is_none()
                && body.enabled.is_none()
            {
                return Err(nothing_to_change(
                    "--first, --last, --role, --site, --password-stdin, --enable, --disable",
                ));
            }
            emit(
                out,
                &c_.update_person(&person, &body).await?,
                render::person,
            )
        }
        PersonCmd::Delete { person } => {
            c_.delete_person(&person).await?;
            eprintln!("Deleted person {person}.");
            Ok(())
        }
    }
}

// ---------- keys ----------

/// The keys in an OpenSSH public key file: one per non-empty, non-comment line, checked locally.
pub fn parse_key_file(text: &str, source: &str) -> Result<Vec<String>, CliError> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        slicelab_model::ssh_key::parse(line)
            .map_err(|e| CliError::Invalid(format!("{source}, line {}: {e}", n + 1)))?;
        keys.push(line.to_string());
    }
    if keys.is_empty() {
        return Err(CliError::Invalid(format!(
            "{source}: no SSH public key in it"
        )));
    }
    Ok(keys)
}

async fn me_or(c: &Client, person: Option<String>) -> Result<String> {
    match person {
        Some(p) => Ok(p),
        None => Ok(c.whoami().await?.email),
    }
}

async fn key(out: Output, c: KeyCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    match c {
        KeyCmd::Add { person, file } => {
            let (text, source) = if file == Path::new("-") {
                let mut t = String::new();
                std::io::stdin()
                    .read_to_string(&mut t)
                    .context("reading the key from stdin")?;
                (t, "stdin".to_string())
            } else {
                let t = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                (t, file.display().to_string())
            };
            let lines = parse_key_file(&text, &source)?;
            let person = me_or(c_, person).await?;
            let mut added = Vec::new();
            for key in lines {
                added.push(c_.add_key(&person, &KeyCreate { key }).await?);
            }
            emit_list(out, &added, render::keys)
        }
        KeyCmd::List { person } => {
            let person = me_or(c_, person).await?;
            emit_list(out, &c_.keys(&person).await?, render::keys)
        }
        KeyCmd::Delete { id } => {
            c_.delete_key(id).await?;
            eprintln!("Deleted key {id}.");
            Ok(())
        }
    }
}

// ---------- nodes ----------

/// What `node add` and `node rekey` print: the node, its one-time key, and how to run it.
pub fn node_key_text(nk: &NodeWithKey, central: &str, now: i64) -> String {
    format!(
        "{}\nNode key (shown only this once; central keeps only its hash):\n\n    {key}\n\n\
         Run the node manager on {host} with:\n\n    \
         slicelab node --central {central} --key {key}\n\n\
         (or put the key in a file readable only by root and use --key-file FILE)\n",
        render::node(&nk.node, now),
        key = nk.node_key,
        host = nk.node.hostname,
    )
}

async fn node(out: Output, c: NodeSub) -> Result<()> {
    if let NodeSub::Cleanup(a) = c {
        return node_cleanup(a).await;
    }
    let s = session()?;
    let c_ = &s.client;
    let now = timefmt::now();
    match c {
        NodeSub::Add {
            hostname,
            site,
            cpu,
            mem_mb,
            disk_gb,
            region,
            boot_state,
            reservable,
        } => {
            let body = NodeCreate {
                hostname,
                site,
                boot_state: boot_state.unwrap_or(slicelab_model::BootState::Boot),
                cpu_cores: cpu.unwrap_or(1),
                mem_mb: mem_mb.unwrap_or(1024),
                disk_gb: disk_gb.unwrap_or(10),
                region: region.unwrap_or_default(),
                reservable,
            };
            let nk = c_.create_node(&body).await?;
            emit(out, &nk, |nk| node_key_text(nk, c_.base(), now))
        }
        NodeSub::List {
            site,
            boot_state,
            region,
            list,
        } => {
            let page = fetch(&list, |paging| {
                let f = NodeFilter {
                    site: site.clone(),
                    boot_state,
                    region: region.clone(),
                    paging,
                };
                async move { c_.nodes(&f).await }
            })
            .await?;
            emit_page(out, &page, |n| render::nodes(n, now))
        }
        NodeSub::Show { node } => emit(out, &c_.node(&node).await?, |n| render::node(n, now)),
        NodeSub::Update {
            node,
            boot_state,
            cpu,
            mem_mb,
            disk_gb,
            region,
            reservable,
        } => {
            let body = NodeUpdate {
                boot_state,
                cpu_cores: cpu,
                mem_mb,
                disk_gb,
                region,
                reservable,
            };
            if body.boot_state.is_none()
                && body.cpu_cores.is_none()
                && body.mem_mb.is_none()
                && body.disk_gb.is_none()
                && body.region.is_none()
                && body.reservable.is_none()
            {
                return Err(nothing_to_change(
                    "--boot-state, --cpu, --mem-mb, --disk-gb, --region, --reservable",
                ));
            }
            emit(out, &c_.update_node(&node, &body).await?, |n| {
                render::node(n, now)
            })
        }
        NodeSub::Delete { node } => {
            c_.delete_node(&node).await?;
            eprintln!("Deleted node {node}.");
            Ok(())
        }
        NodeSub::Rekey { node } => {
            let nk = c_.rekey_node(&node).await?;
            emit(out, &nk, |nk| node_key_text(nk, c_.base(), now))
        }
        NodeSub::Slivers { node } => emit_list(out, &c_.node_slivers(&node).await?, |l| {
            render::slivers(l, now)
        }),
        NodeSub::Cleanup(_) => unreachable!("handled above"),
    }
}

async fn node_daemon(a: NodeDaemonArgs) -> Result<()> {
    let central = a.central.ok_or_else(|| {
        CliError::Usage("the node manager needs --central URL (see `slicelab node --help`)".into())
    })?;
    let key =
        match (a.key, a.key_file) {
            (Some(k), _) => k,
            (None, Some(f)) => std::fs::read_to_string(&f)
                .with_context(|| format!("reading the node key from {}", f.display()))?
                .trim()
                .to_string(),
            (None, None) => return Err(CliError::Usage(
                "the node manager needs --key KEY or --key-file FILE (see `slicelab node --help`)"
                    .into(),
            )
            .into()),
        };
    if key.is_empty() {
        return Err(CliError::Usage("the node key is empty".into()).into());
    }
    slicelab_node::run(slicelab_node::Config {
        central,
        key,
        state_dir: a.state_dir,
        names: node_names(&a.names),
        ssh_listen: a.ssh_listen,
        ssh_host_key: a.ssh_host_key,
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// The node instance's names: the defaults, with what the flags change.
pub fn node_names(a: &NodeNamesArgs) -> slicelab_node::NodeNames {
    let mut n = slicelab_node::NodeNames::default();
    if let Some(g) = &a.gateway_if {
        n.gateway_if = g.clone();
    }
    if let Some(s) = a.subnet {
        n.subnet = s;
    }
    if let Some(t) = &a.nft_table {
        n.nft_table = t.clone();
    }
    if let Some(c) = &a.cgroup_parent {
        n.cgroup_parent = c.clone();
    }
    n
}

async fn node_cleanup(a: NodeCleanupArgs) -> Result<()> {
    let names = node_names(&a.names);
    let state_dir = a.state_dir.clone();
    let r =
        tokio::task::spawn_blocking(move || slicelab_node::cleanup(&state_dir, &names, a.purge))
            .await
            .context("cleanup task")??;
    let mut text = format!(
        "Cleaned up: {} processes, {} cgroups, {} veths, {} nft rules",
        r.processes, r.cgroups, r.veths, r.nft_rules
    );
    if r.nft_table {
        text.push_str(", the nft table");
    }
    if r.gateway_if {
        text.push_str(", the gateway interface");
    }
    if a.purge {
        text.push_str(&format!(", {} sliver directories", r.sliver_dirs));
    }
    text.push_str(".\n");
    print(&text)
}

async fn image(c: ImageCmd) -> Result<()> {
    match c {
        ImageCmd::Import {
            name,
            dir,
            state_dir,
        } => {
            let (n, d) = (name.clone(), dir.clone());
            tokio::task::spawn_blocking(move || slicelab_node::import_image(&state_dir, &n, &d))
                .await
                .context("image import task")??;
            print(&format!(
                "Imported image {name:?} from {}.\n",
                dir.display()
            ))
        }
    }
}

// ---------- slices ----------

/// `slice show`: the slice with its tags and slivers (one JSON object for scripts).
#[derive(Debug, Serialize)]
pub struct SliceDetail {
    #[serde(flatten)]
    pub slice: Slice,
    pub tags: Vec<SliceTag>,
    pub slivers: Vec<Sliver>,
}

pub fn slice_detail_text(d: &SliceDetail, now: i64) -> String {
    let mut s = render::slice(&d.slice, now);
    s.push_str("\nTags:\n");
    if d.tags.is_empty() {
        s.push_str("  (none)\n");
    } else {
        s.push_str(&indent(&render::tags(&d.tags)));
    }
    s.push_str("\nSlivers:\n");
    if d.slivers.is_empty() {
        s.push_str("  (none reported)\n");
    } else {
        s.push_str(&indent(&render::slivers(&d.slivers, now)));
    }
    s
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

async fn slice(out: Output, c: SliceCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    let now = timefmt::now();
    let show = |sl: &Slice| render::slice(sl, now);
    match c {
        SliceCmd::Add {
            name,
            description,
            url,
        } => {
            let body = SliceCreate {
                name,
                description: description.unwrap_or_default(),
                url: url.unwrap_or_default(),
            };
            emit(out, &c_.create_slice(&body).await?, show)
        }
        SliceCmd::List {
            site,
            person,
            node,
            list,
        } => {
            let page = fetch(&list, |paging| {
                let f = SliceFilter {
                    site: site.clone(),
                    person: person.clone(),
                    node: node.clone(),
                    paging,
                };
                async move { c_.slices(&f).await }
            })
            .await?;
            emit_page(out, &page, |l| render::slices(l, now))
        }
        SliceCmd::Show { slice } => {
            let sl = c_.slice(&slice).await?;
            let (tags, slivers) =
                tokio::try_join!(c_.slice_tags(&sl.name), c_.slice_slivers(&sl.name))?;
            let d = SliceDetail {
                slice: sl,
                tags,
                slivers,
            };
            emit(out, &d, |d| slice_detail_text(d, now))
        }
        SliceCmd::Update {
            slice,
            description,
            url,
            enable,
        } => {
            let body = SliceUpdate {
                description,
                url,
                enabled: enable.value(),
            };
            if body.description.is_none() && body.url.is_none() && body.enabled.is_none() {
                return Err(nothing_to_change(
                    "--description, --url, --enable, --disable",
                ));
            }
            emit(out, &c_.update_slice(&slice, &body).await?, show)
        }
        SliceCmd::Delete { slice } => {
            c_.delete_slice(&slice).await?;
            eprintln!("Deleted slice {slice}.");
            Ok(())
        }
        SliceCmd::Renew {
            slice,
            days,
            expires,
        } => {
            let expires = expires
                .map(|e| {
                    timefmt::parse_time(&e).map_err(|m| CliError::Usage(format!("--expires: {m}")))
                })
                .transpose()?;
            let body = SliceRenew { expires, days };
            emit(out, &c_.renew_slice(&slice, &body).await?, show)
        }
        SliceCmd::AddNodes {
            slice,
            nodes,
            select: Some(spec),
        } if nodes.is_empty() => {
            let r = c_.select_slice_nodes(&slice, &spec).await?;
            if r.added.is_empty() {
                eprintln!("the broker added no node");
            } else {
                eprintln!("the broker added: {}", r.added.join(", "));
            }
            emit(out, &r.slice, show)
        }
        SliceCmd::AddNodes { slice, nodes, .. } => {
            emit(out, &c_.add_slice_nodes(&slice, &nodes).await?, show)
        }
        SliceCmd::RemoveNodes { slice, nodes } => {
            let mut last = None;
            for n in &nodes {
                last = Some(c_.remove_slice_node(&slice, n).await?);
            }
            emit(out, &last.expect("clap requires a node"), show)
        }
        SliceCmd::AddPerson { slice, persons } => {
            emit(out, &c_.add_slice_persons(&slice, &persons).await?, show)
        }
        SliceCmd::RemovePerson { slice, persons } => {
            let mut last = None;
            for p in &persons {
                last = Some(c_.remove_slice_person(&slice, p).await?);
            }
            emit(out, &last.expect("clap requires a person"), show)
        }
        SliceCmd::Tag(t) => match t {
            SliceTagCmd::Set {
                slice,
                tag,
                value,
                node,
            } => {
                // Check the value here too, for a message before any request is sent.
                slicelab_model::tags::validate(tag, &value)
                    .map_err(|e| CliError::Invalid(e.to_string()))?;
                let t = c_
                    .set_slice_tag(&slice, tag, &SliceTagSet { value, node })
                    .await?;
                emit_list(out, std::slice::from_ref(&t), render::tags)
            }
            SliceTagCmd::List { slice } => {
                emit_list(out, &c_.slice_tags(&slice).await?, render::tags)
            }
            SliceTagCmd::Delete { slice, tag, node } => {
                c_.delete_slice_tag(&slice, tag, node.as_deref()).await?;
                match node {
                    Some(n) => eprintln!("Deleted tag {tag} of slice {slice} on {n}."),
                    None => eprintln!("Deleted tag {tag} of slice {slice}."),
                }
                Ok(())
            }
        },
        SliceCmd::Slivers { slice } => emit_list(out, &c_.slice_slivers(&slice).await?, |l| {
            render::slivers(l, now)
        }),
    }
}

// ---------- leases ----------

async fn lease(out: Output, c: LeaseCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    let now = timefmt::now();
    match c {
        LeaseCmd::Add {
            slice,
            node,
            start,
            duration,
            end,
        } => {
            let start = match start.as_deref() {
                None | Some("now") => now,
                Some(t) => {
                    timefmt::parse_time(t).map_err(|m| CliError::Usage(format!("--start: {m}")))?
                }
            };
            let end = match (duration, end) {
                (Some(d), _) => {
                    start
                        + timefmt::parse_duration(&d)
                            .map_err(|m| CliError::Usage(format!("--duration: {m}")))?
                }
                (None, Some(e)) => {
                    timefmt::parse_time(&e).map_err(|m| CliError::Usage(format!("--end: {m}")))?
                }
                (None, None) => {
                    return Err(CliError::Usage("give --duration or --end".into()).into())
                }
            };
            let body = slicelab_model::LeaseCreate {
                slice,
                node,
                start,
                end,
            };
            emit(out, &c_.create_lease(&body).await?, |l| {
                render::leases(std::slice::from_ref(l), now)
            })
        }
        LeaseCmd::List { node, slice } => emit_list(
            out,
            &c_.leases(node.as_deref(), slice.as_deref()).await?,
            |l| render::leases(l, now),
        ),
        LeaseCmd::Delete { id } => {
            c_.delete_lease(id).await?;
            eprintln!("Deleted lease {id}.");
            Ok(())
        }
    }
}

// ---------- usage, flows, lookup ----------

/// `--since` as Unix seconds: a duration ago, RFC 3339 or Unix seconds; 24h by default.
fn since(v: Option<&str>, now: i64) -> Result<i64> {
    match v {
        None => Ok(now - 86_400),
        Some(v) => {
            Ok(timefmt::parse_since(v, now)
                .map_err(|m| CliError::Usage(format!("--since: {m}")))?)
        }
    }
}

async fn usage(out: Output, a: UsageArgs) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    let now = timefmt::now();
    let from = since(a.since.as_deref(), now)?;
    if a.top {
        let top = c_.usage_top(&a.by, from, now + 1).await?;
        return emit_list(out, &top, render::usage_top);
    }
    let step = a
        .step
        .as_deref()
        .map(|v| timefmt::parse_duration(v).map_err(|m| CliError::Usage(format!("--step: {m}"))))
        .transpose()?;
    let scope = match (&a.slice, &a.node, &a.site) {
        (Some(sl), _, _) => format!("slice={sl}"),
        (_, Some(n), _) => format!("node={n}"),
        (_, _, Some(si)) => format!("site={si}"),
        _ => String::new(),
    };
    let series = c_.usage(&scope, from, now + 1, step).await?;
    emit(out, &series, render::usage)
}

async fn flows(out: Output, a: FlowsArgs) -> Result<()> {
    let s = session()?;
    let now = timefmt::now();
    let from = since(a.since.as_deref(), now)?;
    let flows = s
        .client
        .flows(a.slice.as_deref(), a.node.as_deref(), from, now, a.limit)
        .await?;
    emit_list(out, &flows, render::flows)
}

async fn lookup(out: Output, a: LookupArgs) -> Result<()> {
    let now = timefmt::now();
    let from = since(a.since.as_deref(), now)?;
    // Anyone may ask: use the logged-in central if there is one, without needing a login.
    let base = match a.central {
        Some(c) => c,
        None => session()?.client.base().to_string(),
    };
    let client = Client::new(&base, None);
    let r = client.lookup(&a.node, &a.remote, a.port, from, now).await?;
    emit(out, &r, render::lookup)
}

async fn sim(a: SimArgs) -> Result<()> {
    let exe = std::env::current_exe().context("finding the slicelab binary")?;
    eprintln!(
        "simulating {} nodes against a new central (this takes a while)...",
        a.nodes
    );
    let report = slicelab_sim::run(slicelab_sim::SimConfig {
        nodes: a.nodes,
        exe,
        db: a.db,
        timeout: std::time::Duration::from_secs(a.timeout),
    })
    .await?;
    print(&report.to_string())
}

// ---------- events ----------

async fn events(out: Output, a: EventsArgs) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    let since = a
        .since
        .as_deref()
        .map(|v| {
            timefmt::parse_since(v, timefmt::now())
                .map_err(|m| CliError::Usage(format!("--since: {m}")))
        })
        .transpose()?;
    let page = fetch(&a.list, |paging| {
        let f = EventFilter {
            object_type: a.object_type.clone(),
            object: a.object.clone(),
            actor: a.actor.clone(),
            since,
            paging,
        };
        async move { c_.events(&f).await }
    })
    .await?;
    emit_page(out, &page, render::events)
}

// ---------- central ----------

/// `sqlite:///var/lib/slicelab/central.db` for root, else under the user's data directory.
pub fn default_db_url(is_root: bool, data_dir: Option<PathBuf>) -> String {
    let path = if is_root {
        PathBuf::from("/var/lib/slicelab/central.db")
    } else {
        data_dir
            .unwrap_or_else(|| PathBuf::from("."))
            .join("slicelab")
            .join("central.db")
    };
    format!("sqlite://{}", path.display())
}

/// The file of a `sqlite://PATH[?opts]` URL (none for in-memory databases and other schemes).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

async fn central(a: CentralArgs) -> Result<()> {
    let db_url =
        a.db.unwrap_or_else(|| default_db_url(nix::unistd::geteuid().is_root(), dirs::data_dir()));
    if let Some(dir) = sqlite_path(&db_url).and_then(|p| p.parent().map(Path::to_path_buf)) {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let admin_password = std::env::var("SLICELAB_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let running = slicelab_central::start_with_routes(
        slicelab_central::Config {
            db_url: db_url.clone(),
            listen: a.listen,
            admin_email: a.admin_email.clone(),
            admin_password,
        },
        slicelab_web::router(),
    )
    .await
    .with_context(|| {
        format!(
            "starting central (database {})",
            slicelab_central::redact(&db_url)
        )
    })?;
    let url = format!("http://{}", running.addr);
    let mut text = format!(
        "central: serving {url}/api/v1 (database {})\n",
        slicelab_central::redact(&db_url)
    );
    if let Some(pw) = &running.generated_admin_password {
        text.push_str(&format!(
            "\nCreated the admin account. Its password is shown only this once:\n\n    \
             email:     {email}\n    password:  {pw}\n\n\
             Log in with:  slicelab login --central {url} --email {email}\n\n",
            email = a.admin_email
        ));
    }
    print(&text)?;
    running.wait_for_signal().await?;
    Ok(())
}

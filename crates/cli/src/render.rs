//! How registry objects look in a terminal. Pure: objects in, text out (`now` passed in).

use slicelab_model::image::Image;
use slicelab_model::sliver::Sliver;
use slicelab_model::{ApiToken, Event, Key, Node, Person, Site, Slice, SliceTag};

use crate::table::{fields, list, truncate, Table};
use crate::timefmt::{fmt_relative, fmt_time, fmt_time_relative};

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn opt_f64(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

pub fn sites(items: &[Site]) -> String {
    let mut t = Table::new(&["id", "login_base", "name", "max_slices", "enabled", "url"]);
    for s in items {
        t.row([
            s.id.to_string(),
            s.login_base.clone(),
            s.name.clone(),
            s.max_slices.to_string(),
            yes_no(s.enabled),
            or_dash(&s.url),
        ]);
    }
    t.render()
}

pub fn site(s: &Site) -> String {
    fields(&[
        ("id", s.id.to_string()),
        ("login_base", s.login_base.clone()),
        ("name", s.name.clone()),
        ("url", or_dash(&s.url)),
        ("max_slices", s.max_slices.to_string()),
        (
            "location",
            format!("{}, {}", opt_f64(s.latitude), opt_f64(s.longitude)),
        ),
        ("enabled", yes_no(s.enabled)),
        ("image_quota_mb", s.image_quota_mb.to_string()),
        (
            "image_used",
            image_use(s.image_used_bytes, s.image_quota_mb),
        ),
        ("created", fmt_time(s.created)),
    ])
}

/// What a site's `site` images use, in the quota's unit: `12.5 MiB (61% of the quota)`.
fn image_use(used: u64, quota_mb: i64) -> String {
    let mib = used as f64 / f64::from(1 << 20);
    if quota_mb > 0 {
        let pct = mib / quota_mb as f64 * 100.0;
        format!("{mib:.1} MiB ({pct:.0}% of the quota)")
    } else {
        format!("{mib:.1} MiB")
    }
}

fn roles(p: &Person) -> Vec<String> {
    p.roles.iter().map(|r| r.as_str().to_string()).collect()
}

pub fn persons(items: &[Person]) -> String {
    let mut t = Table::new(&["id", "email", "name", "roles", "sites", "enabled"]);
    for p in items {
        t.row([
            p.id.to_string(),
            p.email.clone(),
            format!("{} {}", p.first_name, p.last_name),
            roles(p).join(","),
            list(&p.sites).replace(", ", ","),
            yes_no(p.enabled),
        ]);
    }
    t.render()
}

pub fn person(p: &Person) -> String {
    fields(&[
        ("id", p.id.to_string()),
        ("email", p.email.clone()),
        ("name", format!("{} {}", p.first_name, p.last_name)),
        ("roles", list(&roles(p))),
        ("sites", list(&p.sites)),
        ("enabled", yes_no(p.enabled)),
        ("created", fmt_time(p.created)),
    ])
}

pub fn keys(items: &[Key]) -> String {
    let mut t = Table::new(&["id", "person", "created", "key"]);
    for k in items {
        t.row([
            k.id.to_string(),
            k.person.clone(),
            fmt_time(k.created),
            truncate(&k.key, 60),
        ]);
    }
    t.render()
}

fn last_contact(n: &Node, now: i64) -> String {
    n.last_contact
        .map(|t| fmt_relative(t, now))
        .unwrap_or_else(|| "never".into())
}

pub fn nodes(items: &[Node], now: i64) -> String {
    let mut t = Table::new(&[
        "id",
        "hostname",
        "site",
        "boot_state",
        "cpu",
        "mem_mb",
        "disk_gb",
        "region",
        "status",
        "last_contact",
    ]);
    for n in items {
        t.row([
            n.id.to_string(),
            n.hostname.clone(),
            // A peer's node: its site here is the peer; say so.
            match &n.authority {
                Some(a) => format!("{} (peer authority {a})", n.site),
                None => n.site.clone(),
            },
            n.boot_state.as_str().to_string(),
            n.cpu_cores.to_string(),
            n.mem_mb.to_string(),
            n.disk_gb.to_string(),
            or_dash(&n.region),
            n.status.as_str().to_string(),
            last_contact(n, now),
        ]);
    }
    t.render()
}

pub fn node(n: &Node, now: i64) -> String {
    fields(&[
        ("id", n.id.to_string()),
        ("hostname", n.hostname.clone()),
        ("site", n.site.clone()),
        ("boot_state", n.boot_state.as_str().to_string()),
        ("cpu_cores", n.cpu_cores.to_string()),
        ("mem_mb", n.mem_mb.to_string()),
        ("disk_gb", n.disk_gb.to_string()),
        ("region", or_dash(&n.region)),
        ("status", n.status.as_str().to_string()),
        ("reservable", n.reservable.to_string()),
        (
            "bwlimit",
            n.bwlimit
                .map(slicelab_model::tags::format_rate)
                .unwrap_or_else(|| "none".into()),
        ),
        (
            "last_contact",
            n.last_contact
                .map(|t| fmt_time_relative(t, now))
                .unwrap_or_else(|| "never".into()),
        ),
        ("created", fmt_time(n.created)),
    ])
}

pub fn slices(items: &[Slice], now: i64) -> String {
    let mut t = Table::new(&[
        "id",
        "name",
        "site",
        "nodes",
        "persons",
        "expires",
        "enabled",
        "description",
    ]);
    for s in items {
        t.row([
            s.id.to_string(),
            s.name.clone(),
            s.site.clone(),
            s.nodes.len().to_string(),
            s.persons.len().to_string(),
            fmt_relative(s.expires, now),
            yes_no(s.enabled),
            truncate(&s.description, 40),
        ]);
    }
    t.render()
}

pub fn slice(s: &Slice, now: i64) -> String {
    fields(&[
        ("id", s.id.to_string()),
        ("name", s.name.clone()),
        ("site", s.site.clone()),
        ("description", or_dash(&s.description)),
        ("url", or_dash(&s.url)),
        ("expires", fmt_time_relative(s.expires, now)),
        ("enabled", yes_no(s.enabled)),
        ("created", fmt_time(s.created)),
        ("nodes", list(&s.nodes)),
        ("persons", list(&s.persons)),
    ])
}

pub fn tags(items: &[SliceTag]) -> String {
    let mut t = Table::new(&["id", "tag", "node", "value"]);
    for tag in items {
        t.row([
            tag.id.to_string(),
            tag.name.as_str().to_string(),
            tag.node.clone().unwrap_or_else(|| "(all)".into()),
            truncate(&tag.value, 60),
        ]);
    }
    t.render()
}

pub fn slivers(items: &[Sliver], now: i64) -> String {
    let mut t = Table::new(&["slice", "node", "state", "address", "updated", "message"]);
    for s in items {
        t.row([
            s.slice.clone(),
            s.node.clone(),
            s.state.as_str().to_string(),
            s.address.clone().unwrap_or_else(|| "-".into()),
            fmt_relative(s.updated, now),
            truncate(&s.message, 60),
        ]);
    }
    t.render()
}

pub fn leases(items: &[slicelab_model::Lease], now: i64) -> String {
    let mut t = Table::new(&["id", "slice", "node", "start", "end"]);
    for l in items {
        t.row([
            l.id.to_string(),
            l.slice.clone(),
            l.node.clone(),
            fmt_time_relative(l.start, now),
            fmt_time_relative(l.end, now),
        ]);
    }
    t.render()
}

pub fn peers(items: &[slicelab_model::peer::Peer], now: i64) -> String {
    let mut t = Table::new(&[
        "name",
        "url",
        "state",
        "slivers",
        "nodes",
        "last contact",
        "note",
    ]);
    for p in items {
        let note = [
            p.reason.as_str(),
            p.remote_state.as_str(),
            p.last_error.as_str(),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
        t.row([
            p.name.clone(),
            p.url.clone(),
            p.state.as_str().to_string(),
            format!("{}/{}", p.slivers, p.max_slivers),
            p.nodes.to_string(),
            p.last_contact
                .map_or_else(|| "never".to_string(), |t| fmt_time_relative(t, now)),
            note,
        ]);
    }
    t.render()
}

pub fn peer(p: &slicelab_model::peer::Peer, now: i64) -> String {
    let mut s = peers(std::slice::from_ref(p), now);
    if let Some(fp) = &p.ca_fingerprint {
        s.push_str(&format!("CA fingerprint: {fp}\n"));
    }
    s.push_str(&format!(
        "its slices may reserve here: {}% CPU, {} MiB\n",
        p.max_cpu_reserve, p.max_mem_reserve_mb
    ));
    if !p.reason.is_empty() {
        s.push_str(&format!("suspended here: {}\n", p.reason));
    }
    if !p.remote_state.is_empty() {
        s.push_str(&format!("the peer says: {}\n", p.remote_state));
    }
    if !p.last_error.is_empty() {
        s.push_str(&format!("last exchange failed: {}\n", p.last_error));
    }
    s
}

pub fn tokens(items: &[ApiToken], now: i64) -> String {
    let mut t = Table::new(&["id", "name", "kind", "created", "expires"]);
    for tok in items {
        t.row([
            tok.id.to_string(),
            tok.name.clone(),
            tok.kind.clone(),
            fmt_time(tok.created),
            fmt_time_relative(tok.expires, now),
        ]);
    }
    t.render()
}

pub fn events(items: &[Event]) -> String {
    let mut t = Table::new(&["id", "time", "actor", "action", "object", "detail"]);
    for e in items {
        let detail = match &e.detail {
            serde_json::Value::Null => "-".to_string(),
            serde_json::Value::Object(m) if m.is_empty() => "-".to_string(),
            d => d.to_string(),
        };
        t.row([
            e.id.to_string(),
            fmt_time(e.time),
            e.actor.clone(),
            e.action.clone(),
            format!("{}:{}", e.object_type, e.object_name),
            truncate(&detail, 80),
        ]);
    }
    t.render()
}

fn site_of(sites: &std::collections::HashMap<i64, String>, id: i64) -> String {
    sites.get(&id).cloned().unwrap_or_else(|| id.to_string())
}

/// Images published at central; `sites` names site ids.
pub fn images(items: &[Image], sites: &std::collections::HashMap<i64, String>) -> String {
    let mut t = Table::new(&[
        "name",
        "visibility",
        "site",
        "owner",
        "size",
        "layers",
        "created",
    ]);
    for i in items {
        t.row([
            i.name.clone(),
            i.visibility.as_str().to_string(),
            site_of(sites, i.site_id),
            or_dash(&i.owner),
            bytes(i.size),
            i.manifest.layers.len().to_string(),
            fmt_time(i.created),
        ]);
    }
    t.render()
}

pub fn image(i: &Image, sites: &std::collections::HashMap<i64, String>) -> String {
    let c = &i.manifest.config;
    let mut out = fields(&[
        ("name", i.name.clone()),
        ("digest", i.digest.clone()),
        ("visibility", i.visibility.as_str().to_string()),
        ("site", site_of(sites, i.site_id)),
        ("owner", or_dash(&i.owner)),
        ("size", format!("{} ({} bytes)", bytes(i.size), i.size)),
        ("created", fmt_time(i.created)),
        ("command", or_dash(&c.command().join(" "))),
        ("env", list(&c.env)),
        (
            "working_dir",
            or_dash(c.working_dir.as_deref().unwrap_or("")),
        ),
        ("user", or_dash(c.user.as_deref().unwrap_or(""))),
    ]);
    let mut t = Table::new(&["#", "layer digest", "size", "media type"]);
    for (n, l) in i.manifest.layers.iter().enumerate() {
        t.row([
            n.to_string(),
            l.digest.clone(),
            bytes(l.size),
            l.media_type.clone(),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render());
    out
}

fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < U.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

pub fn usage(s: &slicelab_model::UsageSeries) -> String {
    let mut t = Table::new(&["time", "cpu_s", "cores_busy", "tx", "rx", "mem_max"]);
    for p in &s.points {
        t.row([
            fmt_time(p.t),
            format!("{:.1}", p.cpu_s),
            format!("{:.2}", p.cpu_load),
            bytes(p.tx_bytes),
            bytes(p.rx_bytes),
            bytes(p.mem_bytes),
        ]);
    }
    format!(
        "{} from {} to {}, step {}s: {:.1} CPU-s, {} sent, {} received\n{}",
        s.scope,
        fmt_time(s.from),
        fmt_time(s.to),
        s.step,
        s.total_cpu_s,
        bytes(s.total_tx_bytes),
        bytes(s.total_rx_bytes),
        if s.points.is_empty() {
            "(no samples)\n".to_string()
        } else {
            t.render()
        }
    )
}

pub fn usage_top(items: &[slicelab_model::UsageTotal]) -> String {
    let mut t = Table::new(&["slice", "cpu_s", "tx", "rx"]);
    for u in items {
        t.row([
            u.slice.clone(),
            format!("{:.1}", u.cpu_s),
            bytes(u.tx_bytes),
            bytes(u.rx_bytes),
        ]);
    }
    t.render()
}

fn proto(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmp6".into(),
        n => n.to_string(),
    }
}

pub fn flows(items: &[slicelab_model::Flow]) -> String {
    let mut t = Table::new(&[
        "start", "node", "slice", "proto", "source", "remote", "sent", "received", "state",
    ]);
    for f in items {
        let r = &f.flow;
        t.row([
            fmt_time(r.start),
            f.node.clone(),
            r.slice.clone(),
            proto(r.proto),
            format!("{}:{}", r.src, r.sport),
            format!("{}:{}", r.dst, r.dport),
            bytes(r.tx_bytes),
            bytes(r.rx_bytes),
            if r.done {
                "ended".into()
            } else {
                "open".into()
            },
        ]);
    }
    t.render()
}

pub fn lookup(r: &slicelab_model::LookupResult) -> String {
    if r.matches.is_empty() {
        return format!(
            "No slice on {} exchanged traffic with {} between {} and {}.\n",
            r.node,
            r.remote,
            fmt_time(r.from),
            fmt_time(r.to)
        );
    }
    let mut out = format!("Traffic between {} and {}:\n", r.node, r.remote);
    for m in &r.matches {
        out.push_str(&format!(
            "\n  slice {} (site {}): {} flow(s), {} sent, {} received, {} .. {}\n",
            m.slice,
            m.site,
            m.flows,
            bytes(m.tx_bytes),
            bytes(m.rx_bytes),
            fmt_time(m.first_seen),
            fmt_time(m.last_seen)
        ));
        if !m.description.is_empty() {
            out.push_str(&format!("    what: {}\n", m.description));
        }
        if !m.url.is_empty() {
            out.push_str(&format!("    url:  {}\n", m.url));
        }
        for c in &m.contacts {
            out.push_str(&format!(
                "    contact: {} <{}> ({})\n",
                c.name, c.email, c.role
            ));
        }
    }
    out
}

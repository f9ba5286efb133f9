//! The page shell (header, navigation, notices) and small formatting helpers.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::session::Viewer;
use slicelab_model::time::civil_from_days as civil;
pub use slicelab_model::time::days_from_civil;

/// A message shown at the top of a page: the outcome of a form.
#[derive(Debug, Clone)]
pub enum Notice {
    Ok(String),
    Error(String),
    Info(String),
}

impl Notice {
    pub fn render(&self) -> Markup {
        match self {
            Notice::Ok(m) => html! { div.notice.ok role="status" { (m) } },
            Notice::Error(m) => {
                html! { div.notice.error role="alert" { strong { "Not done: " } (m) } }
            }
            Notice::Info(m) => html! { div.notice.info { (m) } },
        }
    }
}

/// Fixed success messages, chosen by the `ok` query parameter of a redirect (never free text,
/// so a link cannot put words in the page's mouth).
pub fn ok_notice(code: Option<&str>) -> Option<Notice> {
    let m = match code? {
        "created" => "Slice created.",
        "nodes" => "Nodes added.",
        "node_removed" => "Node removed from the slice.",
        "persons" => "Person added.",
        "person_removed" => "Person removed from the slice.",
        "renewed" => "Slice renewed.",
        "tag" => "Tag set.",
        "tag_removed" => "Tag removed.",
        "disabled" => "Slice disabled everywhere: its slivers are being stopped and its persons were notified in the event log.",
        "enabled" => "Slice enabled again.",
        "boot_state" => "Boot state changed; the node applies it on its next poll.",
        "bwlimit" => "Bandwidth cap changed; the node applies it on its next poll.",
        "welcome" => "You are logged in.",
        "image_deleted" => "Image deleted.",
        _ => return None,
    };
    Some(Notice::Ok(m.into()))
}

/// Which top-level section a page belongs to (highlighted in the navigation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Mine,
    Images,
    Site,
    Admin,
    Events,
    Lookup,
    Login,
    None,
}

pub struct Page<'a> {
    pub title: &'a str,
    pub section: Section,
    pub viewer: &'a Viewer,
    pub notice: Option<Notice>,
    /// Reload every this many seconds (pages that watch live state).
    pub refresh: Option<u32>,
}

impl<'a> Page<'a> {
    pub fn new(title: &'a str, section: Section, viewer: &'a Viewer) -> Self {
        Page {
            title,
            section,
            viewer,
            notice: None,
            refresh: None,
        }
    }
    pub fn notice(mut self, n: Option<Notice>) -> Self {
        self.notice = n;
        self
    }
    pub fn refresh(mut self, secs: u32) -> Self {
        self.refresh = Some(secs);
        self
    }

    pub fn render(self, body: Markup) -> Markup {
        let v = self.viewer;
        let on = |s: Section| if s == self.section { "on" } else { "" };
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · slicelab" }
                    link rel="stylesheet" href="/assets/style.css";
                    script src="/assets/app.js" defer {}
                }
                body data-refresh=[self.refresh] {
                    header.top { div.bar {
                        a.brand href="/" { "slice" span { "lab" } }
                        nav {
                            a class=(on(Section::Overview)) href="/" { "Overview" }
                            @if v.person.is_some() {
                                a class=(on(Section::Mine)) href="/my" { "My slices" }
                                a class=(on(Section::Images)) href="/images" { "Images" }
                                @for (id, base) in v.sites() {
                                    @if v.actor.has_role_at(slicelab_model::Role::Pi, id) || v.actor.has_role_at(slicelab_model::Role::Tech, id) {
                                        a class=(on(Section::Site)) href={ "/sites/" (base) "/manage" } { "Site " (base) }
                                    }
                                }
                            }
                            @if v.actor.is_admin() {
                                a class=(on(Section::Admin)) href="/admin" { "Mission control" }
                                a class=(on(Section::Events)) href="/admin/events" { "Events" }
                            }
                            a class=(on(Section::Lookup)) href="/lookup" { "Who sent this?" }
                        }
                        div.who {
                            @if let Some(p) = &v.person {
                                span { (p.email) }
                                form.inline method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(v.csrf());
                                    button.small.ghost type="submit" { "Log out" }
                                }
                            } @else {
                                a class=(on(Section::Login)) href="/login" style="color:#fff" { "Log in" }
                            }
                        }
                    } }
                    main {
                        @if let Some(n) = &self.notice { (n.render()) }
                        (body)
                    }
                    footer { "slicelab — a PlanetLab-style testbed. Times are UTC." }
                }
            }
        }
    }
}

/// An HTML answer with a status.
pub fn respond(status: StatusCode, m: Markup) -> Response {
    (status, Html(m.into_string())).into_response()
}

pub fn ok(m: Markup) -> Response {
    respond(StatusCode::OK, m)
}

/// Inline SVG produced by our own chart code (already escaped).
pub fn svg(s: String) -> Markup {
    PreEscaped(s)
}

pub fn badge(text: &str) -> Markup {
    html! { span class={ "badge " (text) } { (text) } }
}

/// `2024-05-01 13:07 UTC`
pub fn fmt_time(t: i64) -> String {
    let (y, mo, d) = civil(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02} UTC",
        s / 3600,
        s % 3600 / 60
    )
}

/// `13:07`
pub fn fmt_hm(t: i64) -> String {
    let s = t.rem_euclid(86_400);
    format!("{:02}:{:02}", s / 3600, s % 3600 / 60)
}

/// `05-01`
pub fn fmt_day(t: i64) -> String {
    let (_, mo, d) = civil(t.div_euclid(86_400));
    format!("{mo:02}-{d:02}")
}

/// `2024-05-01T13:07`, the value format of `<input type="datetime-local">`.
pub fn fmt_local_input(t: i64) -> String {
    let (y, mo, d) = civil(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}", s / 3600, s % 3600 / 60)
}

/// Parses `YYYY-MM-DDTHH:MM` (optionally `:SS`) as UTC.
pub fn parse_local_input(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once('T')?;
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    if dp.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut tp = time.split(':');
    let hh: i64 = tp.next()?.parse().ok()?;
    let mm: i64 = tp.next()?.parse().ok()?;
    let ss: i64 = match tp.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if tp.next().is_some()
        || !(0..24).contains(&hh)
        || !(0..60).contains(&mm)
        || !(0..60).contains(&ss)
    {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// `3 min ago`, `2 h ago`, `in 27 days`.
pub fn fmt_ago(now: i64, t: i64) -> String {
    let d = now - t;
    let (a, future) = if d < 0 { (-d, true) } else { (d, false) };
    let s = if a < 90 {
        format!("{a} s")
    } else if a < 90 * 60 {
        format!("{} min", a / 60)
    } else if a < 36 * 3600 {
        format!("{} h", a / 3600)
    } else {
        format!("{} days", a / 86_400)
    };
    if future {
        format!("in {s}")
    } else {
        format!("{s} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(fmt_time(1_714_568_820), "2024-05-01 13:07 UTC");
        assert_eq!(parse_local_input("2024-05-01T13:07"), Some(1_714_568_820));
        assert_eq!(
            parse_local_input(&fmt_local_input(1_714_568_820)),
            Some(1_714_568_820)
        );
        assert_eq!(parse_local_input("2024-13-01T13:07"), None);
        assert_eq!(parse_local_input("yesterday"), None);
        assert_eq!(fmt_ago(100, 40), "60 s ago");
        assert_eq!(fmt_ago(0, 3 * 86_400), "in 3 days");
    }
}

//! Usage plots: the two graphs of the seed lecture — aggregate CPU load and aggregate bandwidth
//! (GB per day) over time — for the platform, a site, a node or a slice, read from central's
//! usage series (`slicelab_central::queries::usage_series`) and drawn as server-side SVG.

use maud::{html, Markup};
use slicelab_central::queries::{self, UsageScope};
use slicelab_central::state::AppState;
use slicelab_model::UsageSeries;

use crate::chart::{chart, fmt_value, ChartStyle};
use crate::error::WebResult;
use crate::layout::svg;

/// The time window of a plot page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hours6,
    Day,
    Week,
}

impl Range {
    pub fn parse(s: Option<&str>) -> Range {
        match s {
            Some("6h") => Range::Hours6,
            Some("7d") => Range::Week,
            _ => Range::Day,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Range::Hours6 => "6h",
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }
    /// (window, step) in seconds.
    pub fn window(self) -> (i64, i64) {
        match self {
            Range::Hours6 => (6 * 3600, 300),
            Range::Day => (86_400, 900),
            Range::Week => (7 * 86_400, 6 * 3600),
        }
    }
}

/// Average cores busy per step.
pub fn cpu_points(s: &UsageSeries) -> Vec<(i64, f64)> {
    s.points.iter().map(|p| (p.t, p.cpu_load)).collect()
}

/// Bandwidth (sent + received) per step, as a rate in GB per day.
pub fn bandwidth_points(s: &UsageSeries) -> Vec<(i64, f64)> {
    let step = s.step.max(1) as f64;
    s.points
        .iter()
        .map(|p| {
            let bytes = p.tx_bytes.saturating_add(p.rx_bytes) as f64;
            (p.t, bytes / step * 86_400.0 / 1e9)
        })
        .collect()
}

pub fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{} GB", fmt_value(b / 1e9))
    } else if b >= 1e6 {
        format!("{} MB", fmt_value(b / 1e6))
    } else if b >= 1e3 {
        format!("{} kB", fmt_value(b / 1e3))
    } else {
        format!("{b} B")
    }
}

/// The CPU and bandwidth charts of `scope` over `range`, ending now.
pub async fn plots(
    st: &AppState,
    scope: &UsageScope,
    range: Range,
    base_url: &str,
) -> WebResult<Markup> {
    let now = slicelab_central::now();
    let (window, step) = range.window();
    let to = (now / step + 1) * step;
    let series = queries::usage_series(st, scope, to - window, to, step).await?;
    let cpu = chart(
        &cpu_points(&series),
        &ChartStyle::new("Aggregate CPU load", "cores busy"),
    );
    let bw = chart(
        &bandwidth_points(&series),
        &ChartStyle::new("Aggregate bandwidth", "GB/day"),
    );
    Ok(html! {
        div.card.plots {
            div style="display:flex;justify-content:space-between;align-items:baseline;flex-wrap:wrap;gap:.5rem" {
                h2 { "Usage" }
                div.muted {
                    "Window: "
                    @for r in [Range::Hours6, Range::Day, Range::Week] {
                        @if r == range { strong { (r.code()) } } @else { a href={ (base_url) "?range=" (r.code()) } { (r.code()) } }
                        " "
                    }
                    " · CPU " (fmt_value(series.total_cpu_s / 3600.0)) " core-hours · sent "
                    (fmt_bytes(series.total_tx_bytes)) " · received " (fmt_bytes(series.total_rx_bytes))
                }
            }
            div.grid {
                div.chart-cpu { (svg(cpu)) }
                div.chart-bw { (svg(bw)) }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use slicelab_model::UsagePoint;

    #[test]
    fn points_are_load_and_gb_per_day() {
        let s = UsageSeries {
            scope: "platform".into(),
            from: 0,
            to: 1800,
            step: 900,
            points: vec![UsagePoint {
                t: 900,
                cpu_s: 450.0,
                cpu_load: 0.5,
                tx_bytes: 500_000_000,
                rx_bytes: 400_000_000,
                ..Default::default()
            }],
            total_cpu_s: 450.0,
            total_tx_bytes: 500_000_000,
            total_rx_bytes: 400_000_000,
        };
        assert_eq!(cpu_points(&s), vec![(900, 0.5)]);
        let bw = bandwidth_points(&s);
        // 0.9 GB in 15 minutes is 86.4 GB/day.
        assert!((bw[0].1 - 86.4).abs() < 1e-9, "{bw:?}");
        assert_eq!(fmt_bytes(1_500_000_000), "1.5 GB");
        assert_eq!(fmt_bytes(12), "12 B");
        assert_eq!(Range::parse(Some("7d")), Range::Week);
        assert_eq!(Range::parse(Some("bogus")), Range::Day);
    }
}

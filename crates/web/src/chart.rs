//! Server-side SVG charts: a time series drawn as a line over a shaded area, with axes, grid,
//! tick labels and a title. Pure functions of the data, so they are unit-tested without a browser.

use std::fmt::Write as _;

use crate::layout::{fmt_day, fmt_hm};

/// How a chart is drawn.
#[derive(Debug, Clone, Copy)]
pub struct ChartStyle<'a> {
    pub title: &'a str,
    /// Unit of the values, shown beside the title (e.g. `GB/day`, `load`).
    pub unit: &'a str,
    pub width: u32,
    pub height: u32,
}

impl<'a> ChartStyle<'a> {
    pub fn new(title: &'a str, unit: &'a str) -> Self {
        ChartStyle {
            title,
            unit,
            width: 560,
            height: 220,
        }
    }
}

const LEFT: f64 = 52.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 28.0;

/// Escapes text for SVG/XML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A "nice" step (1, 2 or 5 times a power of ten) so that `max` spans about `ticks` steps.
pub fn nice_step(max: f64, ticks: u32) -> f64 {
    if !(max.is_finite()) || max <= 0.0 {
        return 1.0;
    }
    let raw = max / f64::from(ticks.max(1));
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// A tick label: few digits, no trailing zeros.
pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Draws `series` (Unix seconds, value), sorted or not, as an SVG line/area chart. Non-finite
/// values are skipped. With no points the chart says so instead of drawing a line.
pub fn chart(series: &[(i64, f64)], style: &ChartStyle<'_>) -> String {
    let mut pts: Vec<(i64, f64)> = series
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    pts.sort_by_key(|(t, _)| *t);
    let (w, h) = (f64::from(style.width), f64::from(style.height));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#,
        xml_escape(style.title)
    );
    let title = if style.unit.is_empty() {
        xml_escape(style.title)
    } else {
        format!("{} ({})", xml_escape(style.title), xml_escape(style.unit))
    };
    let _ = write!(s, r#"<text class="title" x="{LEFT}" y="18">{title}</text>"#);
    let (x0, x1, y0, y1) = (LEFT, w - RIGHT, TOP, h - BOTTOM);
    if pts.is_empty() {
        let _ = write!(
            s,
            r##"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="none" stroke="#e6e9ef"/><text class="empty" x="{}" y="{}" text-anchor="middle">no data reported yet</text></svg>"##,
            x1 - x0,
            y1 - y0,
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0
        );
        return s;
    }
    let (mut t_min, mut t_max) = (pts[0].0, pts[pts.len() - 1].0);
    if t_max <= t_min {
        t_min -= 1800;
        t_max += 1800;
    }
    let v_max_data = pts.iter().map(|(_, v)| *v).fold(0.0f64, f64::max);
    let v_min_data = pts.iter().map(|(_, v)| *v).fold(0.0f64, f64::min);
    let step = nice_step(v_max_data - v_min_data, 4);
    let v_max = ((v_max_data / step).ceil() * step).max(step);
    let v_min = (v_min_data / step).floor() * step;
    let xs = |t: i64| x0 + (t - t_min) as f64 / (t_max - t_min) as f64 * (x1 - x0);
    let ys = |v: f64| y1 - (v - v_min) / (v_max - v_min) * (y1 - y0);

    // Grid and y ticks.
    s.push_str(r#"<g class="grid">"#);
    let mut v = v_min;
    let mut guard = 0;
    while v <= v_max + step / 2.0 && guard < 50 {
        let y = ys(v);
        let _ = write!(
            s,
            r#"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            x0 - 6.0,
            y + 4.0,
            fmt_value(v)
        );
        v += step;
        guard += 1;
    }
    s.push_str("</g>");

    // X ticks: about five, labelled by time of day (or by day for spans over two days).
    let span = t_max - t_min;
    s.push_str(r#"<g class="axis">"#);
    let _ = write!(
        s,
        r#"<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"/>"#
    );
    for i in 0..=4 {
        let t = t_min + span * i / 4;
        let x = xs(t);
        let label = if span > 2 * 86_400 {
            fmt_day(t)
        } else {
            fmt_hm(t)
        };
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="{y1}" x2="{x:.1}" y2="{}"/><text x="{x:.1}" y="{}" text-anchor="{anchor}">{label}</text>"#,
            y1 + 4.0,
            y1 + 17.0
        );
    }
    s.push_str("</g>");

    // Area and line.
    let mut line = String::new();
    for (i, (t, v)) in pts.iter().enumerate() {
        let _ = write!(
            line,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { " L" },
            xs(*t),
            ys(*v)
        );
    }
    let first_x = xs(pts[0].0);
    let last_x = xs(pts[pts.len() - 1].0);
    let base = ys(v_min.max(0.0).min(v_max));
    let _ = write!(
        s,
        r#"<path class="area" d="{line} L{last_x:.1},{base:.1} L{first_x:.1},{base:.1} Z"/>"#
    );
    let _ = write!(
        s,
        r#"<path class="line" data-points="{}" d="{line}"/>"#,
        pts.len()
    );
    if pts.len() <= 60 {
        for (t, v) in &pts {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" data-v="{}"><title>{} — {}</title></circle>"#,
                xs(*t),
                ys(*v),
                fmt_value(*v),
                fmt_hm(*t),
                fmt_value(*v)
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_series_says_so_and_draws_no_line() {
        let svg = chart(&[], &ChartStyle::new("CPU", "load"));
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("no data reported yet"));
        assert!(!svg.contains(r#"class="line""#));
    }

    #[test]
    fn series_draws_a_line_through_every_point() {
        let data = [(1_000_000, 1.0), (1_000_600, 3.0), (1_001_200, 2.0)];
        let svg = chart(&data, &ChartStyle::new("CPU", "load"));
        assert!(svg.contains(r#"class="line" data-points="3""#));
        let d = svg
            .split(r#"class="line" data-points="3" d=""#)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        assert_eq!(d.matches('L').count(), 2, "{d}");
        assert!(d.starts_with('M'));
        // The first point sits on the left edge, the last on the right edge.
        assert!(d.starts_with(&format!("M{LEFT:.1},")), "{d}");
        assert!(d.contains(&format!("L{:.1},", 560.0 - RIGHT)), "{d}");
    }

    #[test]
    fn higher_values_are_drawn_higher() {
        let data = [(0, 0.0), (60, 10.0)];
        let svg = chart(&data, &ChartStyle::new("x", ""));
        let d = svg
            .split(r#"data-points="2" d=""#)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        let ys: Vec<f64> = d
            .split(['M', 'L'])
            .filter(|p| !p.trim().is_empty())
            .filter_map(|p| p.trim().split(',').nth(1)?.parse().ok())
            .collect();
        assert_eq!(ys.len(), 2);
        assert!(ys[1] < ys[0], "{ys:?}");
    }

    #[test]
    fn titles_are_escaped_and_odd_values_survive() {
        let svg = chart(
            &[(5, f64::NAN), (10, 1.0)],
            &ChartStyle::new("<script>", "a&b"),
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains(r#"data-points="1""#));
        // One point, constant series, negative values: still a well-formed chart.
        let svg = chart(&[(0, -2.0), (10, -2.0)], &ChartStyle::new("n", ""));
        assert!(svg.contains(r#"data-points="2""#));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 4), 5.0);
        assert_eq!(nice_step(4.0, 4), 1.0);
        assert_eq!(nice_step(0.9, 4), 0.5);
        assert_eq!(nice_step(0.0, 4), 1.0);
        assert_eq!(nice_step(1234.0, 4), 500.0);
        assert_eq!(fmt_value(2.50), "2.5");
        assert_eq!(fmt_value(0.0), "0");
        assert_eq!(fmt_value(150.0), "150");
    }
}

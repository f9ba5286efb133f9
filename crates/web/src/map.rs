//! A small world map (equirectangular, coarse coastlines drawn by hand) with a dot per site.

use std::fmt::Write as _;

use crate::chart::xml_escape;

const W: f64 = 720.0;
const H: f64 = 360.0;

/// Very coarse continent outlines (lon, lat): enough to place sites, small enough to ship.
const LAND: &[&[(f64, f64)]] = &[
    // North America
    &[
        (-168.0, 66.0),
        (-140.0, 70.0),
        (-95.0, 72.0),
        (-80.0, 64.0),
        (-60.0, 55.0),
        (-52.0, 47.0),
        (-70.0, 42.0),
        (-76.0, 35.0),
        (-81.0, 25.0),
        (-97.0, 26.0),
        (-97.0, 18.0),
        (-88.0, 15.0),
        (-78.0, 8.0),
        (-85.0, 10.0),
        (-105.0, 20.0),
        (-112.0, 30.0),
        (-124.0, 40.0),
        (-124.0, 48.0),
        (-135.0, 58.0),
        (-152.0, 58.0),
        (-165.0, 62.0),
    ],
    // South America
    &[
        (-78.0, 8.0),
        (-60.0, 10.0),
        (-50.0, 0.0),
        (-35.0, -7.0),
        (-40.0, -22.0),
        (-48.0, -26.0),
        (-58.0, -38.0),
        (-65.0, -55.0),
        (-72.0, -50.0),
        (-71.0, -30.0),
        (-75.0, -15.0),
        (-81.0, -5.0),
        (-78.0, 2.0),
    ],
    // Eurasia
    &[
        (-10.0, 36.0),
        (-9.0, 43.0),
        (-2.0, 48.0),
        (5.0, 53.0),
        (8.0, 57.0),
        (5.0, 62.0),
        (15.0, 69.0),
        (28.0, 71.0),
        (45.0, 68.0),
        (70.0, 73.0),
        (100.0, 77.0),
        (140.0, 72.0),
        (180.0, 69.0),
        (170.0, 60.0),
        (160.0, 58.0),
        (142.0, 50.0),
        (135.0, 43.0),
        (122.0, 40.0),
        (122.0, 30.0),
        (110.0, 20.0),
        (105.0, 10.0),
        (100.0, 14.0),
        (98.0, 8.0),
        (92.0, 20.0),
        (80.0, 15.0),
        (77.0, 8.0),
        (72.0, 20.0),
        (66.0, 25.0),
        (57.0, 25.0),
        (50.0, 30.0),
        (48.0, 29.0),
        (56.0, 24.0),
        (52.0, 16.0),
        (43.0, 12.0),
        (35.0, 28.0),
        (33.0, 31.0),
        (27.0, 37.0),
        (23.0, 37.0),
        (20.0, 40.0),
        (16.0, 38.0),
        (12.0, 44.0),
        (9.0, 44.0),
        (3.0, 43.0),
        (-4.0, 36.0),
    ],
    // Africa
    &[
        (-17.0, 21.0),
        (-10.0, 30.0),
        (-6.0, 35.0),
        (10.0, 37.0),
        (20.0, 32.0),
        (32.0, 31.0),
        (35.0, 28.0),
        (43.0, 12.0),
        (51.0, 12.0),
        (40.0, -5.0),
        (40.0, -15.0),
        (35.0, -25.0),
        (20.0, -35.0),
        (17.0, -29.0),
        (12.0, -17.0),
        (13.0, -5.0),
        (9.0, 4.0),
        (-8.0, 4.0),
        (-17.0, 14.0),
    ],
    // Australia
    &[
        (113.0, -22.0),
        (123.0, -17.0),
        (131.0, -12.0),
        (137.0, -12.0),
        (142.0, -11.0),
        (146.0, -19.0),
        (153.0, -26.0),
        (150.0, -37.0),
        (140.0, -38.0),
        (131.0, -31.0),
        (115.0, -34.0),
    ],
    // Greenland
    &[
        (-55.0, 60.0),
        (-45.0, 60.0),
        (-20.0, 70.0),
        (-20.0, 80.0),
        (-60.0, 82.0),
        (-70.0, 77.0),
        (-55.0, 70.0),
    ],
    // Great Britain
    &[
        (-5.0, 50.0),
        (1.0, 51.0),
        (-2.0, 56.0),
        (-6.0, 58.0),
        (-5.0, 54.0),
    ],
    // Japan
    &[
        (130.0, 31.0),
        (135.0, 34.0),
        (141.0, 41.0),
        (142.0, 45.0),
        (140.0, 38.0),
        (133.0, 33.0),
    ],
];

fn project(lon: f64, lat: f64) -> (f64, f64) {
    ((lon + 180.0) / 360.0 * W, (90.0 - lat) / 180.0 * H)
}

/// A site on the map.
#[derive(Debug, Clone)]
pub struct Pin {
    pub label: String,
    pub href: String,
    pub lat: f64,
    pub lon: f64,
    pub up: usize,
    pub total: usize,
}

pub fn world_map(pins: &[Pin]) -> String {
    let mut s = format!(
        r#"<svg class="map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="Sites on a world map">"#
    );
    for lon in (-150..=150).step_by(30) {
        let (x, _) = project(f64::from(lon), 0.0);
        let _ = write!(
            s,
            r#"<line class="grat" x1="{x}" y1="0" x2="{x}" y2="{H}"/>"#
        );
    }
    for lat in (-60..=60).step_by(30) {
        let (_, y) = project(0.0, f64::from(lat));
        let _ = write!(
            s,
            r#"<line class="grat" x1="0" y1="{y}" x2="{W}" y2="{y}"/>"#
        );
    }
    for poly in LAND {
        s.push_str(r#"<path class="land" d=""#);
        for (i, (lon, lat)) in poly.iter().enumerate() {
            let (x, y) = project(*lon, *lat);
            let _ = write!(s, "{}{x:.1},{y:.1}", if i == 0 { "M" } else { " L" });
        }
        s.push_str(r#" Z"/>"#);
    }
    for p in pins {
        if !(-90.0..=90.0).contains(&p.lat) || !(-180.0..=180.0).contains(&p.lon) {
            continue;
        }
        let (x, y) = project(p.lon, p.lat);
        let class = if p.total > 0 && p.up == p.total {
            "up"
        } else if p.up == 0 {
            "down"
        } else {
            "mixed"
        };
        let _ = write!(
            s,
            r#"<a href="{}"><circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="5"><title>{}: {} of {} nodes up</title></circle><text x="{:.1}" y="{:.1}">{}</text></a>"#,
            xml_escape(&p.href),
            xml_escape(&p.label),
            p.up,
            p.total,
            x + 7.0,
            y + 3.0,
            xml_escape(&p.label)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_land_where_they_should() {
        assert_eq!(project(-180.0, 90.0), (0.0, 0.0));
        assert_eq!(project(0.0, 0.0), (360.0, 180.0));
        let svg = world_map(&[
            Pin {
                label: "<x>".into(),
                href: "/sites/x".into(),
                lat: 40.0,
                lon: -74.0,
                up: 1,
                total: 2,
            },
            Pin {
                label: "bad".into(),
                href: "/sites/bad".into(),
                lat: 100.0,
                lon: 0.0,
                up: 0,
                total: 0,
            },
        ]);
        assert!(svg.contains(r#"class="mixed""#));
        assert!(svg.contains("&lt;x&gt;"));
        assert!(!svg.contains("/sites/bad"));
    }
}

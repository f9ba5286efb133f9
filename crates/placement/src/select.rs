//! Node selection: the [`Selection`] a researcher writes (`count=20, distinct=site, …`), its
//! parser, and [`select`], which filters and ranks candidates and explains a shortfall.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use slicelab_model::tags::parse_bytes;
use slicelab_model::TagName;
use utoipa::ToSchema;

use crate::{admit, Candidate, Reservation};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Distinct {
    /// Any nodes.
    #[default]
    None,
    /// Each chosen node at a different site.
    Site,
    /// Each chosen node in a different region.
    Region,
}

/// What a researcher asks of the nodes for a slice. As text:
/// `count=20, distinct=site, min_free_mem=1G, region=europe, max_load=4`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    #[schema(minimum = 1, maximum = 100000)]
    pub count: u32,
    #[serde(default)]
    pub distinct: Distinct,
    pub region: Option<String>,
    /// Site `login_base`.
    pub site: Option<String>,
    /// Bytes of free memory the node must have.
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub min_free_mem: Option<u64>,
    /// Bytes of free disk the node must have.
    #[serde(default, deserialize_with = "slicelab_model::wire::opt_counter")]
    #[schema(maximum = 9223372036854775807_i64)]
    pub min_free_disk: Option<u64>,
    /// Highest acceptable 1-minute load average.
    #[schema(minimum = 0)]
    pub max_load: Option<f64>,
    #[schema(format = Int64, maximum = 4294967295_u64)]
    pub min_cores: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selection: {0}")]
pub struct SelectionError(pub String);

pub const MAX_COUNT: u32 = 100_000;

impl Selection {
    /// Parses the text form; every key is known and every value checked.
    pub fn parse(s: &str) -> Result<Selection, SelectionError> {
        let err = |m: String| SelectionError(m);
        let mut sel = Selection::default();
        let mut count = None;
        for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| err(format!("{item:?} is not key=value")))?;
            let num = |v: &str| -> Result<u64, SelectionError> {
                v.parse::<u64>()
                    .map_err(|_| err(format!("{k}: {v:?} is not a whole number")))
            };
            match k {
                "count" => count = Some(num(v)?),
                "distinct" => {
                    sel.distinct = match v {
                        "site" => Distinct::Site,
                        "region" => Distinct::Region,
                        "none" => Distinct::None,
                        _ => return Err(err(format!("distinct: {v:?} must be site, region or none"))),
                    }
                }
                "region" => sel.region = Some(v.to_string()),
                "site" => sel.site = Some(v.to_string()),
                "min_free_mem" => {
                    sel.min_free_mem = Some(parse_bytes(TagName::MemMax, v).map_err(|e| err(format!("min_free_mem: {}", e.message)))?)
                }
                "min_free_disk" => {
                    sel.min_free_disk =
                        Some(parse_bytes(TagName::DiskMax, v).map_err(|e| err(format!("min_free_disk: {}", e.message)))?)
                }
                "max_load" => {
                    let f: f64 = v.parse().map_err(|_| err(format!("max_load: {v:?} is not a number")))?;
                    sel.max_load = Some(f);
                }
                "min_cores" => sel.min_cores = Some(num(v)?.try_into().map_err(|_| err("min_cores: too large".into()))?),
                _ => {
                    return Err(err(format!(
                        "unknown constraint {k:?}; known: count, distinct, region, site, min_free_mem, min_free_disk, max_load, min_cores"
                    )))
                }
            }
        }
        sel.count = count
            .ok_or_else(|| err("count=N is required".into()))?
            .try_into()
            .map_err(|_| err("count: too large".into()))?;
        sel.validate()?;
        Ok(sel)
    }

    pub fn validate(&self) -> Result<(), SelectionError> {
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(SelectionError(format!("count must be 1..={MAX_COUNT}")));
        }
        if let Some(l) = self.max_load {
            if !(l.is_finite() && l >= 0.0) {
                return Err(SelectionError(
                    "max_load must be a non-negative number".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A request the registry cannot satisfy, with the arithmetic that shows why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsatisfiable {
    pub wanted: u32,
    /// Nodes left after each constraint, in the order applied.
    pub steps: Vec<(String, usize)>,
    /// Distinct sites/regions among the nodes that qualified (when `distinct` was asked).
    pub distinct_groups: Option<usize>,
    pub qualified: usize,
}

impl fmt::Display for Unsatisfiable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot place {} node(s): ", self.wanted)?;
        let parts: Vec<String> = self.steps.iter().map(|(c, n)| format!("{n} {c}")).collect();
        write!(f, "{}", parts.join(", then "))?;
        if let Some(g) = self.distinct_groups {
            write!(f, "; they are on only {g} distinct group(s)")?;
        }
        // Name the first constraint that took the count below what was asked.
        if let Some((c, n)) = self.steps.iter().find(|(_, n)| *n < self.wanted as usize) {
            write!(f, " — the constraint that failed: {c} (left {n})")?;
        } else if self.distinct_groups.is_some() {
            write!(f, " — the constraint that failed: distinct")?;
        }
        Ok(())
    }
}

fn score(c: &Candidate) -> (u64, u32, &str) {
    // Least loaded first (unknown load last), then fewest slivers, then a stable order.
    let load = c.load1.map(|l| (l * 1000.0) as u64).unwrap_or(u64::MAX);
    (load, c.slivers, c.hostname.as_str())
}

/// Picks `sel.count` nodes among `candidates` for a slice guaranteeing `reserve` on each.
/// Nodes already in the slice are not picked again.
pub fn select(
    sel: &Selection,
    reserve: Reservation,
    candidates: &[Candidate],
) -> Result<Vec<i64>, Unsatisfiable> {
    let mut steps = Vec::new();
    let mut left: Vec<&Candidate> = candidates.iter().collect();
    let mut step = |name: String, left: &mut Vec<&Candidate>, keep: &dyn Fn(&Candidate) -> bool| {
        left.retain(|c| keep(c));
        steps.push((name, left.len()));
    };
    step("live nodes".into(), &mut left, &|c| c.live);
    step("not already in the slice".into(), &mut left, &|c| {
        !c.in_slice
    });
    if let Some(r) = &sel.region {
        step(format!("in region {r}"), &mut left, &|c| &c.region == r);
    }
    if let Some(s) = &sel.site {
        step(format!("at site {s}"), &mut left, &|c| &c.site == s);
    }
    if let Some(n) = sel.min_cores {
        step(format!("with >= {n} cores"), &mut left, &|c| {
            c.cpu_cores >= n
        });
    }
    if let Some(m) = sel.min_free_mem {
        let mb = m.div_ceil(1 << 20);
        step(format!("with >= {mb} MiB free memory"), &mut left, &|c| {
            c.mem_free_mb.unwrap_or(0) >= mb
        });
    }
    if let Some(d) = sel.min_free_disk {
        let mb = d.div_ceil(1 << 20);
        step(format!("with >= {mb} MiB free disk"), &mut left, &|c| {
            c.disk_free_mb.unwrap_or(0) >= mb
        });
    }
    if let Some(l) = sel.max_load {
        step(format!("with load <= {l}"), &mut left, &|c| {
            c.load1.is_some_and(|x| x <= l)
        });
    }
    if !reserve.is_zero() {
        step(
            "with room for the slice's guarantees".into(),
            &mut left,
            &|c| admit(c, reserve).is_ok(),
        );
    }
    left.sort_by(|a, b| score(a).cmp(&score(b)));
    let wanted = sel.count as usize;
    let chosen: Vec<&Candidate> = match sel.distinct {
        Distinct::None => left.iter().take(wanted).copied().collect(),
        Distinct::Site | Distinct::Region => {
            // Best node of each group; groups ranked by their best node.
            let mut best: BTreeMap<&str, &Candidate> = BTreeMap::new();
            for c in &left {
                let key = if sel.distinct == Distinct::Site {
                    c.site.as_str()
                } else {
                    c.region.as_str()
                };
                best.entry(key).or_insert(c);
            }
            let mut v: Vec<&Candidate> = best.into_values().collect();
            v.sort_by(|a, b| score(a).cmp(&score(b)));
            if v.len() < wanted {
                return Err(Unsatisfiable {
                    wanted: sel.count,
                    qualified: left.len(),
                    distinct_groups: Some(v.len()),
                    steps,
                });
            }
            v.into_iter().take(wanted).collect()
        }
    };
    if chosen.len() < wanted {
        return Err(Unsatisfiable {
            wanted: sel.count,
            qualified: left.len(),
            distinct_groups: None,
            steps,
        });
    }
    Ok(chosen.iter().map(|c| c.node_id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::node;

    #[test]
    fn parses_the_text_form() {
        let s =
            Selection::parse("count=20, distinct=site, min_free_mem=1G, region=europe, max_load=4")
                .unwrap();
        assert_eq!(s.count, 20);
        assert_eq!(s.distinct, Distinct::Site);
        assert_eq!(s.min_free_mem, Some(1 << 30));
        assert_eq!(s.region.as_deref(), Some("europe"));
        assert_eq!(s.max_load, Some(4.0));
        for bad in [
            "",
            "distinct=site",
            "count=0",
            "count=x",
            "count=2, colour=red",
            "count=2, distinct=planet",
            "count=1, max_load=-1",
            "count=1, min_free_mem=lots",
            "count",
        ] {
            assert!(Selection::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let e = Selection::parse("count=2, colour=red").unwrap_err();
        assert!(e.0.contains("colour") && e.0.contains("known"), "{e}");
    }

    #[test]
    fn picks_least_loaded_live_nodes() {
        let mut ns: Vec<Candidate> = (1..=5).map(|i| node(i, "a", "europe")).collect();
        ns[0].load1 = Some(3.0);
        ns[1].live = false;
        ns[2].load1 = Some(0.1);
        ns[3].in_slice = true;
        let sel = Selection {
            count: 2,
            ..Default::default()
        };
        assert_eq!(
            select(&sel, Reservation::default(), &ns).unwrap(),
            vec![3, 5]
        );
    }

    #[test]
    fn spreads_over_distinct_sites() {
        let ns = vec![
            node(1, "a", "europe"),
            node(2, "a", "europe"),
            node(3, "b", "europe"),
            node(4, "c", "asia"),
        ];
        let sel = Selection::parse("count=3, distinct=site").unwrap();
        let mut got = select(&sel, Reservation::default(), &ns).unwrap();
        got.sort();
        assert_eq!(got.len(), 3);
        assert!(got.contains(&3) && got.contains(&4));
        let sel = Selection::parse("count=3, distinct=region").unwrap();
        let e = select(&sel, Reservation::default(), &ns).unwrap_err();
        assert_eq!(e.distinct_groups, Some(2));
        assert!(e.to_string().contains("only 2 distinct"), "{e}");
    }

    #[test]
    fn impossible_requests_say_which_constraint_failed() {
        let mut ns: Vec<Candidate> = (1..=10)
            .map(|i| node(i, &format!("s{i}"), if i <= 4 { "europe" } else { "asia" }))
            .collect();
        for n in ns.iter_mut().take(4) {
            n.mem_free_mb = Some(if n.node_id <= 1 { 2048 } else { 512 });
        }
        let sel = Selection::parse("count=3, region=europe, min_free_mem=1G").unwrap();
        let e = select(&sel, Reservation::default(), &ns).unwrap_err();
        assert_eq!(e.qualified, 1);
        let msg = e.to_string();
        assert!(msg.contains("4 in region europe"), "{msg}");
        assert!(
            msg.contains("failed: with >= 1024 MiB free memory (left 1)"),
            "{msg}"
        );
        // No live node at all.
        for n in &mut ns {
            n.live = false;
        }
        let e = select(
            &Selection {
                count: 1,
                ..Default::default()
            },
            Reservation::default(),
            &ns,
        )
        .unwrap_err();
        assert!(e.to_string().contains("failed: live nodes (left 0)"), "{e}");
    }

    #[test]
    fn admission_limits_selection() {
        let mut ns = vec![node(1, "a", "x"), node(2, "b", "x")];
        ns[0].reserved = Reservation {
            cpu_pct: 380,
            mem_mb: 0,
        };
        let sel = Selection {
            count: 1,
            ..Default::default()
        };
        let got = select(
            &sel,
            Reservation {
                cpu_pct: 50,
                mem_mb: 0,
            },
            &ns,
        )
        .unwrap();
        assert_eq!(got, vec![2]);
        let sel = Selection {
            count: 2,
            ..Default::default()
        };
        let e = select(
            &sel,
            Reservation {
                cpu_pct: 50,
                mem_mb: 0,
            },
            &ns,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("room for the slice's guarantees (left 1)"),
            "{e}"
        );
    }

    #[test]
    fn unknown_load_fails_a_load_bound_and_sorts_last() {
        let mut ns = vec![node(1, "a", "x"), node(2, "b", "x")];
        ns[0].load1 = None;
        let sel = Selection::parse("count=1, max_load=1").unwrap();
        assert_eq!(select(&sel, Reservation::default(), &ns).unwrap(), vec![2]);
        let sel = Selection::parse("count=2").unwrap();
        assert_eq!(
            select(&sel, Reservation::default(), &ns).unwrap(),
            vec![2, 1]
        );
    }
}

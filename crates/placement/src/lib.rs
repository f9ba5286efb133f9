//! The broker (PlanetLab's slice creation service "acting as a broker"): which nodes a slice may
//! get, as pure functions over facts central gathers from its registry.
//!
//! - [`Selection`]: what a researcher asks for (`count=20, distinct=site, min_free_mem=1G, ...`).
//! - [`select`]: picks the nodes, or explains which constraint could not be met and how many
//!   nodes were left after each one.
//! - [`admit`]: a node's guaranteed shares (reserved CPU and memory) are never over-committed.

#![forbid(unsafe_code)]

mod select;

pub use select::{select, Distinct, Selection, SelectionError, Unsatisfiable};

use serde::{Deserialize, Serialize};

/// What the broker knows of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub node_id: i64,
    pub hostname: String,
    pub site: String,
    pub region: String,
    /// Reported recently and in `boot` state.
    pub live: bool,
    pub cpu_cores: u32,
    pub mem_mb: u64,
    pub disk_gb: u64,
    /// From the node's last health report; `None` if it never reported one.
    pub load1: Option<f64>,
    pub mem_free_mb: Option<u64>,
    pub disk_free_mb: Option<u64>,
    pub slivers: u32,
    /// Sum of the guarantees (`cpu_reserve`, `mem_reserve`) of slices already on the node.
    pub reserved: Reservation,
    /// The slice being placed already has a sliver here.
    pub in_slice: bool,
}

/// Guaranteed shares: CPU in percent of one core, memory in MiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub cpu_pct: u64,
    pub mem_mb: u64,
}

impl Reservation {
    pub fn from_resources(r: &slicelab_model::Resources) -> Reservation {
        Reservation {
            cpu_pct: u64::from(r.cpu_reserve.unwrap_or(0)),
            mem_mb: r.mem_reserve.unwrap_or(0).div_ceil(1 << 20),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.cpu_pct == 0 && self.mem_mb == 0
    }
}

/// Why a node cannot take a reservation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Overcommit {
    #[error("{host}: CPU guarantees would be {want}% of {cap}% ({cores} cores)")]
    Cpu {
        host: String,
        want: u64,
        cap: u64,
        cores: u32,
    },
    #[error("{host}: memory guarantees would be {want} MiB of {cap} MiB")]
    Mem { host: String, want: u64, cap: u64 },
}

/// Admission control: does `extra` fit beside what is already guaranteed on the node?
pub fn admit(c: &Candidate, extra: Reservation) -> Result<(), Overcommit> {
    let cpu_cap = u64::from(c.cpu_cores) * 100;
    let cpu = c.reserved.cpu_pct + extra.cpu_pct;
    if extra.cpu_pct > 0 && cpu > cpu_cap {
        return Err(Overcommit::Cpu {
            host: c.hostname.clone(),
            want: cpu,
            cap: cpu_cap,
            cores: c.cpu_cores,
        });
    }
    let mem = c.reserved.mem_mb + extra.mem_mb;
    if extra.mem_mb > 0 && mem > c.mem_mb {
        return Err(Overcommit::Mem {
            host: c.hostname.clone(),
            want: mem,
            cap: c.mem_mb,
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn node(id: i64, site: &str, region: &str) -> Candidate {
        Candidate {
            node_id: id,
            hostname: format!("n{id}.{site}"),
            site: site.into(),
            region: region.into(),
            live: true,
            cpu_cores: 4,
            mem_mb: 8192,
            disk_gb: 100,
            load1: Some(0.5),
            mem_free_mb: Some(4096),
            disk_free_mb: Some(50_000),
            slivers: 0,
            reserved: Reservation::default(),
            in_slice: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::node;
    use super::*;

    #[test]
    fn guarantees_are_never_overcommitted() {
        let mut n = node(1, "a", "europe");
        n.reserved = Reservation {
            cpu_pct: 350,
            mem_mb: 6000,
        };
        assert!(
            admit(
                &n,
                Reservation {
                    cpu_pct: 50,
                    mem_mb: 2192
                }
            )
            .is_ok(),
            "exactly full is fine"
        );
        let e = admit(
            &n,
            Reservation {
                cpu_pct: 51,
                mem_mb: 0,
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                Overcommit::Cpu {
                    want: 401,
                    cap: 400,
                    ..
                }
            ),
            "{e}"
        );
        let e = admit(
            &n,
            Reservation {
                cpu_pct: 0,
                mem_mb: 2193,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("8193 MiB of 8192"), "{e}");
        // A slice without guarantees is always admitted, even on an over-full node.
        n.reserved.cpu_pct = 900;
        assert!(admit(&n, Reservation::default()).is_ok());
    }
}

/// `select` as the API takes it: the text form or the same as a JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SelectSpec {
    /// `count=20, distinct=site, min_free_mem=1G, region=europe, max_load=4`
    Text(String),
    Spec(Selection),
}

impl SelectSpec {
    pub fn selection(&self) -> Result<Selection, SelectionError> {
        match self {
            SelectSpec::Text(t) => Selection::parse(t),
            SelectSpec::Spec(s) => {
                s.validate()?;
                Ok(s.clone())
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectRequest {
    pub select: SelectSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SelectResult {
    pub slice: slicelab_model::Slice,
    /// Hostnames the broker added, best first.
    pub added: Vec<String>,
}

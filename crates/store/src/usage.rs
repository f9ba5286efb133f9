//! Usage samples: stored once per batch, summed into series, rolled up hourly after a day.

use std::collections::HashMap;

use slicelab_model::time::{DAY, HOUR};
use slicelab_model::{Node, UsageBatch, UsagePoint, UsageSeries, UsageTotal};

use crate::{Arg, Filter, Result, Store};

/// Whose usage a series sums.
#[derive(Debug, Clone)]
pub enum UsageScope {
    /// Node totals of every node.
    Platform,
    /// Node totals of the site's nodes.
    Site { id: i64, login_base: String },
    /// The node's own totals.
    Node { id: i64, hostname: String },
    /// The slice's slivers on every node.
    Slice { id: i64, name: String },
}

impl UsageScope {
    fn label(&self) -> String {
        match self {
            UsageScope::Platform => "platform".into(),
            UsageScope::Site { login_base, .. } => format!("site:{login_base}"),
            UsageScope::Node { hostname, .. } => format!("node:{hostname}"),
            UsageScope::Slice { name, .. } => format!("slice:{name}"),
        }
    }

    fn filter(&self, f: &mut Filter) {
        match self {
            UsageScope::Platform => f.add("u.is_node = {}", Arg::I(1)),
            UsageScope::Site { id, .. } => {
                f.add("u.is_node = {}", Arg::I(1));
                f.add(
                    "u.node_id IN (SELECT id FROM nodes WHERE site_id = {})",
                    Arg::I(*id),
                );
            }
            UsageScope::Node { id, .. } => {
                f.add("u.is_node = {}", Arg::I(1));
                f.add("u.node_id = {}", Arg::I(*id));
            }
            UsageScope::Slice { id, .. } => f.add("u.slice_id = {}", Arg::I(*id)),
        }
    }
}

/// Which total ranks "top consumers".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageRank {
    Cpu,
    Tx,
    Rx,
}

fn sane(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Stores a (validated) usage batch unless already stored; returns the highest stored `seq`.
    pub async fn store_usage(&self, node: &Node, b: &UsageBatch) -> Result<i64> {
        let mut w = self.write().await?;
        let last: i64 = sqlx::query_scalar("SELECT usage_seq FROM nodes WHERE id = $1")
            .bind(node.id)
            .fetch_one(&mut *w.tx)
            .await?;
        if b.seq <= last {
            w.commit().await?;
            return Ok(last);
        }
        let mut slices: HashMap<&str, Option<i64>> = HashMap::new();
        for s in &b.samples {
            let slice_id = match s.slice.as_deref() {
                None => None,
                Some(name) => {
                    if !slices.contains_key(name) {
                        let id: Option<i64> =
                            sqlx::query_scalar("SELECT id FROM slices WHERE name = $1")
                                .bind(name)
                                .fetch_optional(&mut *w.tx)
                                .await?;
                        slices.insert(name, id);
                    }
                    match slices.get(name).copied().flatten() {
                        Some(id) => Some(id),
                        // The slice is gone; its node totals still hold what it used.
                        None => continue,
                    }
                }
            };
            sqlx::query(
                "INSERT INTO usage (node_id, slice_id, is_node, t, resolution, cpu_s, mem_bytes, disk_bytes, \
                 tx_bytes, rx_bytes, tx_pkts, rx_pkts, spoofed_pkts) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(node.id)
            .bind(slice_id)
            .bind(i64::from(s.slice.is_none()))
            .bind(s.time)
            .bind(i64::from(s.interval_s))
            .bind(s.cpu_s)
            .bind(sane(s.mem_bytes))
            .bind(sane(s.disk_bytes))
            .bind(sane(s.tx_bytes))
            .bind(sane(s.rx_bytes))
            .bind(sane(s.tx_pkts))
            .bind(sane(s.rx_pkts))
            .bind(sane(s.spoofed_pkts))
            .execute(&mut *w.tx)
            .await?;
        }
        sqlx::query("UPDATE nodes SET usage_seq = $1 WHERE id = $2")
            .bind(b.seq)
            .bind(node.id)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(b.seq)
    }

    /// Usage of `scope` in `[from, to)` summed per `step` seconds.
    pub async fn usage_series(
        &self,
        scope: &UsageScope,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<UsageSeries> {
        let step = step.max(1);
        let mut f = Filter::default();
        scope.filter(&mut f);
        f.add("u.t >= {}", Arg::I(from));
        f.add("u.t < {}", Arg::I(to));
        f.args.push(Arg::I(step));
        let ps = format!("${}", f.args.len());
        let sql = format!(
            // PostgreSQL sums BIGINTs into NUMERIC; cast back so both backends answer integers.
            "SELECT (u.t / {ps}) * {ps} AS b, SUM(u.cpu_s), CAST(SUM(u.tx_bytes) AS BIGINT), \
             CAST(SUM(u.rx_bytes) AS BIGINT), CAST(SUM(u.tx_pkts) AS BIGINT), CAST(SUM(u.rx_pkts) AS BIGINT), \
             MAX(u.mem_bytes), MAX(u.disk_bytes), CAST(SUM(u.spoofed_pkts) AS BIGINT) \
             FROM usage u {} GROUP BY b ORDER BY b",
            f.where_sql()
        );
        type Row = (i64, f64, i64, i64, i64, i64, i64, i64, i64);
        let rows: Vec<Row> = f.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        let points: Vec<UsagePoint> = rows
            .into_iter()
            .map(
                |(t, cpu, tx, rx, txp, rxp, mem, disk, spoofed)| UsagePoint {
                    t,
                    cpu_s: cpu,
                    cpu_load: cpu / step as f64,
                    tx_bytes: u(tx),
                    rx_bytes: u(rx),
                    tx_pkts: u(txp),
                    rx_pkts: u(rxp),
                    mem_bytes: u(mem),
                    disk_bytes: u(disk),
                    spoofed_pkts: u(spoofed),
                },
            )
            .collect();
        Ok(UsageSeries {
            scope: scope.label(),
            from,
            to,
            step,
            total_cpu_s: points.iter().map(|p| p.cpu_s).sum(),
            total_tx_bytes: points.iter().map(|p| p.tx_bytes).sum(),
            total_rx_bytes: points.iter().map(|p| p.rx_bytes).sum(),
            points,
        })
    }

    /// The slices that used the most in `[from, to)`.
    pub async fn usage_top(
        &self,
        from: i64,
        to: i64,
        by: UsageRank,
        limit: i64,
    ) -> Result<Vec<UsageTotal>> {
        let order = match by {
            UsageRank::Cpu => "2",
            UsageRank::Tx => "3",
            UsageRank::Rx => "4",
        };
        let rows: Vec<(String, f64, i64, i64)> = sqlx::query_as(&format!(
            "SELECT sl.name, SUM(u.cpu_s), CAST(SUM(u.tx_bytes) AS BIGINT), CAST(SUM(u.rx_bytes) AS BIGINT) FROM usage u \
             JOIN slices sl ON sl.id = u.slice_id WHERE u.t >= $1 AND u.t < $2 \
             GROUP BY sl.name ORDER BY {order} DESC, 1 LIMIT {}",
            limit.clamp(1, 1000)
        ))
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(slice, cpu_s, tx, rx)| UsageTotal {
                slice,
                cpu_s,
                tx_bytes: u64::try_from(tx).unwrap_or(0),
                rx_bytes: u64::try_from(rx).unwrap_or(0),
            })
            .collect())
    }

    /// Rolls raw samples older than a day into hourly rows; returns how many raw rows it folded.
    /// Runs serialised across replicas (`JobLock`), so two runs at once cannot fold a sample twice.
    pub async fn rollup_usage(&self, now: i64) -> Result<u64> {
        let cutoff = ((now - DAY) / HOUR) * HOUR;
        let mut w = self
            .write_job(crate::replicas::JobLock::UsageRollup)
            .await?;
        sqlx::query(
            "INSERT INTO usage (node_id, slice_id, is_node, t, resolution, cpu_s, mem_bytes, disk_bytes, \
             tx_bytes, rx_bytes, tx_pkts, rx_pkts, spoofed_pkts) \
             SELECT node_id, slice_id, is_node, (t / 3600) * 3600, 3600, SUM(cpu_s), MAX(mem_bytes), \
             MAX(disk_bytes), SUM(tx_bytes), SUM(rx_bytes), SUM(tx_pkts), SUM(rx_pkts), \
             SUM(spoofed_pkts) FROM usage \
             WHERE resolution < 3600 AND t < $1 GROUP BY node_id, slice_id, is_node, (t / 3600) * 3600",
        )
        .bind(cutoff)
        .execute(&mut *w.tx)
        .await?;
        let r = sqlx::query("DELETE FROM usage WHERE resolution < 3600 AND t < $1")
            .bind(cutoff)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(r.rows_affected())
    }
}

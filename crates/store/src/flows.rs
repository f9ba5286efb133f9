//! Flow records: idempotent batched ingest (one row per flow, updated while it lives), queries by
//! slice/node/time, the public lookup by remote address, and expiry into daily totals.

use std::collections::HashMap;
use std::net::IpAddr;

use slicelab_model::time::DAY;
use slicelab_model::{Flow, FlowBatch, FlowRecord, FlowTotal, Node};

use crate::{Arg, Filter, Result, Store, WriteTx};

mod pg;

/// Rows per INSERT statement (17 parameters each; under both backends' parameter limits).
const CHUNK: usize = 500;

const COLS: &str =
    "node_id, slice_name, proto, src, sport, dst, dport, nat_src, nat_sport, ct_id, \
     t_start, t_end, done, tx_bytes, tx_pkts, rx_bytes, rx_pkts";

/// A flow seen again (a long flow's periodic update, or its end) updates its one row.
const UPSERT: &str =
    " ON CONFLICT (node_id, dst, t_start, ct_id) DO UPDATE SET t_end = excluded.t_end, \
     done = excluded.done, tx_bytes = excluded.tx_bytes, tx_pkts = excluded.tx_pkts, \
     rx_bytes = excluded.rx_bytes, rx_pkts = excluded.rx_pkts, nat_src = excluded.nat_src, \
     nat_sport = excluded.nat_sport";

/// How a batch's rows reach the database.
#[derive(Debug, Clone, Copy)]
enum Ingest {
    /// Multi-row `VALUES`, 17 parameters a row: both backends.
    Rows,
    /// One array a column, unnested by PostgreSQL (typed pool; `Rows` without one).
    Unnest,
    /// Binary `COPY` (typed pool; `Rows` without one).
    Copy,
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What the lookup found for one slice.
#[derive(Debug, Clone)]
pub struct LookupRow {
    pub slice: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub flows: i64,
    pub tx_bytes: i64,
    pub rx_bytes: i64,
}

/// Filters for listing flows.
#[derive(Debug, Clone, Default)]
pub struct FlowFilter {
    pub slice: Option<String>,
    pub node_id: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// A stored flow as queries select it (`hostname`, `slice_name`, then the `flows` columns).
#[derive(sqlx::FromRow)]
pub(crate) struct FlowRow {
    hostname: String,
    slice_name: String,
    proto: i64,
    src: String,
    sport: i64,
    dst: String,
    dport: i64,
    nat_src: Option<String>,
    nat_sport: Option<i64>,
    ct_id: i64,
    t_start: i64,
    t_end: i64,
    done: i64,
    tx_bytes: i64,
    tx_pkts: i64,
    rx_bytes: i64,
    rx_pkts: i64,
}

impl From<FlowRow> for Flow {
    fn from(r: FlowRow) -> Flow {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        Flow {
            node: r.hostname,
            flow: FlowRecord {
                slice: r.slice_name,
                proto: u8::try_from(r.proto).unwrap_or(0),
                src: ip(&r.src),
                sport: u16::try_from(r.sport).unwrap_or(0),
                dst: ip(&r.dst),
                dport: u16::try_from(r.dport).unwrap_or(0),
                nat_src: r.nat_src.as_deref().map(ip),
                nat_sport: r.nat_sport.and_then(|p| u16::try_from(p).ok()),
                ct_id: u32::try_from(r.ct_id).unwrap_or(0),
                start: r.t_start,
                end: r.t_end,
                done: r.done != 0,
                tx_bytes: u(r.tx_bytes),
                tx_pkts: u(r.tx_pkts),
                rx_bytes: u(r.rx_bytes),
                rx_pkts: u(r.rx_pkts),
            },
        }
    }
}

/// `{insert} flows (COLS) VALUES (…), …{tail}` for `rows` rows of 17 parameters.
fn values_sql(backend: crate::Backend, insert: &str, rows: usize, tail: &str) -> String {
    let mut sql = format!("{insert} flows ({COLS}) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..17 {
            if c > 0 {
                sql.push(',');
            }
            // SQLite resolves each named `$N` by a linear search over the statement's names
            // (quadratic in a 8,500-parameter insert); anonymous `?` costs nothing.
            match backend {
                crate::Backend::Sqlite => sql.push('?'),
                crate::Backend::Postgres => sql.push_str(&format!("${}", r * 17 + c + 1)),
            }
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// `sql` (from [`values_sql`]) with `chunk`'s rows bound; `addrs[at[3 * r..3 * r + 3]]` are row
/// `r`'s source, destination and NAT source addresses as text.
fn bind_rows<'q>(
    sql: &'q str,
    node: i64,
    chunk: &[&'q FlowRecord],
    addrs: &'q str,
    at: &[(usize, usize)],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let text = |k: usize| addrs.get(at[k].0..at[k].1).unwrap_or_default();
    let mut q = sqlx::query(sql);
    for (r, f) in chunk.iter().enumerate() {
        q = q
            .bind(node)
            .bind(f.slice.as_str())
            .bind(i64::from(f.proto))
            .bind(text(r * 3))
            .bind(i64::from(f.sport))
            .bind(text(r * 3 + 1))
            .bind(i64::from(f.dport))
            .bind(f.nat_src.map(|_| text(r * 3 + 2)))
            .bind(f.nat_sport.map(i64::from))
            .bind(i64::from(f.ct_id))
            .bind(f.start)
            .bind(f.end)
            .bind(i64::from(f.done))
            .bind(i(f.tx_bytes))
            .bind(i(f.tx_pkts))
            .bind(i(f.rx_bytes))
            .bind(i(f.rx_pkts));
    }
    q
}

/// Writes `a` as `Display` does, IPv4 without the formatting machinery (a flow has two or three
/// addresses, formatted for every stored row).
pub(crate) fn write_addr(w: &mut impl std::fmt::Write, a: &IpAddr) {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 15];
            let mut n = 0;
            for (k, o) in v4.octets().into_iter().enumerate() {
                if k > 0 {
                    b[n] = b'.';
                    n += 1;
                }
                if o >= 100 {
                    b[n] = b'0' + o / 100;
                    n += 1;
                }
                if o >= 10 {
                    b[n] = b'0' + o / 10 % 10;
                    n += 1;
                }
                b[n] = b'0' + o % 10;
                n += 1;
            }
            // Digits and dots only: ASCII.
            let _ = w.write_str(std::str::from_utf8(&b[..n]).unwrap_or_default());
        }
        IpAddr::V6(_) => {
            // Writing into a buffer cannot fail.
            let _ = write!(w, "{a}");
        }
    }
}

impl Store {
    /// Stores a flow batch unless already stored; returns the highest stored `seq`. A flow seen
    /// again (a long flow's periodic update, or its end) updates its one row.
    ///
    /// On PostgreSQL the batch goes in as one binary `COPY` (`pg::ingest_copy`); on SQLite as
    /// multi-row `VALUES` (`INSERT OR IGNORE`, then an upsert only where that skipped stored
    /// flows: `insert_rows`), SQLite's fastest path.
    pub async fn store_flows(&self, node: &Node, b: &FlowBatch) -> Result<i64> {
        match self.backend() {
            crate::Backend::Sqlite => self.ingest(node, b, Ingest::Rows).await,
            crate::Backend::Postgres => self.ingest(node, b, Ingest::Copy).await,
        }
    }

    /// [`Store::store_flows`] on PostgreSQL through `INSERT … SELECT … FROM UNNEST`, the path
    /// binary `COPY` replaced: public so the flow benchmark measures it in the same run.
    #[doc(hidden)]
    pub async fn store_flows_unnest(&self, node: &Node, b: &FlowBatch) -> Result<i64> {
        self.ingest(node, b, Ingest::Unnest).await
    }

    /// [`Store::store_flows`] through multi-row `VALUES` on either backend: the portable path,
    /// public so the flow benchmark measures it next to PostgreSQL's `UNNEST` in the same run.
    #[doc(hidden)]
    pub async fn store_flows_rows(&self, node: &Node, b: &FlowBatch) -> Result<i64> {
        self.ingest(node, b, Ingest::Rows).await
    }

    async fn ingest(&self, node: &Node, b: &FlowBatch, how: Ingest) -> Result<i64> {
        // Keep one record per flow within the batch: the latest (PostgreSQL refuses to upsert
        // the same row twice in one statement).
        let mut latest: HashMap<(u32, i64), &FlowRecord> = HashMap::new();
        for f in &b.flows {
            let e = latest.entry((f.ct_id, f.start)).or_insert(f);
            if (f.done, f.end, f.tx_bytes + f.rx_bytes) > (e.done, e.end, e.tx_bytes + e.rx_bytes) {
                *e = f;
            }
        }
        let mut flows: Vec<&FlowRecord> = latest.into_values().collect();
        // Oldest start first: a flow seen again started before the node's earlier batch, so
        // stored flows meet the first statements (see `ingest_copy` and `insert_rows`).
        flows.sort_unstable_by_key(|f| (f.start, f.ct_id));
        match (how, &self.pg) {
            (Ingest::Unnest, Some(pg)) => return pg::ingest_pg(pg, node, b.seq, &flows).await,
            (Ingest::Copy, Some(pg)) => return pg::ingest_copy(pg, node, b.seq, &flows).await,
            _ => {}
        }
        let mut w = self.write().await?;
        // On PostgreSQL the node's row is locked until commit, as in `ingest_pg`. SQLite's one
        // writer needs no lock: the node cannot be deleted (taking its flows, migration 0014)
        // before this transaction commits.
        let read = match self.backend() {
            crate::Backend::Sqlite => "SELECT flow_seq FROM nodes WHERE id = $1",
            crate::Backend::Postgres => "SELECT flow_seq FROM nodes WHERE id = $1 FOR UPDATE",
        };
        let last: i64 = sqlx::query_scalar(read)
            .bind(node.id)
            .fetch_one(&mut *w.tx)
            .await?;
        if b.seq <= last {
            w.commit().await?;
            return Ok(last);
        }
        self.insert_rows(&mut w, node, &flows).await?;
        sqlx::query("UPDATE nodes SET flow_seq = $1 WHERE id = $2")
            .bind(b.seq)
            .bind(node.id)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(b.seq)
    }

    /// Inserts (or updates) `flows` with multi-row `VALUES` statements of [`CHUNK`] rows.
    ///
    /// On SQLite a chunk goes in first as `INSERT OR IGNORE`: an upsert (like any statement that
    /// may abort half-way) makes SQLite copy every page it touches into a statement journal,
    /// a tenth of the insert. If that skipped flows already stored, the chunk is then upserted
    /// as a whole (the rows it just inserted are rewritten with the same values). `flows` come
    /// oldest start first, so flows seen again (which started before the node's earlier
    /// batches) gather in the first chunks. On PostgreSQL (the benchmark's portable peer) each
    /// chunk is one upsert.
    async fn insert_rows(
        &self,
        w: &mut WriteTx<'_>,
        node: &Node,
        flows: &[&FlowRecord],
    ) -> Result<()> {
        let backend = self.backend();
        let mut addrs = String::new();
        for chunk in flows.chunks(CHUNK) {
            // The chunk's addresses as text, written once into one buffer the binds borrow.
            addrs.clear();
            let mut at = Vec::with_capacity(chunk.len() * 3);
            for f in chunk {
                for a in [Some(&f.src), Some(&f.dst), f.nat_src.as_ref()] {
                    let from = addrs.len();
                    if let Some(a) = a {
                        write_addr(&mut addrs, a);
                    }
                    at.push((from, addrs.len()));
                }
            }
            match backend {
                crate::Backend::Sqlite => {
                    let sql = values_sql(backend, "INSERT OR IGNORE INTO", chunk.len(), "");
                    let stored = bind_rows(&sql, node.id, chunk, &addrs, &at)
                        .execute(&mut *w.tx)
                        .await?
                        .rows_affected();
                    if usize::try_from(stored).ok() != Some(chunk.len()) {
                        let sql = values_sql(backend, "INSERT INTO", chunk.len(), UPSERT);
                        bind_rows(&sql, node.id, chunk, &addrs, &at)
                            .execute(&mut *w.tx)
                            .await?;
                    }
                }
                crate::Backend::Postgres => {
                    let sql = values_sql(backend, "INSERT INTO", chunk.len(), UPSERT);
                    bind_rows(&sql, node.id, chunk, &addrs, &at)
                        .execute(&mut *w.tx)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Flows overlapping `[from, to]`, newest first.
    pub async fn list_flows(&self, f: &FlowFilter, limit: i64) -> Result<Vec<Flow>> {
        let mut w = Filter::default();
        if let Some(s) = &f.slice {
            w.add("f.slice_name = {}", Arg::S(s.clone()));
        }
        if let Some(n) = f.node_id {
            w.add("f.node_id = {}", Arg::I(n));
        }
        if let Some(t) = f.from {
            w.add("f.t_end >= {}", Arg::I(t));
        }
        if let Some(t) = f.to {
            w.add("f.t_start <= {}", Arg::I(t));
        }
        let sql = format!(
            "SELECT n.hostname AS hostname, f.slice_name, f.proto, f.src, f.sport, f.dst, f.dport, f.nat_src, f.nat_sport, \
             f.ct_id, f.t_start, f.t_end, f.done, f.tx_bytes, f.tx_pkts, f.rx_bytes, f.rx_pkts \
             FROM flows f JOIN nodes n ON n.id = f.node_id {} ORDER BY f.t_start DESC LIMIT {}",
            w.where_sql(),
            limit.clamp(1, 100_000)
        );
        let rows: Vec<FlowRow> = w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(Flow::from).collect())
    }

    /// The public lookup: which slices on `node_id` exchanged traffic with `remote` (and `port`)
    /// in `[from, to]`. Only aggregates for that remote address leave this function.
    pub async fn lookup_flows(
        &self,
        node_id: i64,
        remote: IpAddr,
        port: Option<u16>,
        from: i64,
        to: i64,
    ) -> Result<Vec<LookupRow>> {
        let mut w = Filter::default();
        w.add("node_id = {}", Arg::I(node_id));
        w.add("dst = {}", Arg::S(remote.to_string()));
        w.add("t_start <= {}", Arg::I(to));
        w.add("t_end >= {}", Arg::I(from));
        if let Some(p) = port {
            w.add("dport = {}", Arg::I(i64::from(p)));
        }
        let sql = format!(
            "SELECT slice_name, MIN(t_start), MAX(t_end), COUNT(*), CAST(SUM(tx_bytes) AS BIGINT), \
             CAST(SUM(rx_bytes) AS BIGINT) FROM flows {} GROUP BY slice_name ORDER BY MIN(t_start)",
            w.where_sql()
        );
        let rows: Vec<(String, i64, i64, i64, i64, i64)> =
            w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(
                |(slice, first_seen, last_seen, flows, tx_bytes, rx_bytes)| LookupRow {
                    slice,
                    first_seen,
                    last_seen,
                    flows,
                    tx_bytes,
                    rx_bytes,
                },
            )
            .collect())
    }

    /// Folds flows that ended before `now - retention` into per-slice daily totals and deletes
    /// them; returns how many were folded. Runs serialised across replicas (`JobLock`), so two
    /// runs at once cannot count a flow twice.
    pub async fn expire_flows(&self, now: i64, retention: i64) -> Result<u64> {
        let cutoff = now - retention;
        let mut w = self.write_job(crate::replicas::JobLock::FlowExpiry).await?;
        sqlx::query(
            "INSERT INTO flow_totals (slice_name, day, node_id, flows, tx_bytes, rx_bytes) \
             SELECT slice_name, (t_start / 86400) * 86400, node_id, COUNT(*), CAST(SUM(tx_bytes) AS BIGINT), \
             CAST(SUM(rx_bytes) AS BIGINT) FROM flows WHERE t_end < $1 \
             GROUP BY slice_name, (t_start / 86400) * 86400, node_id \
             ON CONFLICT (slice_name, day, node_id) DO UPDATE SET flows = flow_totals.flows + excluded.flows, \
             tx_bytes = flow_totals.tx_bytes + excluded.tx_bytes, rx_bytes = flow_totals.rx_bytes + excluded.rx_bytes",
        )
        .bind(cutoff)
        .execute(&mut *w.tx)
        .await?;
        let r = sqlx::query("DELETE FROM flows WHERE t_end < $1")
            .bind(cutoff)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(r.rows_affected())
    }

    /// Daily traffic totals of a slice (or all slices) from expired flows, oldest first.
    pub async fn flow_totals(
        &self,
        slice: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<FlowTotal>> {
        let mut w = Filter::default();
        if let Some(s) = slice {
            w.add("slice_name = {}", Arg::S(s.to_string()));
        }
        w.add("day >= {}", Arg::I((from / DAY) * DAY));
        w.add("day <= {}", Arg::I(to));
        let sql = format!(
            "SELECT slice_name, day, CAST(SUM(flows) AS BIGINT), CAST(SUM(tx_bytes) AS BIGINT), \
             CAST(SUM(rx_bytes) AS BIGINT) FROM flow_totals {} GROUP BY slice_name, day ORDER BY day, slice_name",
            w.where_sql()
        );
        let rows: Vec<(String, i64, i64, i64, i64)> =
            w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(slice, day, flows, tx, rx)| FlowTotal {
                slice,
                day,
                flows,
                tx_bytes: u64::try_from(tx).unwrap_or(0),
                rx_bytes: u64::try_from(rx).unwrap_or(0),
            })
            .collect())
    }

    /// Contacts of a slice's site (its PIs), by the slice's name: works for deleted slices too.
    pub async fn slice_contacts(
        &self,
        slice_name: &str,
    ) -> Result<Vec<slicelab_model::flows::Contact>> {
        let Some(base) = slicelab_model::names::slice_login_base(slice_name) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT p.first_name, p.last_name, p.email FROM persons p \
             JOIN person_sites ps ON ps.person_id = p.id JOIN sites s ON s.id = ps.site_id \
             WHERE s.login_base = $1 AND p.enabled = 1 AND (',' || p.roles || ',') LIKE '%,pi,%' ORDER BY p.email",
        )
        .bind(base)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(first, last, email)| slicelab_model::flows::Contact {
                name: format!("{first} {last}"),
                email,
                role: "pi".into(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// central's handlers and jobs spawn the ingest: its future must be `Send` (a closure or
    /// `sqlx::raw_sql` held across an `.await` makes it not).
    #[allow(dead_code)]
    fn ingest_is_send(s: &Store, n: &Node, b: &FlowBatch) {
        fn is_send<T: Send>(_: T) {}
        is_send(s.store_flows(n, b));
        is_send(s.store_flows_unnest(n, b));
        is_send(s.store_flows_rows(n, b));
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut addrs: Vec<IpAddr> = ["0.0.0.0", "255.255.255.255", "10.0.9.100", "1.20.199.9"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        addrs
            .extend(["2001:db8::1", "::ffff:10.0.0.1", "::"].map(|a| a.parse::<IpAddr>().unwrap()));
        for o in 0..=255u8 {
            addrs.push(IpAddr::from([o, 255 - o, o / 3, o / 17]));
        }
        for a in addrs {
            let mut s = String::new();
            write_addr(&mut s, &a);
            assert_eq!(s, a.to_string());
        }
    }
}

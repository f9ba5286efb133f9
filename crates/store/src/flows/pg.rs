//! PostgreSQL's flow ingest: binary `COPY` in a transaction begun and ended by hand
//! ([`ingest_copy`], what `store_flows` does), its fallback for batches meeting stored flows
//! ([`ingest_split`]), and the `UNNEST` path it replaced ([`ingest_pg`], the bench's peer). All
//! run on the store's typed `PgPool` and lock the node's row for the batch.

use slicelab_model::{FlowRecord, Node};

use super::{i, write_addr, COLS, UPSERT};
use crate::pgcopy::CopyBinary;
use crate::Result;

/// Rows per `UNNEST` statement on PostgreSQL (one array a column: no parameter limit).
const UNNEST_CHUNK: usize = 10_000;

/// Locks the node's row until commit and reads its `flow_seq`. Flows have no per-row foreign key
/// on PostgreSQL (migration 0012_flows_ingest): the lock makes a node deleted meanwhile wait for
/// this batch and then delete its flows with it, and keeps the node's other batches (which only
/// ever insert its flows) out until commit.
async fn lock_node(tx: &mut sqlx::PgConnection, node: &Node) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT flow_seq FROM nodes WHERE id = $1 FOR UPDATE")
            .bind(node.id)
            .fetch_one(tx)
            .await?,
    )
}

/// Records `seq` as the node's last stored batch.
async fn set_flow_seq(tx: &mut sqlx::PgConnection, node: &Node, seq: i64) -> Result<()> {
    sqlx::query("UPDATE nodes SET flow_seq = $1 WHERE id = $2")
        .bind(seq)
        .bind(node.id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Which of `flows` of `node` are stored already (exact while the node's row is locked): the
/// `(ct_id, start)` of those whose `flows_key` (node, remote, start, conntrack id) is taken.
async fn stored_keys(
    tx: &mut sqlx::PgConnection,
    node: &Node,
    flows: &[&FlowRecord],
) -> Result<std::collections::HashSet<(u32, i64)>> {
    let mut dst = String::new();
    let dsts: Vec<String> = flows
        .iter()
        .map(|r| {
            dst.clear();
            write_addr(&mut dst, &r.dst);
            dst.clone()
        })
        .collect();
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT f.ct_id, f.t_start FROM UNNEST($2::text[], $3::bigint[], $4::bigint[]) \
         AS k(dst, t_start, ct_id) JOIN flows f ON f.node_id = $1 AND f.dst = k.dst \
         AND f.t_start = k.t_start AND f.ct_id = k.ct_id",
    )
    .bind(node.id)
    .bind(dsts)
    .bind(flows.iter().map(|r| r.start).collect::<Vec<i64>>())
    .bind(
        flows
            .iter()
            .map(|r| i64::from(r.ct_id))
            .collect::<Vec<i64>>(),
    )
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(ct, start)| Some((u32::try_from(ct).ok()?, start)))
        .collect())
}

/// One `INSERT … SELECT … FROM UNNEST` of `flows` (each column bound as one array: 17
/// parameters), an upsert if `upsert`.
async fn insert_unnest(
    tx: &mut sqlx::PgConnection,
    node: &Node,
    flows: &[&FlowRecord],
    upsert: bool,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO flows ({COLS}) SELECT $1, * FROM UNNEST($2::text[], $3::bigint[], \
         $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::text[], $9::bigint[], \
         $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], \
         $15::bigint[], $16::bigint[], $17::bigint[]){}",
        if upsert { UPSERT } else { "" }
    );
    let ints = |f: &dyn Fn(&FlowRecord) -> i64| flows.iter().map(|r| f(r)).collect::<Vec<i64>>();
    let texts =
        |f: &dyn Fn(&FlowRecord) -> String| flows.iter().map(|r| f(r)).collect::<Vec<String>>();
    sqlx::query(&sql)
        .bind(node.id)
        .bind(texts(&|r| r.slice.clone()))
        .bind(ints(&|r| i64::from(r.proto)))
        .bind(texts(&|r| r.src.to_string()))
        .bind(ints(&|r| i64::from(r.sport)))
        .bind(texts(&|r| r.dst.to_string()))
        .bind(ints(&|r| i64::from(r.dport)))
        .bind(
            flows
                .iter()
                .map(|r| r.nat_src.map(|a| a.to_string()))
                .collect::<Vec<Option<String>>>(),
        )
        .bind(
            flows
                .iter()
                .map(|r| r.nat_sport.map(i64::from))
                .collect::<Vec<Option<i64>>>(),
        )
        .bind(ints(&|r| i64::from(r.ct_id)))
        .bind(ints(&|r| r.start))
        .bind(ints(&|r| r.end))
        .bind(ints(&|r| i64::from(r.done)))
        .bind(ints(&|r| i(r.tx_bytes)))
        .bind(ints(&|r| i(r.tx_pkts)))
        .bind(ints(&|r| i(r.rx_bytes)))
        .bind(ints(&|r| i(r.rx_pkts)))
        .execute(tx)
        .await?;
    Ok(())
}

/// Stores a deduplicated batch on PostgreSQL in one transaction of the typed pool: the node's
/// row locked, then per [`UNNEST_CHUNK`] rows a probe for flows already stored and one
/// `INSERT … SELECT … FROM UNNEST` (a plain insert when none is, else an upsert), then the
/// node's `flow_seq`. The path binary `COPY` ([`ingest_copy`]) replaced; the bench's peer.
pub(super) async fn ingest_pg(
    pg: &sqlx::PgPool,
    node: &Node,
    seq: i64,
    flows: &[&FlowRecord],
) -> Result<i64> {
    let mut tx = pg.begin().await?;
    let last = lock_node(&mut tx, node).await?;
    if seq <= last {
        tx.commit().await?;
        return Ok(last);
    }
    for chunk in flows.chunks(UNNEST_CHUNK) {
        // Most batches bring only new flows: a plain insert of those skips the upsert's
        // speculative insertion (a fifth of the statement).
        let seen = !stored_keys(&mut tx, node, chunk).await?.is_empty();
        insert_unnest(&mut tx, node, chunk, seen).await?;
    }
    set_flow_seq(&mut tx, node, seq).await?;
    tx.commit().await?;
    Ok(seq)
}

/// Rows encoded per `CopyData` message: the server stores one piece while the next is encoded.
const COPY_PIECE: usize = 2_000;

/// Encodes `flows` of `node` as binary `COPY` rows of [`COLS`] into `c`.
fn copy_rows(c: &mut CopyBinary, node: i64, flows: &[&FlowRecord]) {
    for f in flows {
        c.row()
            .int8(node)
            .text(&f.slice)
            .int8(i64::from(f.proto))
            .text_addr(&f.src)
            .int8(i64::from(f.sport))
            .text_addr(&f.dst)
            .int8(i64::from(f.dport))
            .opt_text_addr(f.nat_src.as_ref())
            .opt_int8(f.nat_sport.map(i64::from))
            .int8(i64::from(f.ct_id))
            .int8(f.start)
            .int8(f.end)
            .int8(i64::from(f.done))
            .int8(i(f.tx_bytes))
            .int8(i(f.tx_pkts))
            .int8(i(f.rx_bytes))
            .int8(i(f.rx_pkts));
    }
}

/// Streams `flows` of `node` into `flows` with one binary `COPY`, sent in pieces of
/// [`COPY_PIECE`] rows as they are encoded.
async fn copy_in(tx: &mut sqlx::PgConnection, node: &Node, flows: &[&FlowRecord]) -> Result<u64> {
    let mut copy = tx
        .copy_in_raw(&format!("COPY flows ({COLS}) FROM STDIN (FORMAT BINARY)"))
        .await?;
    // About 150 bytes a row: 17 fields' 4-byte lengths, 13 `bigint`s, 4 short texts.
    let mut c = CopyBinary::new(17, COPY_PIECE * 180);
    let mut pieces = flows.chunks(COPY_PIECE).peekable();
    let sent: std::result::Result<(), sqlx::Error> = async {
        while let Some(piece) = pieces.next() {
            copy_rows(&mut c, node.id, piece);
            if pieces.peek().is_some() {
                copy.send(c.take()?).await?;
            }
        }
        copy.send(c.finish()?).await?;
        Ok(())
    }
    .await;
    if let Err(e) = sent {
        // Tell the server, so the connection stays usable.
        let _ = copy.abort("send failed").await;
        return Err(e.into());
    }
    Ok(copy.finish().await?)
}

fn is_unique_violation(e: &crate::StoreError) -> bool {
    matches!(e, crate::StoreError::Db(sqlx::Error::Database(d))
        if d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// A pooled connection in a transaction begun by hand (so that statements can share round
/// trips): if dropped while the transaction is open (an error, or the future dropped
/// half-way), the connection is closed rather than reused, which rolls the transaction back.
struct HandTx {
    conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    open: bool,
}

impl HandTx {
    /// Runs `sql` (statements built from integers only) in one round trip.
    async fn run(&mut self, sql: &str) -> Result<Vec<sqlx::postgres::PgRow>> {
        // A `&str` without arguments goes as one simple query: several statements, one round
        // trip. (`sqlx::raw_sql` would too, but its future is not `Send`.)
        Ok(sqlx::Executor::fetch_all(&mut *self.conn, sql).await?)
    }

    /// Ends the transaction with `end` (`COMMIT`, or `ROLLBACK`) after `before` (statements
    /// ending in `;`, or nothing), in one round trip.
    async fn end(mut self, before: &str, end: &str) -> Result<()> {
        self.run(&format!("{before} {end}")).await?;
        self.open = false;
        Ok(())
    }
}

impl Drop for HandTx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

/// Stores a deduplicated batch on PostgreSQL in one transaction: the node's row locked (with
/// `BEGIN`, one round trip), the batch sent as one binary `COPY` straight into `flows`, then
/// the node's `flow_seq` (with `COMMIT`, one round trip).
///
/// `COPY` cannot upsert. Most batches bring only new flows, so the `COPY` is tried first: if
/// it meets a flow already stored (a unique violation) the transaction is rolled back and the
/// batch stored by [`ingest_split`]. Rows go in oldest start first, so a flow seen again
/// (which started before the node's earlier batch) stops the `COPY` early.
pub(super) async fn ingest_copy(
    pg: &sqlx::PgPool,
    node: &Node,
    seq: i64,
    flows: &[&FlowRecord],
) -> Result<i64> {
    let id = node.id;
    let mut tx = HandTx {
        conn: pg.acquire().await?,
        open: true,
    };
    let rows = tx
        .run(&format!(
            "BEGIN; SELECT flow_seq FROM nodes WHERE id = {id} FOR UPDATE"
        ))
        .await?;
    let last: i64 = match rows.first() {
        Some(r) => sqlx::Row::try_get(r, 0)?,
        None => {
            tx.end("", "ROLLBACK").await?;
            return Err(sqlx::Error::RowNotFound.into());
        }
    };
    if seq <= last {
        tx.end("", "COMMIT").await?;
        return Ok(last);
    }
    if !flows.is_empty() {
        match copy_in(&mut tx.conn, node, flows).await {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                tx.end("", "ROLLBACK").await?;
                return ingest_split(pg, node, seq, flows).await;
            }
            Err(e) => return Err(e),
        }
    }
    tx.end(
        &format!("UPDATE nodes SET flow_seq = {seq} WHERE id = {id};"),
        "COMMIT",
    )
    .await?;
    Ok(seq)
}

/// [`ingest_copy`] for a batch that meets stored flows, in a transaction of its own: the node's
/// row locked, the batch split by a probe into the new flows (`COPY`ed) and the stored ones
/// (upserted with [`insert_unnest`]), then the node's `flow_seq`. The probe and the split are
/// exact: the node's row lock keeps every other writer of its flows out until commit (expiry
/// only deletes, and the upsert re-inserts a flow it deleted meanwhile).
async fn ingest_split(
    pg: &sqlx::PgPool,
    node: &Node,
    seq: i64,
    flows: &[&FlowRecord],
) -> Result<i64> {
    let mut tx = pg.begin().await?;
    let last = lock_node(&mut tx, node).await?;
    if seq <= last {
        tx.commit().await?;
        return Ok(last);
    }
    let stored = stored_keys(&mut tx, node, flows).await?;
    let (known, new): (Vec<&FlowRecord>, Vec<&FlowRecord>) = flows
        .iter()
        .partition(|f| stored.contains(&(f.ct_id, f.start)));
    if !new.is_empty() {
        copy_in(&mut tx, node, &new).await?;
    }
    for chunk in known.chunks(UNNEST_CHUNK) {
        insert_unnest(&mut tx, node, chunk, true).await?;
    }
    set_flow_seq(&mut tx, node, seq).await?;
    tx.commit().await?;
    Ok(seq)
}

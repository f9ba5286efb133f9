//! `cargo bench -p slicelab-store --bench flows`: ingest of 1,000,000 synthetic flow records
//! into the central store, then the public lookup over them (goals: >= 190,000 records/s on
//! SQLite, >= 150,000 on PostgreSQL; lookup under 50 ms). SQLite by default (multi-row
//! `INSERT OR IGNORE`, what `store_flows` does there);
//! `SLICELAB_BENCH_PG=postgres://...` (a server admin URL) measures PostgreSQL as well, each
//! path in a database of its own: binary `COPY` (what `store_flows` does there) and, in the same
//! run, the `INSERT … FROM UNNEST` it replaced and the portable multi-row `VALUES` before that.
//! `SLICELAB_BENCH_RECORDS` and `SLICELAB_BENCH_BATCH` (records a batch, default 10,000) change
//! the size; `SLICELAB_BENCH_UPDATES=P` makes P% of each batch updates of flows the node's
//! previous batch sent (default 0: only new flows). Under `cargo test` it runs a 20,000-record smoke version.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use slicelab_model::{FlowBatch, FlowRecord, NodeCreate, SiteCreate, SliceCreate};
use slicelab_store::Store;

const SLICES: usize = 20;
const NODES: usize = 50;
const REMOTES: u32 = 100_000;
/// Records a node's batch, unless `SLICELAB_BENCH_BATCH` says otherwise.
const BATCH: usize = 10_000;

/// A small deterministic generator, so runs are comparable.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn remote(i: u32) -> IpAddr {
    IpAddr::from([100, 64 + (i >> 16) as u8, (i >> 8) as u8, i as u8])
}

/// Which ingest path a run measures.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    /// `Store::store_flows`: the backend's fastest path (binary `COPY` on PostgreSQL).
    Best,
    /// `Store::store_flows_unnest`: PostgreSQL's path before `COPY`.
    Unnest,
    /// `Store::store_flows_rows`: multi-row `VALUES` (PostgreSQL's path before `UNNEST`).
    Rows,
}

/// What a run measured.
struct Figures {
    rate: f64,
    median: Duration,
    worst: Duration,
}

async fn run(
    url: &str,
    records: usize,
    batch: usize,
    path: Path,
) -> Result<Figures, Box<dyn std::error::Error>> {
    let store = Store::open(url).await?;
    let now = 1_800_000_000;
    let site = store
        .create_site(
            "bench",
            now,
            &SiteCreate {
                login_base: "bench".into(),
                name: "Bench".into(),
                url: String::new(),
                max_slices: 100,
                latitude: None,
                longitude: None,
            },
        )
        .await?;
    let mut nodes = Vec::new();
    for n in 0..NODES {
        let c = NodeCreate {
            hostname: format!("n{n}.bench.test"),
            site: "bench".into(),
            boot_state: slicelab_model::BootState::Boot,
            cpu_cores: 4,
            mem_mb: 8192,
            disk_gb: 100,
            region: String::new(),
            reservable: false,
        };
        nodes.push(
            store
                .create_node("bench", now, &c, site.id, &format!("hash{n}"))
                .await?,
        );
    }
    for s in 0..SLICES {
        let c = SliceCreate {
            name: format!("bench_s{s}"),
            description: String::new(),
            url: String::new(),
        };
        store
            .create_slice("bench", now, &c, site.id, 100, now + 86_400)
            .await?;
    }
    let mut rng = Lcg(42);
    let mut seqs = [0i64; NODES];
    let mut ct = [0u32; NODES];
    let mut made = 0;
    // Each node's previous batch, whose first flows a batch re-sends as updates (long flows seen
    // again) when `SLICELAB_BENCH_UPDATES` gives a percentage.
    let updates = std::env::var("SLICELAB_BENCH_UPDATES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(100);
    let mut previous: Vec<Vec<FlowRecord>> = vec![Vec::new(); NODES];
    // Only the time inside the store counts: making the records up is not ingest.
    let mut ingest = Duration::ZERO;
    while made < records {
        let n = (rng.next() as usize) % NODES;
        let count = batch.min(records - made);
        let again = (count * updates / 100).min(previous[n].len());
        let mut flows: Vec<FlowRecord> = previous[n][..again]
            .iter()
            .map(|f| FlowRecord {
                end: f.end + 60,
                tx_bytes: f.tx_bytes + 1000,
                ..f.clone()
            })
            .collect();
        flows.extend((again..count).map(|_| {
            ct[n] += 1;
            // Records arrive roughly in time order, as nodes ship their recent flows:
            // a day's worth spread over the run, jittered by up to a minute.
            let t =
                now - 86_400 + (made as i64 * 86_400) / records as i64 + (rng.next() % 60) as i64;
            let tx = rng.next() % 100_000;
            FlowRecord {
                slice: format!("bench_s{}", rng.next() as usize % SLICES),
                proto: if rng.next().is_multiple_of(4) { 17 } else { 6 },
                src: IpAddr::from([10, 77, 0, 2 + (rng.next() % 200) as u8]),
                sport: (rng.next() % 60_000) as u16 + 1024,
                dst: remote(rng.next() as u32 % REMOTES),
                dport: [80, 443, 53, 8080][rng.next() as usize % 4],
                nat_src: Some(IpAddr::from([198, 51, 100, n as u8])),
                nat_sport: Some((rng.next() % 60_000) as u16 + 1024),
                ct_id: ct[n],
                start: t,
                end: t + (rng.next() % 600) as i64,
                done: true,
                tx_bytes: tx,
                tx_pkts: tx / 1400 + 1,
                rx_bytes: tx * 3,
                rx_pkts: tx / 500 + 1,
            }
        }));
        previous[n].clone_from(&flows);
        seqs[n] += 1;
        let batch = FlowBatch {
            seq: seqs[n],
            flows,
        };
        let start = Instant::now();
        match path {
            Path::Best => store.store_flows(&nodes[n], &batch).await?,
            Path::Unnest => store.store_flows_unnest(&nodes[n], &batch).await?,
            Path::Rows => store.store_flows_rows(&nodes[n], &batch).await?,
        };
        ingest += start.elapsed();
        made += count;
    }
    let rate = records as f64 / ingest.as_secs_f64();
    // Lookups of random remotes on random nodes over the whole day, as a complainant would ask.
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..50 {
        let n = (rng.next() as usize) % NODES;
        let r = remote(rng.next() as u32 % REMOTES);
        let t = Instant::now();
        let rows = store
            .lookup_flows(nodes[n].id, r, None, now - 86_400, now + 600)
            .await?;
        times.push(t.elapsed());
        found += rows.len();
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    if records >= 100_000 {
        assert!(
            found > 0,
            "lookups over {records} records found some slices"
        );
    }
    store.close().await;
    Ok(Figures {
        rate,
        median,
        worst,
    })
}

async fn measure(label: &str, url: &str, records: usize, batch: usize, path: Path) -> Figures {
    match run(url, records, batch, path).await {
        Ok(f) => {
            println!(
                "flows/{label}: ingested {records} records at {:.0} records/s; public lookup \
                 median {:.2} ms, worst {:.2} ms (goal < 50 ms)",
                f.rate,
                f.median.as_secs_f64() * 1000.0,
                f.worst.as_secs_f64() * 1000.0
            );
            f
        }
        Err(e) => {
            eprintln!("flows/{label}: {e}");
            std::process::exit(1);
        }
    }
}

/// Measures one path on PostgreSQL in a database of its own, dropped after.
async fn measure_pg(admin: &str, label: &str, records: usize, batch: usize, path: Path) -> Figures {
    use sqlx::Connection;
    let name = format!("slicelab_bench_{}_{label}", std::process::id());
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or(admin.to_string());
    let mut c = match sqlx::PgConnection::connect(admin).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flows/postgres: {e}");
            std::process::exit(1);
        }
    };
    let _ = sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await;
    let f = measure(
        &format!("postgres-{label}"),
        &format!("{base}/{name}"),
        records,
        batch,
        path,
    )
    .await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await;
    f
}

/// README's figures (1,000,000 records), printed for comparison: SQLite's (before migration
/// 0014), and PostgreSQL's before `UNNEST` (multi-row `VALUES`), with it, and with `COPY`
/// before migration 0014.
const PREVIOUS_SQLITE: f64 = 166_000.0;
const PREVIOUS_PG_COPY: f64 = 135_000.0;
const PREVIOUS_PG: f64 = 52_000.0;
const PREVIOUS_PG_UNNEST: f64 = 103_000.0;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let records = std::env::var("SLICELAB_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 1_000_000 } else { 20_000 });
    let batch = std::env::var("SLICELAB_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&b: &usize| b > 0)
        .unwrap_or(BATCH);
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("flows: {e}");
            std::process::exit(1);
        }
    };
    let lite = measure(
        "sqlite",
        &format!("sqlite://{}/bench.db", dir.path().display()),
        records,
        batch,
        Path::Best,
    )
    .await;
    println!(
        "flows/sqlite: {:.0}k records/s (goal >= 190k; previous {:.0}k, {:.2}x)",
        lite.rate / 1000.0,
        PREVIOUS_SQLITE / 1000.0,
        lite.rate / PREVIOUS_SQLITE
    );
    if let Ok(admin) = std::env::var("SLICELAB_BENCH_PG") {
        let best = measure_pg(&admin, "copy", records, batch, Path::Best).await;
        let unnest = measure_pg(&admin, "unnest", records, batch, Path::Unnest).await;
        let rows = measure_pg(&admin, "values", records, batch, Path::Rows).await;
        println!(
            "flows/postgres: COPY {:.0}k records/s (goal >= 150k); same run: UNNEST {:.0}k \
             ({:.2}x), multi-row VALUES {:.0}k ({:.2}x); previous (README) COPY {:.0}k ({:.2}x), \
             UNNEST {:.0}k ({:.2}x), VALUES {:.0}k ({:.2}x)",
            best.rate / 1000.0,
            unnest.rate / 1000.0,
            best.rate / unnest.rate,
            rows.rate / 1000.0,
            best.rate / rows.rate,
            PREVIOUS_PG_COPY / 1000.0,
            best.rate / PREVIOUS_PG_COPY,
            PREVIOUS_PG_UNNEST / 1000.0,
            best.rate / PREVIOUS_PG_UNNEST,
            PREVIOUS_PG / 1000.0,
            best.rate / PREVIOUS_PG
        );
    } else {
        println!("flows/postgres: skipped (set SLICELAB_BENCH_PG=postgres://… to measure it)");
    }
}

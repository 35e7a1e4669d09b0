//! `prext-bench`: measures the real `prext serve` binary on SQLite and on PostgreSQL and
//! prints every figure beside its reference, raw SQLite or raw PostgreSQL with the same
//! payloads, concurrency and durability, measured in the same run. The figures are also
//! written as JSON and CSV (`--out`), from which `plot.py` draws throughput against concurrency.
//!
//! Run it with `./scripts/bench` (builds release binaries first). Not a test: no assertions.

mod backend;
mod cpu;
mod ops;
mod payload;
mod raw;
mod raw_etcd;
mod raw_pg;
mod results;
mod results_matrix;
mod server;
mod suite;
mod table;
mod watch;

use std::sync::Arc;

use clap::Parser;
use serde_json::json;

#[derive(Parser)]
#[command(about = "Benchmark prext against raw SQLite and PostgreSQL on the same payloads")]
struct Args {
    /// The prext binary to run.
    #[arg(long)]
    prext: Option<std::path::PathBuf>,
    /// Backends to measure: sqlite, postgres or both (PostgreSQL needs initdb and pg_ctl).
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// Objects created per concurrency level (and read, listed): 10000 or 100000.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Concurrent clients for the create and update benchmarks.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Payload (from `testdata/`): small (1.7 KB), medium (7.4 KB), large (107 KB) or trivy
    /// (10 results with numeric scores).
    #[arg(long, default_value = "medium")]
    payload: String,
    /// Point gets timed (one at a time, random objects).
    #[arg(long, default_value_t = 1_000)]
    gets: usize,
    /// Times the paginated list (limit 500) walks the whole collection.
    #[arg(long, default_value_t = 3)]
    page_walks: usize,
    /// Concurrent watchers for the watch benchmark (0 skips it).
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Writes per second during the watch benchmark.
    #[arg(long, default_value_t = 500)]
    watch_rate: u32,
    /// Seconds of writes during the watch benchmark.
    #[arg(long, default_value_t = 5)]
    watch_seconds: u64,
    /// Skip the etcd reference (it needs `etcd` on PATH: Debian's etcd-server).
    #[arg(long)]
    no_etcd: bool,
    /// Directory for results.json and results.csv.
    #[arg(long, default_value = "target/bench")]
    out: std::path::PathBuf,
    /// Run the result-query benchmark instead (see `results.rs`).
    #[arg(long)]
    results: bool,
    /// Result benchmark: reports to load.
    #[arg(long, default_value_t = 50_000)]
    reports: usize,
    /// Result benchmark: results per report.
    #[arg(long, default_value_t = 20)]
    results_per_report: usize,
    /// Result benchmark: timed runs of each API query.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Result benchmark: timed runs of the status quo (each lists every report).
    #[arg(long, default_value_t = 5)]
    baseline_runs: usize,
    /// Result benchmark: time every filter and pair of filters, and top-N summaries, instead
    /// of the comparison with the status quo (`--runs` per query and page size).
    #[arg(long)]
    matrix: bool,
    /// Result benchmark: keep the store in this directory (SQLite: DIR/prext.db) instead of a
    /// temporary one; a store already loaded there is reused as it is (no load).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Result benchmark on PostgreSQL: a database of a running cluster instead of a throwaway
    /// one (with `--store-password-file`); loaded only when it holds no reports yet.
    #[arg(long)]
    store_url: Option<String>,
    /// The password file of `--store-url`.
    #[arg(long)]
    store_password_file: Option<std::path::PathBuf>,
    /// Result matrix: time only the cases whose label contains one of these (comma-separated;
    /// `=LABEL` for exactly that case).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = args.prext.clone().unwrap_or_else(server::default_binary);
    if args.results {
        let shape = results::Shape {
            reports: args.reports,
            results_per_report: args.results_per_report,
            runs: args.runs,
            baseline_runs: args.baseline_runs,
        };
        let place = results::Place {
            data: args.data.clone(),
            store_url: args.store_url.clone(),
            store_password_file: args.store_password_file.clone(),
            only: args.only.clone(),
        };
        return results::run(&binary, shape, &args.backend, args.matrix, place).await;
    }
    let backends: Vec<&str> = match args.backend.as_str() {
        "both" => vec!["sqlite", "postgres"],
        one => vec![one],
    };
    let payload = Arc::new(payload::load(&args.payload)?);
    let plan = suite::Plan {
        binary,
        payload: payload.clone(),
        objects: args.objects,
        concurrency: args.concurrency.clone(),
        gets: args.gets,
        page_walks: args.page_walks,
        watchers: args.watchers,
        watch_rate: args.watch_rate,
        watch_seconds: args.watch_seconds,
    };
    println!(
        "prext-bench: backends {backends:?}, payload {} ({} bytes), {} objects, concurrency {:?}",
        payload.label,
        payload.size(),
        args.objects,
        args.concurrency
    );
    println!(
        "ratio = prext / reference (throughput: higher is better; time, latency, bytes: lower is better)"
    );
    println!();
    println!("{}", table::header());
    let tmp = tempfile::tempdir()?;
    let mut etcd = if args.no_etcd {
        None
    } else {
        raw_etcd::EtcdReference::start().await
    };
    let mut table = table::Table::default();
    for name in &backends {
        let backend = backend::Backend::new(name).await?;
        suite::run(&backend, &plan, tmp.path(), etcd.as_mut(), &mut table).await?;
    }
    let params = json!({
        "backends": backends, "payload": payload.label, "payload_bytes": payload.size(),
        "objects": args.objects, "concurrency": args.concurrency, "gets": args.gets,
        "page_walks": args.page_walks, "watchers": args.watchers, "watch_rate": args.watch_rate,
        "watch_seconds": args.watch_seconds, "etcd": etcd.is_some(),
    });
    table.write(&args.out, params)?;
    println!();
    println!("figures written to {}/results.{{json,csv}}", args.out.display());
    Ok(())
}

//! `prext-bench`: measures the real `prext serve` binary and prints every figure beside its
//! reference, raw SQLite with the same payloads and durability, measured in the same run.
//!
//! Run it with `./scripts/bench` (builds release binaries first). Not a test: no assertions.

mod payload;
mod raw;
mod results;
mod server;
mod watch;

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use futures::StreamExt;

#[derive(Parser)]
#[command(about = "Benchmark prext against raw SQLite on the same payloads")]
struct Args {
    /// The prext binary to run.
    #[arg(long)]
    prext: Option<std::path::PathBuf>,
    /// Objects created per concurrency level (and listed).
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Concurrent clients for the create benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Payload: small (0.5 KB), medium (7 KB) or large (197 KB).
    #[arg(long, default_value = "medium")]
    payload: String,
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
}

const MB: f64 = 1024.0 * 1024.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.results {
        let binary = args.prext.clone().unwrap_or_else(server::default_binary);
        let shape = results::Shape {
            reports: args.reports,
            results_per_report: args.results_per_report,
            runs: args.runs,
            baseline_runs: args.baseline_runs,
        };
        return results::run(&binary, shape).await;
    }
    let payload = Arc::new(payload::load(&args.payload)?);
    let binary = args.prext.clone().unwrap_or_else(server::default_binary);
    let tmp = tempfile::tempdir()?;
    println!(
        "prext-bench: payload {} ({} bytes), {} objects, concurrency {:?}",
        payload.label,
        payload.size(),
        args.objects,
        args.concurrency
    );
    println!();
    println!("{:<44} {:>14} {:>14} {:>8}", "measure", "prext", "raw sqlite", "ratio");

    for &c in &args.concurrency {
        let raw_dir = tmp.path().join(format!("raw-c{c}"));
        std::fs::create_dir_all(&raw_dir)?;
        let raw_rate = raw::inserts(&raw_dir, &payload, args.objects, c)?;

        let data = tmp.path().join(format!("prext-c{c}"));
        let prext = server::Prext::start(&binary, &data, &[]).await?;
        let rate = create(&prext, &payload, args.objects, c).await?;
        println!(
            "{:<44} {:>12.0}/s {:>12.0}/s {:>8.2}",
            format!("create, {c} client(s), 1 object per request"),
            rate,
            raw_rate,
            rate / raw_rate
        );
        if c == args.concurrency[0] {
            list(&prext, args.objects, &raw_dir).await?;
            println!(
                "{:<44} {:>12.0}ms {:>14} {:>8}",
                "time from start to ready",
                prext.startup.as_secs_f64() * 1e3,
                "",
                ""
            );
        }
        prext.stop();
    }
    if args.watchers > 0 {
        let data = tmp.path().join("prext-watch");
        let prext = server::Prext::start(&binary, &data, &[]).await?;
        let w = watch::run(&prext, &payload, args.watchers, args.watch_rate, args.watch_seconds).await?;
        println!();
        println!(
            "watch delivery, {} watchers, {:.0} writes/s for {} s: {} events, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            args.watchers,
            w.achieved_rate,
            args.watch_seconds,
            w.events,
            w.p50.as_secs_f64() * 1e3,
            w.p99.as_secs_f64() * 1e3,
            w.max.as_secs_f64() * 1e3
        );
        println!("(latency: write acknowledged to event received; no raw reference exists for watches)");
        prext.stop();
    }
    Ok(())
}

async fn create(prext: &server::Prext, payload: &Arc<payload::Payload>, n: usize, c: usize) -> anyhow::Result<f64> {
    let path = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/bench/policyreports";
    let bodies: Vec<Vec<u8>> = (0..n).map(|i| payload.object("bench", i)).collect();
    let start = Instant::now();
    let results: Vec<anyhow::Result<(u16, usize)>> = futures::stream::iter(bodies)
        .map(|b| prext.send(http::Method::POST, path, b))
        .buffer_unordered(c)
        .collect()
        .await;
    let elapsed = start.elapsed().as_secs_f64();
    for r in results {
        let (status, _) = r?;
        anyhow::ensure!(status == 201, "create answered {status}");
    }
    Ok(n as f64 / elapsed)
}

async fn list(prext: &server::Prext, n: usize, raw_dir: &std::path::Path) -> anyhow::Result<()> {
    let idle = server::rss(prext.pid());
    let sampler = server::RssSampler::start(prext.pid());
    let start = Instant::now();
    let (status, bytes) = prext
        .send(http::Method::GET, "/apis/wgpolicyk8s.io/v1alpha2/namespaces/bench/policyreports", vec![])
        .await?;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(status == 200, "list answered {status}");
    let peak = sampler.peak();
    drop(sampler);
    let (raw_secs, raw_bytes) = raw::full_scan(raw_dir)?;
    println!(
        "{:<44} {:>12.0}ms {:>12.0}ms {:>8.2}",
        format!("full list of {n} objects (time)"),
        secs * 1e3,
        raw_secs * 1e3,
        raw_secs / secs
    );
    println!(
        "{:<44} {:>10.0}MB/s {:>10.0}MB/s {:>8.2}",
        "full list throughput",
        bytes as f64 / MB / secs,
        raw_bytes as f64 / MB / raw_secs,
        (bytes as f64 / secs) / (raw_bytes as f64 / raw_secs)
    );
    println!(
        "{:<44} {:>12.1}MB {:>14} {:>8}",
        "server peak RSS during the list",
        peak as f64 / MB,
        "",
        ""
    );
    println!("{:<44} {:>12.1}MB {:>14} {:>8}", "server RSS before the list", idle as f64 / MB, "", "");
    Ok(())
}

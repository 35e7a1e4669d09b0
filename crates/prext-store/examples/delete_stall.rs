//! How long small creates wait while one report with many results is created, updated (every
//! result changed) and deleted, on the store alone (no HTTP): `cargo run --release -p
//! prext-store --features testsuite --example delete_stall -- [sqlite|postgres] [RESULTS]`.
//!
//! One-result creates run back to back for the whole run. After 1 s the large report of
//! RESULTS results (default 50,000; about 2.2 MB of JSON) is created, 1 s later updated with
//! every result changed, 1 s later replaced by a report of one result ("shrink"; then made
//! large again), 1 s later deleted (its rows may still be being removed after the
//! answer, so that window runs 3 s past it). For each (but the update back) it prints its latency and
//! the small creates' count, median and maximum over its window (the small creates that ended
//! between its start and 1 s, or 3 s, after its answer), and the same before any of them.
//! PostgreSQL runs on a throwaway cluster (`initdb` and `pg_ctl` on PATH).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prext_store::testsuite::fixtures::{reindex, report, POLR};
use prext_store::testsuite::{TempPostgres, TempSqlite, TestDatabase};
use prext_store::{ObjectKey, Preconditions, Store};
use serde_json::json;

/// The large report; `result` is every result's value (the update changes it).
fn large(n: usize, result: &str) -> prext_store::ObjectWrite {
    let mut w = report(POLR, "big", "large");
    w.body["results"] = (0..n)
        .map(|i| {
            // Small results: 50,000 of them fit the server's 3 MiB body limit.
            json!({"policy": format!("p{}", i % 50), "rule": "r", "result": result})
        })
        .collect();
    reindex(&mut w);
    w
}

/// When a small create ended (from the run's start) and how long it took.
type Sample = (Duration, Duration);

/// Creates one-result reports back to back until `stop`; returns (end offset, latency) pairs.
async fn small_creates(store: Arc<dyn Store>, stop: Arc<AtomicBool>, t0: Instant) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let w = report(POLR, "small", &format!("s-{i}"));
        let started = Instant::now();
        store.create(w).await.expect("small create");
        out.push((t0.elapsed(), started.elapsed()));
        i += 1;
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn describe(what: &str, samples: &[Sample], from: Duration, to: Duration) {
    let mut lat: Vec<Duration> = samples
        .iter()
        .filter(|(end, _)| *end >= from && *end <= to)
        .map(|s| s.1)
        .collect();
    lat.sort();
    match (lat.get(lat.len() / 2), lat.last()) {
        (Some(p50), Some(max)) => println!(
            "{what}: {} small creates, median {:.1} ms, max {:.1} ms",
            lat.len(),
            ms(*p50),
            ms(*max)
        ),
        _ => println!("{what}: no small create"),
    }
}

async fn run(store: Arc<dyn Store>, n: usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let creates = tokio::spawn(small_creates(Arc::clone(&store), Arc::clone(&stop), t0));
    let pause = || tokio::time::sleep(Duration::from_secs(1));
    pause().await;
    // (what, started, answered, window after the answer)
    let mut ops = Vec::new();

    let w = large(n, "pass");
    let bytes = w.body.to_string().len();
    let started = t0.elapsed();
    let created = store.create(w).await.expect("large create");
    ops.push(("create", started, t0.elapsed(), Duration::from_secs(1)));
    println!("{n} results, {bytes} bytes of JSON");
    pause().await;

    let started = t0.elapsed();
    let updated = store
        .update(large(n, "fail"), created.revision)
        .await
        .expect("large update");
    ops.push(("update", started, t0.elapsed(), Duration::from_secs(1)));
    pause().await;

    // A small update replacing the large report, then the large one back (to delete it).
    let started = t0.elapsed();
    let shrunk = store
        .update(large(1, "fail"), updated.revision)
        .await
        .expect("small update");
    ops.push(("shrink", started, t0.elapsed(), Duration::from_secs(1)));
    pause().await;
    store
        .update(large(n, "pass"), shrunk.revision)
        .await
        .expect("large update back");
    pause().await;

    let started = t0.elapsed();
    store
        .delete(&ObjectKey::new(POLR, "big", "large"), Preconditions::default())
        .await
        .expect("delete");
    ops.push(("delete", started, t0.elapsed(), Duration::from_secs(3)));
    tokio::time::sleep(Duration::from_secs(3)).await;

    stop.store(true, Ordering::Relaxed);
    let samples = creates.await.expect("creates");
    describe("before", &samples, Duration::ZERO, ops[0].1);
    for (what, started, answered, after) in ops {
        println!("{what} answered in {:.1} ms", ms(answered - started));
        describe(
            &format!("  during the {what}"),
            &samples,
            started,
            answered + after,
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = args.get(1).map_or("sqlite", String::as_str);
    let n = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50_000);
    match backend {
        "postgres" => {
            let pg = TempPostgres::new().await;
            let db = pg.database().await;
            let store = db.open().await;
            run(Arc::clone(&store), n).await;
            store.close().await;
        }
        _ => {
            let db = TempSqlite::new();
            let store = db.open().await;
            run(Arc::clone(&store), n).await;
            store.close().await;
        }
    }
}

//! How long small creates wait while a report with many results is deleted, on the store alone
//! (no HTTP): `cargo run -p prext-store --features testsuite --example delete_stall --
//! [sqlite|postgres] [RESULTS]`. Creates one report of RESULTS results (default 50,000), then
//! runs one-result creates back to back while that report is deleted, and keeps them running
//! for 3 s after the delete is answered (its rows may still be being removed); prints the
//! delete's latency and the small creates' count, median and maximum over that window, and
//! before it. PostgreSQL runs on a throwaway cluster (`initdb` and `pg_ctl` on PATH).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prext_store::testsuite::fixtures::{reindex, report, POLR};
use prext_store::testsuite::{TempPostgres, TempSqlite, TestDatabase};
use prext_store::{ObjectKey, Preconditions, Store};
use serde_json::json;

fn large(n: usize) -> prext_store::ObjectWrite {
    let mut w = report(POLR, "big", "large");
    w.body["results"] = (0..n)
        .map(|i| {
            // Small results: 50,000 of them fit the server's 3 MiB body limit.
            json!({"policy": format!("p{}", i % 50), "rule": "r", "result": "pass"})
        })
        .collect();
    reindex(&mut w);
    w
}

/// When a small create started (from the run's start) and how long it took.
type Sample = (Duration, Duration);

/// Creates one-result reports back to back until `stop`; returns (start offset, latency) pairs.
async fn small_creates(store: Arc<dyn Store>, stop: Arc<AtomicBool>, t0: Instant) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let w = report(POLR, "small", &format!("s-{i}"));
        let started = Instant::now();
        store.create(w).await.expect("small create");
        out.push((started - t0, started.elapsed()));
        i += 1;
    }
    out
}

fn describe(what: &str, mut lat: Vec<Duration>) {
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
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
    let t = Instant::now();
    let w = large(n);
    let bytes = w.body.to_string().len();
    store.create(w).await.expect("large create");
    println!(
        "created {n} results ({bytes} bytes of JSON) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let creates = tokio::spawn(small_creates(Arc::clone(&store), Arc::clone(&stop), t0));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delete_at = t0.elapsed();
    let t = Instant::now();
    store
        .delete(&ObjectKey::new(POLR, "big", "large"), Preconditions::default())
        .await
        .expect("delete");
    println!("delete answered in {:.1} ms", t.elapsed().as_secs_f64() * 1000.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = creates.await.expect("creates");
    let (before, during): (Vec<Sample>, Vec<Sample>) =
        samples.into_iter().partition(|(at, lat)| *at + *lat < delete_at);
    describe("before the delete", before.iter().map(|s| s.1).collect());
    describe(
        "from the delete on (3 s after its answer)",
        during.iter().map(|s| s.1).collect(),
    );
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

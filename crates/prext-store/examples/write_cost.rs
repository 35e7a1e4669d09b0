//! CPU per create and per update of the store alone (no HTTP, TLS or JSON parsing), for
//! comparing write paths: `cargo run --release -p prext-store --features testsuite --example
//! write_cost -- [REPORTS] [RESULTS] [FAILING]`. Creates REPORTS reports of RESULTS results
//! each (the first FAILING of them `fail`, each about its own Pod), 16 in flight, on a
//! temporary SQLite database, then updates each once with a label (results unchanged) and once
//! with every result passing; prints the process's CPU milliseconds per write of each phase
//! (user + system, from /proc/self/stat), the part of it spent by the findings indexer thread
//! (which runs beside the writes, off their path), and how long after the last write the
//! indexer had applied every change (its lag) with the CPU per write including that catch-up.

use std::sync::Arc;
use std::time::Instant;

use prext_store::findings::FindingQuery;
use prext_store::sqlite::{SqliteOptions, SqliteStore};
use prext_store::testsuite::fixtures::{report, set_labels, set_results, POLR};
use prext_store::{ObjectWrite, Store};

/// User + system CPU of this process, in milliseconds (clock ticks of 10 ms).
fn cpu_ms() -> f64 {
    stat_cpu_ms(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// User + system CPU of this process's findings indexer thread, in milliseconds.
fn indexer_cpu_ms() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter(|stat| stat.contains("(prext-sqlite-in"))
        .map(|stat| stat_cpu_ms(&stat))
        .sum()
}

/// utime + stime of a `stat` line, in milliseconds.
fn stat_cpu_ms(stat: &str) -> f64 {
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks * 10.0
}

fn write(i: usize, results: usize, failing: usize, label: Option<&str>) -> ObjectWrite {
    let mut w = report(POLR, &format!("ns-{}", i % 50), &format!("r-{i}"));
    let rows: Vec<(&str, &str)> = (0..results)
        .map(|j| {
            (
                if j % 2 == 0 { "p-even" } else { "p-odd" },
                if j < failing { "fail" } else { "pass" },
            )
        })
        .collect();
    set_results(&mut w, &rows);
    if let Some(l) = label {
        set_labels(&mut w, &[("round", l)]);
    }
    w
}

async fn phase(store: &Arc<SqliteStore>, name: &str, n: usize, make: impl Fn(usize) -> (ObjectWrite, bool)) {
    let writes: Vec<(ObjectWrite, bool)> = (0..n).map(make).collect();
    let started = (cpu_ms(), Instant::now());
    let indexer_before = indexer_cpu_ms();
    let mut queue = writes.into_iter();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.len() < 16 {
            let Some((w, update)) = queue.next() else { break };
            let store = Arc::clone(store);
            tasks.spawn(async move {
                if update {
                    let cur = store.get(&w.key).await.expect("get").expect("exists");
                    store.update(w, cur.revision).await.expect("update");
                } else {
                    store.create(w).await.expect("create");
                }
            });
        }
        if tasks.join_next().await.is_none() {
            break;
        }
    }
    let cpu = cpu_ms() - started.0;
    let indexer = indexer_cpu_ms() - indexer_before;
    let rate = n as f64 / started.1.elapsed().as_secs_f64();
    // A findings read waits until the indexer has applied every acknowledged write.
    let last_write = Instant::now();
    store
        .query_findings(FindingQuery {
            limit: 1,
            ..FindingQuery::default()
        })
        .await
        .expect("findings");
    let lag = last_write.elapsed();
    let total = cpu_ms() - started.0;
    let per = |ms: f64| ms / n as f64;
    println!(
        "{name}: {n} writes, {:.3} ms CPU per write ({:.3} write path, {:.3} indexer meanwhile), \
         {rate:.0} writes/s; indexer lag after the last write {lag:?}, {:.3} ms CPU per write \
         with the catch-up",
        per(cpu),
        per(cpu - indexer),
        per(indexer),
        per(total),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (n, results, failing) = (
        args.first().copied().unwrap_or(3000),
        args.get(1).copied().unwrap_or(20),
        args.get(2).copied().unwrap_or(0),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("prext.db"), SqliteOptions::default()).expect("open"));
    println!("{n} reports of {results} results, {failing} failing");
    phase(&store, "create", n, |i| (write(i, results, failing, None), false)).await;
    phase(&store, "update (label only)", n, |i| {
        (write(i, results, failing, Some("1")), true)
    })
    .await;
    phase(&store, "update (all pass)", n, |i| {
        (write(i, results, 0, Some("2")), true)
    })
    .await;
    store.close().await;
}

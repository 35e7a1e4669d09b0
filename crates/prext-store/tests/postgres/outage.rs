//! PostgreSQL going away under load and coming back: operations fail fast with
//! `Unavailable`, nothing acknowledged is lost, and the same stores recover by themselves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prext_store::postgres::{PostgresOptions, PostgresStore};
use prext_store::testsuite::{fixtures, TempPostgres};
use prext_store::{Error, Store, StoredObject};

use super::replicas::wait_for_listeners;

/// Creates objects in a loop until told to stop; returns what was acknowledged and the errors.
async fn load(
    store: Arc<PostgresStore>,
    task: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<StoredObject>, Vec<Error>) {
    let (mut acked, mut errors) = (Vec::new(), Vec::new());
    let mut i = 0;
    while !stop.load(Ordering::Acquire) {
        let w = fixtures::report(fixtures::POLR, &format!("load-{task}"), &format!("r{i:05}"));
        i += 1;
        let started = Instant::now();
        match store.create(w).await {
            Ok(o) => acked.push(o),
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "a failing write took {:?}",
                    started.elapsed()
                );
                errors.push(e);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    (acked, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_under_write_load() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let opts = PostgresOptions {
        connect_timeout: Duration::from_secs(1),
        ..db.options().clone()
    };
    let db = db.with_options(opts);
    let store = db.open_postgres().await;
    let other = db.open_postgres().await;
    wait_for_listeners(&db, 2).await;

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|t| tokio::spawn(load(Arc::clone(&store), t, Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;

    pg.stop().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    // While down: everything fails fast, as unavailable.
    let started = Instant::now();
    match store.ping().await {
        Err(Error::Unavailable(_)) => {}
        other => panic!("ping while down: want Unavailable, got {other:?}"),
    }
    match store.create(fixtures::report(fixtures::POLR, "down", "x")).await {
        Err(Error::Unavailable(_)) => {}
        other => panic!("create while down: want Unavailable, got {other:?}"),
    }
    match store.list(super::all(fixtures::POLR)).await {
        Err(Error::Unavailable(_)) => {}
        Ok(_) => panic!("list while down: want Unavailable, got a stream"),
        Err(other) => panic!("list while down: want Unavailable, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failing took {:?}",
        started.elapsed()
    );

    pg.start().await;
    // The same store writes again, without being reopened.
    let deadline = Instant::now() + Duration::from_secs(15);
    let back = loop {
        match store.create(fixtures::report(fixtures::POLR, "back", "x")).await {
            Ok(o) => break o,
            Err(Error::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("writes did not recover: {e}"),
        }
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Release);

    let (mut acked, mut errors) = (Vec::new(), Vec::new());
    for task in tasks {
        let (a, e) = task.await.expect("load task");
        assert!(a.windows(2).all(|w| w[0].revision < w[1].revision));
        acked.extend(a);
        errors.extend(e);
    }
    assert!(!errors.is_empty(), "the outage was noticed");
    for e in &errors {
        assert!(
            matches!(e, Error::Unavailable(_)),
            "only Unavailable errors: {e:?}"
        );
    }
    assert!(
        acked.iter().any(|o| o.revision > back.revision),
        "the load resumed"
    );
    eprintln!(
        "{} writes acknowledged, {} refused as unavailable",
        acked.len(),
        errors.len()
    );

    // Every acknowledged write survived the crash, exactly as acknowledged.
    for o in &acked {
        assert_eq!(
            store.get(&o.key).await.expect("get").as_ref(),
            Some(o),
            "lost {:?}",
            o.key
        );
    }
    let logged: std::collections::BTreeSet<i64> = store
        .changes(0, 100_000)
        .await
        .expect("changes")
        .iter()
        .map(|c| c.revision)
        .collect();
    assert!(
        acked.iter().all(|o| logged.contains(&o.revision)),
        "the change log has every acknowledged write"
    );
    store.ping().await.expect("ping after recovery");

    // The other replica's change feed recovered too: it hears about a write through this one.
    let mut rx = other.subscribe();
    let o = fixtures::create(&*store, fixtures::report(fixtures::POLR, "after", "x")).await;
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|r| *r >= o.revision))
        .await
        .expect("the other replica is woken after the outage")
        .expect("channel open");
    wait_for_listeners(&db, 2).await;
    store.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_while_down_is_unavailable() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    pg.stop().await;
    let started = Instant::now();
    match PostgresStore::connect(db.url(), db.options().clone()).await {
        Err(Error::Unavailable(_)) => {}
        other => panic!("want Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    pg.start().await;
    db.open_postgres().await.close().await;
}

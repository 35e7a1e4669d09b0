//! Several stores on one database: replicas of one cluster sharing revisions, optimistic
//! concurrency and the change feed; clusters sharing the database without seeing each other.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prext_store::postgres::{PostgresOptions, PostgresStore};
use prext_store::testsuite::{fixtures, PostgresTestDatabase, TempPostgres, TestDatabase};
use prext_store::{Error, ObjectKey, Preconditions, Store};

use super::{all, fill};

/// Waits until `n` sessions are listening for changes.
pub(crate) async fn wait_for_listeners(db: &PostgresTestDatabase, n: i64) {
    let client = db.analyst_client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listening: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN prext_changes'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if listening >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{listening} of {n} listeners after 10s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_revisions_and_concurrency() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let (a, b) = (db.open_postgres().await, db.open_postgres().await);

    // Writers on both replicas at once: every acknowledged write has its own revision, each
    // task's are increasing, and both replicas' change logs hold exactly them.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store: Arc<PostgresStore> = Arc::clone(if t % 2 == 0 { &a } else { &b });
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..25 {
                let o = fixtures::create(
                    &*store,
                    fixtures::report(fixtures::POLR, &format!("ns-{t}"), &format!("r{i}")),
                )
                .await;
                revisions.push(o.revision);
            }
            revisions
        }));
    }
    let mut acked = BTreeSet::new();
    for task in tasks {
        let revisions = task.await.expect("writer");
        assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
        acked.extend(revisions);
    }
    assert_eq!(acked.len(), 200, "no revision handed out twice across replicas");
    let newest = *acked.last().expect("writes");
    assert_eq!(acked.first().copied(), Some(1));
    assert_eq!(newest, 200, "gap-free across replicas");
    for s in [&a, &b] {
        assert_eq!(s.revision().await.expect("revision"), newest);
        let log: BTreeSet<i64> = s
            .changes(0, 1000)
            .await
            .expect("changes")
            .iter()
            .map(|c| c.revision)
            .collect();
        assert_eq!(log, acked);
    }

    // Alternating replicas, one write at a time: strictly increasing in commit order.
    let mut last = newest;
    for i in 0..20 {
        let s = if i % 2 == 0 { &a } else { &b };
        let o = fixtures::create(&**s, fixtures::report(fixtures::POLR, "alt", &format!("r{i}"))).await;
        assert!(o.revision > last, "{} after {last}", o.revision);
        last = o.revision;
    }

    // Optimistic concurrency across replicas.
    let w = fixtures::report(fixtures::POLR, "occ", "x");
    let v1 = fixtures::create(&*a, w.clone()).await;
    let v2 = b.update(w.clone(), v1.revision).await.expect("update through b");
    assert!(matches!(
        a.update(w.clone(), v1.revision).await,
        Err(Error::Conflict(_))
    ));
    let stale = Preconditions {
        uid: None,
        resource_version: Some(v1.revision),
    };
    assert!(matches!(a.delete(&w.key, stale).await, Err(Error::Conflict(_))));
    assert_eq!(a.get(&w.key).await.expect("get"), Some(v2));
    for round in 0..10 {
        let current = a.get(&w.key).await.expect("get").expect("exists").revision;
        let (ra, rb) = tokio::join!(a.update(w.clone(), current), b.update(w.clone(), current));
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            wins, 1,
            "round {round}: exactly one update from {current} wins: {ra:?} {rb:?}"
        );
        assert!(
            [&ra, &rb].iter().any(|r| matches!(r, Err(Error::Conflict(_)))),
            "round {round}: the other conflicts"
        );
        let name = format!("race-{round}");
        let (ca, cb) = tokio::join!(
            a.create(fixtures::report(fixtures::POLR, "occ", &name)),
            b.create(fixtures::report(fixtures::POLR, "occ", &name)),
        );
        let created = [&ca, &cb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(created, 1, "round {round}: one create wins: {ca:?} {cb:?}");
        assert!([&ca, &cb]
            .iter()
            .any(|r| matches!(r, Err(Error::AlreadyExists { .. }))));
    }
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_replica_wakes_the_other() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let a = db.open_postgres().await;
    // B polls only once a minute: waking within 15 s (generous for a loaded machine) needs the notification.
    let b = db
        .with_options(PostgresOptions {
            poll_interval: Duration::from_secs(60),
            ..db.options().clone()
        })
        .open_postgres()
        .await;
    wait_for_listeners(&db, 2).await;
    let mut rx = b.subscribe();
    rx.borrow_and_update();
    for i in 0..5 {
        let started = Instant::now();
        let o = fixtures::create(&*a, fixtures::report(fixtures::POLR, "ns", &format!("r{i}"))).await;
        tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|r| *r >= o.revision))
            .await
            .expect("B woken well before its next poll")
            .expect("channel open");
        eprintln!("B woken {:?} after A's write began", started.elapsed());
        let seen = b.changes(o.revision - 1, 10).await.expect("changes through B");
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].revision, &seen[0].key, &seen[0].body),
            (o.revision, &o.key, &o.body)
        );
        assert_eq!(b.get(&o.key).await.expect("get"), Some(o));
    }

    // A lost notification costs latency, never the event: kill the LISTEN sessions, write
    // at once (before they are back), and B still learns of it when its listener reconnects.
    let admin = db.analyst_client().await;
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN prext_changes'",
        )
        .await
        .expect("terminate listeners");
    let o = fixtures::create(&*a, fixtures::report(fixtures::POLR, "ns", "while-deaf")).await;
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|r| *r >= o.revision))
        .await
        .expect("B catches up after reconnecting")
        .expect("channel open");
    wait_for_listeners(&db, 2).await;
    let o = fixtures::create(&*a, fixtures::report(fixtures::POLR, "ns", "after")).await;
    tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|r| *r >= o.revision))
        .await
        .expect("notifications flow again")
        .expect("channel open");
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_is_the_safety_net() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db
        .with_options(PostgresOptions {
            poll_interval: Duration::from_millis(200),
            ..db.options().clone()
        })
        .open_postgres()
        .await;
    let mut rx = store.subscribe();
    let before = *rx.borrow_and_update();
    // A revision committed without any notification (as if it had been lost).
    db.analyst_client()
        .await
        .batch_execute("UPDATE meta SET revision = revision + 1")
        .await
        .expect("bump");
    tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|r| *r > before))
        .await
        .expect("the poll noticed the unannounced revision")
        .expect("channel open");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_in_one_database_do_not_see_each_other() {
    let pg = TempPostgres::new().await;
    let shared = pg.database().await;
    let (one_db, two_db) = (shared.with_cluster("one"), shared.with_cluster("two"));
    let (one, two) = (one_db.open_postgres().await, two_db.open_postgres().await);
    let mut two_rx = two.subscribe();
    two_rx.borrow_and_update();

    let in_one = fill(&*one, "ns", 5).await;
    let mut w = fixtures::report(fixtures::POLR, "ns", "r000");
    w.body["summary"] = serde_json::json!({"fail": 7});
    let in_two = fixtures::create(&*two, w).await;
    assert_eq!(in_two.revision, 1, "each cluster has its own revisions");
    assert_eq!(two.revision().await.expect("revision"), 1);
    assert_eq!(one.revision().await.expect("revision"), 5);

    let key = ObjectKey::new(fixtures::POLR, "ns", "r000");
    assert_eq!(one.get(&key).await.expect("get"), Some(in_one[0].clone()));
    assert_eq!(two.get(&key).await.expect("get"), Some(in_two.clone()));
    assert_eq!(fixtures::list_keys(&*two, all(fixtures::POLR)).await.len(), 1);
    assert_eq!(fixtures::list_keys(&*one, all(fixtures::POLR)).await.len(), 5);
    assert_eq!(two.changes(0, 100).await.expect("changes").len(), 1);
    assert_eq!(one.changes(0, 100).await.expect("changes").len(), 5);
    assert_eq!(one_db.result_rows(&key).await.len(), 1);

    // Writes, deletes and compaction in one leave the other alone.
    one.delete(&key, Preconditions::default())
        .await
        .expect("delete in one");
    assert_eq!(one.compact(0).await.expect("compact"), 6);
    assert_eq!(two.get(&key).await.expect("get"), Some(in_two));
    assert_eq!(two.oldest_revision().await.expect("oldest"), 0);
    assert_eq!(two.changes(0, 100).await.expect("changes").len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(*two_rx.borrow(), 1, "one's writes never move two's revision");
    // Another replica of cluster two sees exactly two's state.
    let two_again = two_db.open_postgres().await;
    assert_eq!(two_again.revision().await.expect("revision"), 1);
    for s in [one, two, two_again] {
        s.close().await;
    }
}

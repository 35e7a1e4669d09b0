//! The findings indexer with several replicas of one cluster: whichever holds the lock of the
//! cluster's cursor row is its only indexer, and every replica's findings reads wait for the
//! persisted cursor, failing with `IndexBehind` rather than answering without an
//! acknowledged write.

use prext_store::findings::{FindingPage, FindingQuery};
use prext_store::testsuite::{fixtures, TempPostgres};
use prext_store::{Error, Store};

async fn findings(store: &dyn Store) -> prext_store::Result<FindingPage> {
    store
        .query_findings(FindingQuery {
            limit: 100,
            ..FindingQuery::default()
        })
        .await
}

fn failing(name: &str, policy: &str) -> prext_store::ObjectWrite {
    fixtures::with_results("ns", name, &[(policy, "fail")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_indexer_per_cluster_and_reads_wait_for_it() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let (a, b) = (db.open_postgres().await, db.open_postgres().await);

    // Written through one replica, read through the other.
    let r1 = fixtures::create(&*a, failing("r1", "p1")).await;
    let page = findings(&*b).await.expect("findings through b");
    assert_eq!(page.items.len(), 1, "{page:#?}");
    assert_eq!(page.items[0].first_seen_revision, r1.revision);

    // An outside session holds the cursor row: neither replica may index meanwhile, and a
    // read gives up (after its bounded wait) naming the revision it had to see.
    let mut admin = db.analyst_client().await;
    let tx = admin.transaction().await.expect("begin");
    tx.query(
        "SELECT revision FROM findings_cursor WHERE cluster = $1 FOR UPDATE",
        &[&db.options().cluster],
    )
    .await
    .expect("lock the cursor row");
    let r2 = fixtures::create(&*b, failing("r2", "p2")).await;
    match findings(&*a).await {
        Err(Error::IndexBehind { requested, current }) => {
            assert_eq!((requested, current), (r2.revision, r1.revision));
        }
        other => panic!("a read answered without an acknowledged write: {other:?}"),
    }
    tx.rollback().await.expect("release");

    // Released: an indexer takes it up (at least every second), and both replicas see r2.
    for store in [&a, &b] {
        let page = findings(&**store).await.expect("findings");
        let mut seen: Vec<i64> = page.items.iter().map(|f| f.first_seen_revision).collect();
        seen.sort_unstable();
        assert_eq!(seen, [r1.revision, r2.revision]);
    }
    a.close().await;
    b.close().await;
}

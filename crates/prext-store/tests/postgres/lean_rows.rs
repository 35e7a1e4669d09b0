//! Schema version 14: the newest change of a report keeps no labels (they are the report
//! row's, as its body), and report rows compress labels of about a kilobyte in the row.

use prext_store::testsuite::{fixtures, TempPostgres};
use prext_store::{Preconditions, Store};

/// Labels of about a kilobyte, as a Kyverno report's.
fn many_labels(version: &str) -> Vec<(String, String)> {
    (0..22)
        .map(|i| {
            (
                format!("cpol.kyverno.io/policy-number-{i:02}"),
                format!("{version}-{i}"),
            )
        })
        .collect()
}

fn labelled(name: &str, version: &str) -> prext_store::ObjectWrite {
    let mut w = fixtures::report(fixtures::POLR, "ns", name);
    let labels = many_labels(version);
    let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    fixtures::set_labels(&mut w, &pairs);
    // A body large enough to go out of line, as a real report's.
    w.body["metadata"]["annotations"] = serde_json::json!({"filler": "x".repeat(6000)});
    w
}

/// A version-13 database (every change row with its labels, the column NOT NULL, the report
/// rows with PostgreSQL's defaults) upgraded in place: its history replays the same, and the
/// writes after the upgrade keep the newest labels once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_13_databases_upgrade_and_replay_the_same() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    let a1 = fixtures::create(&*store, labelled("a", "1")).await;
    let a2 = store
        .update(labelled("a", "2"), a1.revision)
        .await
        .expect("update a");
    let b = fixtures::create(&*store, labelled("b", "1")).await;
    store
        .delete(&b.key, Preconditions::default())
        .await
        .expect("delete b");
    let before = store.changes(0, 100).await.expect("changes");
    assert_eq!(before.len(), 4);
    store.close().await;

    let admin = db.analyst_client().await;
    // Written by version 14: only a's newest change (a2) has no labels.
    let unlabelled = super::upgrades::revisions_without(&admin, "labels").await;
    assert_eq!(unlabelled, [a2.revision]);

    super::upgrades::forget_versions_from(
        &admin,
        14,
        "UPDATE changes c SET labels = o.labels FROM objects o
             WHERE o.cluster = c.cluster AND o.resource = c.resource AND o.namespace = c.namespace
               AND o.name = c.name AND o.revision = c.revision AND c.labels IS NULL;
         ALTER TABLE changes ALTER COLUMN labels SET NOT NULL;
         ALTER TABLE objects RESET (toast_tuple_target);
         ALTER TABLE objects ALTER COLUMN labels SET COMPRESSION pglz;",
    )
    .await;

    let store = db.open_postgres().await;
    assert_eq!(
        store.changes(0, 100).await.expect("changes"),
        before,
        "the history replays the same after the upgrade"
    );
    let settings: (Option<Vec<String>>, String) = {
        let r = admin
            .query_one(
                "SELECT c.reloptions, a.attcompression::text FROM pg_class c
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'labels'
                 WHERE c.oid = 'objects'::regclass",
                &[],
            )
            .await
            .expect("pg_class");
        (r.get(0), r.get(1))
    };
    assert_eq!(
        settings,
        (Some(vec!["toast_tuple_target=1024".to_owned()]), "l".to_owned())
    );

    // Rows written before the upgrade keep their labels; a write after it copies the labels
    // it supersedes and keeps its own only in the report row.
    let a3 = store
        .update(labelled("a", "3"), a2.revision)
        .await
        .expect("update a");
    let c = fixtures::create(&*store, labelled("c", "1")).await;
    let unlabelled = super::upgrades::revisions_without(&admin, "labels").await;
    assert_eq!(unlabelled, [a3.revision, c.revision]);
    let after = store.changes(0, 100).await.expect("changes");
    assert_eq!(after[..4], before[..]);
    assert_eq!(after.len(), 6);
    for (change, (want, version)) in after[4..].iter().zip([(&a3, "3"), (&c, "1")]) {
        assert_eq!(change.revision, want.revision);
        let labels: Vec<(String, String)> = change.labels.clone().into_iter().collect();
        assert_eq!(labels, many_labels(version), "a change reads its report's labels");
    }
    assert_eq!(
        after[4]
            .prev_labels
            .clone()
            .map(|l| l.into_iter().collect::<Vec<_>>()),
        Some(many_labels("2"))
    );

    // The report row holds its labels compressed: the row is well under the 1.3 KB the
    // uncompressed labels and the other columns take.
    let (compressed, plain): (i32, i32) = {
        let r = admin
            .query_one(
                "SELECT pg_column_size(labels), octet_length(labels::text) FROM objects WHERE name = 'c'",
                &[],
            )
            .await
            .expect("objects");
        (r.get(0), r.get(1))
    };
    assert!(
        compressed * 3 < plain * 2,
        "labels {compressed} bytes stored for {plain} of JSON"
    );
    store.close().await;
}

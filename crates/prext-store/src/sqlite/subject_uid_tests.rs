//! Schema version 13 on SQLite: a store written before it (every row holding its subject's
//! uid) upgraded in place, its analyst views reading the same, and its result queries
//! answering the same through the new partial indexes.

use std::time::Duration;

use super::schema::tests::rows;
use super::schema::{latest_version, migrate, migrate_to, open_writer};
use super::{SqliteOptions, SqliteStore};
use crate::results::{Condition, ResultColumn, ResultFilter, ResultQuery};
use crate::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_12_result_rows_upgrade_to_their_uid_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("prext.db");
    let mut conn = open_writer(&path, Duration::from_secs(5)).expect("open");
    assert_eq!(migrate_to(&mut conn, 12).expect("version 12"), 12);
    // Written the way version 12 wrote: report 1 about the Pod `u-p`, report 2 without a
    // scope; rows 9/0 belong to a deleted report awaiting its purge.
    conn.execute_batch(
        r#"INSERT INTO objects (id, resource, namespace, name, uid, revision, created, body,
                                scope_kind, scope_name, scope_uid)
           VALUES (1, 'policyreports.wgpolicyk8s.io', 'a', 'r1', 'u1', 1, '2024-01-01T00:00:00Z', '{}', 'Pod', 'p', 'u-p'),
                  (2, 'policyreports.wgpolicyk8s.io', 'b', 'r2', 'u2', 2, '2024-01-01T00:00:00Z', '{}', NULL, NULL, NULL);
           INSERT INTO purges (object_id, revision) VALUES (9, 3);
           INSERT INTO results (object_id, idx, policy, result, properties, resources,
                                subject_kind, subject_name, subject_uid)
           VALUES (1, 0, 'p1', 'fail', '{}', '[]', 'Pod', 'p', 'u-p'),
                  (1, 1, 'p1', 'pass', '{}', '[{"kind":"Pod","name":"p","uid":"u-p"}]', 'Pod', 'p', 'u-p'),
                  (1, 2, 'p2', 'fail', '{}', '[{"kind":"Pod","name":"q"}]', 'Pod', 'q', NULL),
                  (1, 3, 'p2', 'fail', '{}', '[{"kind":"Pod","name":"r","uid":"u-r"}]', 'Pod', 'r', 'u-r'),
                  (1, 4, 'p2', 'warn', '{}', '[{"kind":"Pod","name":"e","uid":""}]', 'Pod', 'e', ''),
                  (2, 0, 'p1', 'fail', '{}', '[]', NULL, NULL, NULL),
                  (2, 1, 'p1', 'fail', '{}', '[{"kind":"Pod","name":"p","uid":"u-p"}]', 'Pod', 'p', 'u-p'),
                  (9, 0, 'p1', 'fail', '{}', '[]', 'Pod', 'gone', 'u-gone');
           UPDATE meta SET revision = 3;"#,
    )
    .expect("version 12 rows");
    let views = [
        "SELECT * FROM report_results ORDER BY namespace, report, idx",
        "SELECT * FROM results_v1 ORDER BY namespace, report, idx",
    ];
    let before: Vec<Vec<String>> = views.iter().map(|q| rows(&conn, q)).collect();
    assert_eq!(before[0].len(), 7);
    let started = std::time::Instant::now();
    assert_eq!(migrate(&mut conn).expect("upgrade"), latest_version());
    eprintln!("migration to {} took {:?}", latest_version(), started.elapsed());
    let after: Vec<Vec<String>> = views.iter().map(|q| rows(&conn, q)).collect();
    assert_eq!(before, after, "the views read the same after the upgrade");
    let stored: Vec<String> = conn
        .prepare("SELECT object_id || '/' || idx || ' ' || typeof(subject_uid) FROM results ORDER BY object_id, idx")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("stored types");
    assert_eq!(
        stored,
        ["1/0 null", "1/1 null", "1/2 blob", "1/3 text", "1/4 text", "2/0 null", "2/1 text", "9/0 text"],
        "the scope's uid left out, a missing one marked, the purged report's rows as they were"
    );
    drop(conn);

    // The upgraded store answers uid filters as the rows were written.
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open store");
    for (values, negated, want) in [
        (vec!["u-p"], false, vec!["a/r1/0", "a/r1/1", "b/r2/1"]),
        (
            vec!["u-r", ""],
            false,
            vec!["a/r1/2", "a/r1/3", "a/r1/4", "b/r2/0"],
        ),
        (vec!["u-p"], true, vec!["a/r1/2", "a/r1/3", "a/r1/4", "b/r2/0"]),
        (vec!["u-gone"], false, vec![]),
    ] {
        let values: Vec<String> = values.into_iter().map(str::to_owned).collect();
        let c = if negated {
            Condition::NotIn(ResultColumn::SubjectUid, values)
        } else {
            Condition::In(ResultColumn::SubjectUid, values)
        };
        let page = store
            .query_results(ResultQuery {
                filter: ResultFilter {
                    namespace: None,
                    conditions: vec![c.clone()],
                },
                limit: 100,
                count: true,
                ..ResultQuery::default()
            })
            .await
            .expect("query");
        let got: Vec<String> = page
            .items
            .iter()
            .map(|r| format!("{}/{}/{}", r.namespace, r.report, r.index))
            .collect();
        assert_eq!(got, want, "{c:?}");
        assert_eq!(page.total, Some(want.len() as u64), "{c:?}");
    }
    store.close().await;
}

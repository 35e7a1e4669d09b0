//! Upgrades of databases written by earlier schema versions: the change log of version 3,
//! the result filter indexes of version 8, the counts and numbers of version 9, each checked
//! against what the writer of the new version writes. (Version 14's is in `lean_rows.rs`.)

use prext_store::testsuite::{fixtures, TempPostgres};
use prext_store::Store;
use serde_json::json;

/// A database whose change log version 3 wrote (every change with its body) is upgraded in
/// place by migration 5: the copies of current bodies go, and the history replays the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_3_change_logs_upgrade_in_place() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    let mut a = fixtures::report(fixtures::POLR, "ns", "a");
    let a1 = fixtures::create(&*store, a.clone()).await;
    fixtures::set_labels(&mut a, &[("v", "2")]);
    store.update(a, a1.revision).await.expect("update");
    let b = fixtures::create(&*store, fixtures::report(fixtures::POLR, "ns", "b")).await;
    store
        .delete(&b.key, prext_store::Preconditions::default())
        .await
        .expect("delete");
    let before = store.changes(0, 100).await.expect("changes");
    assert_eq!(before.len(), 4);
    store.close().await;

    // Back to what version 3 left: every body in the log, the column NOT NULL.
    let admin = db.analyst_client().await;
    forget_versions_from(
        &admin,
        5,
        "UPDATE changes c SET body = o.body FROM objects o
             WHERE o.cluster = c.cluster AND o.resource = c.resource AND o.namespace = c.namespace
               AND o.name = c.name AND o.revision = c.revision AND c.body IS NULL;
             ALTER TABLE changes ALTER COLUMN body SET NOT NULL;
             -- And without what version 6 added, so that both run again.
             ALTER TABLE changes DROP COLUMN written_at, DROP COLUMN results_flag;
             DROP TABLE findings_cursor;
             DROP FUNCTION prext_index_change(text, text, text, text, bigint, bigint, boolean, jsonb);
             DROP TABLE finding_carriers;
             CREATE TABLE finding_carriers (object_id bigint NOT NULL, finding_id bigint NOT NULL,
                 PRIMARY KEY (object_id, finding_id));
             CREATE FUNCTION prext_record_findings(text, bigint, bigint, bigint) RETURNS void
                 LANGUAGE sql AS 'SELECT';
             DROP TABLE purges;
             DROP TABLE result_counts, result_numbers;",
    )
    .await;

    let store = db.open_postgres().await;
    assert_eq!(
        store.changes(0, 100).await.expect("changes"),
        before,
        "the history replays the same after the upgrade"
    );
    let bodiless = super::upgrades::revisions_without(&admin, "body").await;
    assert_eq!(
        bodiless,
        [before[1].revision],
        "only the current object's body loses its copy"
    );
    store.close().await;
}

/// Migration 8 on a database version 7 left: the subject index leads with the name; the rows
/// stay, and a message filter's expression (ASCII lower-cased `LIKE`) finds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_7_databases_get_the_result_filter_indexes() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    let mut w = fixtures::with_results("ns", "a", &[("p", "fail"), ("q", "pass")]);
    w.body["results"][0]["message"] = json!("OpenSSL is out of date");
    fixtures::reindex(&mut w);
    fixtures::create(&*store, w).await;
    store.close().await;

    // Back to what version 7 left.
    let admin = db.analyst_client().await;
    forget_versions_from(
        &admin,
        8,
        "DROP INDEX results_subject;
             CREATE INDEX results_subject ON results (subject_namespace, subject_kind, subject_name, cluster);
             DROP TABLE result_counts, result_numbers;",
    )
    .await;

    let store = db.open_postgres().await;
    let def = |name: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query_opt("SELECT indexdef FROM pg_indexes WHERE indexname = $1", &[&name])
                .await
                .expect("pg_indexes")
                .map(|r| r.get::<_, String>(0))
        }
    };
    let subject = def("results_subject").await.expect("results_subject");
    assert!(
        // Migration 12 appends the result and the severity after these.
        subject.contains("(subject_name, subject_namespace, subject_kind, cluster"),
        "{subject}"
    );

    let found: i64 = admin
        .query_one(
            "SELECT count(*) FROM results WHERE translate(message, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', \
             'abcdefghijklmnopqrstuvwxyz') LIKE '%openssl%'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(found, 1);
    store.close().await;
}

/// Migration 9 on a database version 8 left: the per-report counts and numeric properties are
/// computed from the result rows, exactly as the writer computes them for new reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_8_databases_get_counts_and_numbers_as_the_writer_writes_them() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    let mut w = fixtures::report(fixtures::POLR, "ns", "a");
    fixtures::set_results(
        &mut w,
        &[("p", "fail"), ("q", "pass"), ("r", "fail"), ("s", "warn")],
    );
    w.body["results"][0]["severity"] = json!("high");
    w.body["results"][0]["properties"] = json!({"score": "9.8", "lead": "08", "exp": "1e3", "n": " -2.5 "});
    w.body["results"][1]["properties"] = json!({"score": "0", "text": "high"});
    w.body["results"][2]["source"] = json!("trivy");
    w.body["results"][2]["properties"] = json!({"score": "1.25e-2", "plus": "+1", "dot": ".5"});
    fixtures::reindex(&mut w);
    fixtures::create(&*store, w).await;
    let gone = fixtures::create(&*store, fixtures::report(fixtures::POLR, "ns", "b")).await;
    store
        .delete(&gone.key, prext_store::Preconditions::default())
        .await
        .expect("delete");
    fixtures::create(&*store, fixtures::report(fixtures::CPOLR, "", "c")).await;
    store.close().await;

    let admin = db.analyst_client().await;
    let counts =
        "SELECT object_id, cluster, result, severity, source, n FROM result_counts ORDER BY 1, 3, 4, 5";
    let numbers = "SELECT object_id, idx, key, value FROM result_numbers ORDER BY 1, 2, 3";
    let rows = |sql: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query(sql, &[])
                .await
                .expect(sql)
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| match r.columns()[i].type_().name() {
                            "int8" => r.get::<_, i64>(i).to_string(),
                            "int4" => r.get::<_, i32>(i).to_string(),
                            "float8" => r.get::<_, f64>(i).to_string(),
                            _ => r.get::<_, String>(i),
                        })
                        .collect::<Vec<String>>()
                })
                .collect::<Vec<_>>()
        }
    };
    let (written_counts, written_numbers) = (rows(counts).await, rows(numbers).await);
    assert!(written_counts.iter().any(|r| r[2] == "fail" && r[3] == "high"));
    let written: Vec<(&str, &str)> = written_numbers
        .iter()
        .map(|r| (r[2].as_str(), r[3].as_str()))
        .filter(|(k, _)| *k != "index")
        .collect();
    assert_eq!(
        written,
        [
            ("exp", "1000"),
            ("n", "-2.5"),
            ("score", "9.8"),
            ("score", "0"),
            ("score", "0.0125")
        ]
    );

    // Back to what version 8 left.
    forget_versions_from(&admin, 9, "DROP TABLE result_counts, result_numbers;").await;
    let store = db.open_postgres().await;
    assert_eq!(rows(counts).await, written_counts, "the migration's counts");
    assert_eq!(rows(numbers).await, written_numbers, "the migration's numbers");
    store.close().await;
}

/// The revisions of the changes whose `column` is NULL, in order.
pub(crate) async fn revisions_without(client: &tokio_postgres::Client, column: &str) -> Vec<i64> {
    let sql = format!("SELECT revision FROM changes WHERE {column} IS NULL ORDER BY revision");
    let rows = client.query(&sql, &[]).await.expect("changes");
    rows.iter().map(|r| r.get(0)).collect()
}

/// The names of `table`'s indexes, sorted.
pub(crate) async fn index_names(client: &tokio_postgres::Client, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE tablename = $1 ORDER BY indexname",
            &[&table],
        )
        .await
        .expect("pg_indexes")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Puts a database back to an earlier version: runs `sql` (undoing what the later migrations
/// changed), then forgets the migrations from `first` on, so that opening the store runs them
/// again.
pub(crate) async fn forget_versions_from(admin: &tokio_postgres::Client, first: i64, sql: &str) {
    admin
        .batch_execute(&format!(
            "{sql}\nDELETE FROM schema_migrations WHERE version >= {first};"
        ))
        .await
        .unwrap_or_else(|e| panic!("back before version {first}: {e}"));
}

//! The findings indexer on SQLite: it resumes from its persisted cursor and rebuilds exactly
//! the findings it would have written (a crash between a write and its indexing loses
//! nothing), a restore applies what the copy had not indexed yet, and compaction never drops a
//! change above the cursor.

use std::collections::BTreeMap;
use std::time::Duration;

use prext_api::{report, resources};
use rusqlite::Connection;
use serde_json::json;

use super::hints::Hints;
use super::{indexer, ops, schema, SqliteOptions, SqliteStore};
use crate::findings::{Finding, FindingQuery};
use crate::{ObjectKey, ObjectWrite, Preconditions, Store};

const POLR: &str = "policyreports.wgpolicyk8s.io";

/// A PolicyReport `ns/name` whose results are `(policy, result)`, each about its own Pod.
fn report_write(name: &str, results: &[(&str, &str)]) -> ObjectWrite {
    let rows: Vec<_> = results
        .iter()
        .enumerate()
        .map(|(i, (p, r))| {
            json!({"policy": p, "result": r, "severity": "high", "message": format!("{name} {i}"),
                   "resources": [{"kind": "Pod", "namespace": "ns", "name": format!("pod-{i}")}]})
        })
        .collect();
    let body = json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "results": rows,
    });
    let def = resources::find("wgpolicyk8s.io", "v1alpha2", "policyreports").expect("policyreports");
    ObjectWrite {
        key: ObjectKey::new(POLR, "ns", name),
        uid: format!("uid-{name}"),
        labels: BTreeMap::new(),
        created: "2024-05-01T10:00:00Z".into(),
        deleting: false,
        index: report::index(def, &body),
        body,
    }
}

async fn all_findings(store: &SqliteStore) -> Vec<Finding> {
    store
        .query_findings(FindingQuery {
            limit: 1000,
            ..FindingQuery::default()
        })
        .await
        .expect("findings")
        .items
}

/// A timeline of creates, rewrites, a relabel and a delete; returns the findings indexed.
async fn timeline(store: &SqliteStore) -> Vec<Finding> {
    let a = store
        .create(report_write("a", &[("p1", "fail"), ("p2", "warn")]))
        .await
        .expect("create a");
    let b = store
        .create(report_write("b", &[("p1", "fail")]))
        .await
        .expect("create b");
    let a = store
        .update(
            report_write("a", &[("p1", "pass"), ("p2", "warn"), ("p3", "error")]),
            a.revision,
        )
        .await
        .expect("rewrite a");
    let mut relabel = report_write("a", &[("p1", "pass"), ("p2", "warn"), ("p3", "error")]);
    relabel.labels.insert("x".into(), "y".into());
    relabel.body["metadata"]["labels"] = json!({"x": "y"});
    store.update(relabel, a.revision).await.expect("relabel a");
    store
        .delete(&b.key, Preconditions::default())
        .await
        .expect("delete b");
    all_findings(store).await
}

fn db(conn_path: &std::path::Path) -> Connection {
    schema::open_writer(conn_path, Duration::from_secs(5)).expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_indexer_rebuilds_the_same_findings_from_its_cursor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("prext.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
    let indexed = timeline(&store).await;
    assert_eq!(indexed.len(), 3, "{indexed:#?}");
    assert_eq!(
        indexed.iter().filter(|f| f.resolved_at.is_some()).count(),
        1,
        "p1 resolved once b went: {indexed:#?}"
    );
    let revision = store.revision().await.expect("revision");
    store.close().await;
    let conn = db(&path);
    let cursor: i64 = conn
        .query_row("SELECT revision FROM findings_cursor", [], |r| r.get(0))
        .expect("cursor");
    assert_eq!(cursor, revision, "closing applies every change");

    // As if the process had died after the writes and before indexing them.
    conn.execute_batch(
        "DELETE FROM findings; DELETE FROM finding_carriers; UPDATE findings_cursor SET revision = 0;",
    )
    .expect("forget the findings");
    drop(conn);
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
    let rebuilt = all_findings(&store).await;
    let fields = |f: &Finding| {
        (
            f.policy.clone(),
            f.result.clone(),
            f.message.clone(),
            f.first_seen,
            f.first_seen_revision,
            f.last_seen,
            f.last_seen_revision,
            f.resolved_at,
            f.resolved_revision,
            f.report.clone(),
        )
    };
    assert_eq!(
        rebuilt.iter().map(fields).collect::<Vec<_>>(),
        indexed.iter().map(fields).collect::<Vec<_>>(),
        "the same findings, with the writes' times"
    );
    store.close().await;
}

/// Steps cut short by their bodies' bytes (here: one body each) apply the same findings as
/// one step of the whole log, and only the last one reports the log done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_cut_short_by_body_bytes_index_the_same_findings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("prext.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
    let indexed = timeline(&store).await;
    let revision = store.revision().await.expect("revision");
    store.close().await;
    let mut conn = db(&path);
    conn.execute_batch(
        "DELETE FROM findings; DELETE FROM finding_carriers; UPDATE findings_cursor SET revision = 0;",
    )
    .expect("forget the findings");
    let mut steps = Vec::new();
    loop {
        let (cursor, done) = indexer::step(&mut conn, 100, 1, &Hints::default()).expect("step");
        steps.push(cursor);
        if done {
            break;
        }
        assert!(steps.len() < 10, "the cursor moves on: {steps:?}");
    }
    // Three writes carry failing rows and so a body (a, b, the rewrite of a): each ends a
    // step; the relabel (rows kept) and the delete follow the last body in the final step.
    assert_eq!(steps, vec![1, 2, 3, revision], "cursor after each step");
    drop(conn);
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
    let rebuilt = all_findings(&store).await;
    let key = |f: &Finding| {
        (
            f.policy.clone(),
            f.result.clone(),
            f.resolved_revision,
            f.report.clone(),
        )
    };
    assert_eq!(
        rebuilt.iter().map(key).collect::<Vec<_>>(),
        indexed.iter().map(key).collect::<Vec<_>>()
    );
    store.close().await;
}

#[test]
fn compaction_stops_at_the_cursor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("prext.db");
    let mut conn = db(&path);
    schema::migrate(&mut conn).expect("migrate");
    conn.execute_batch(
        "INSERT INTO changes (revision, event, resource, namespace, name, body, labels, written_at,
             results_flag)
         VALUES (1, 'ADDED', 'r', 'ns', 'a', '{}', '{}', 1, 1),
                (2, 'MODIFIED', 'r', 'ns', 'a', '{}', '{}', 2, 0),
                (3, 'DELETED', 'r', 'ns', 'a', '{}', '{}', 3, NULL);
         UPDATE meta SET revision = 3;",
    )
    .expect("changes");
    let (point, done) = ops::compact_step(&conn, 0, 100).unwrap_or_else(|_| panic!("compact"));
    assert_eq!((point, done), (0, true), "nothing above the cursor (0) goes");
    conn.execute("UPDATE findings_cursor SET revision = 2", [])
        .expect("cursor");
    let (point, _) = ops::compact_step(&conn, 0, 100).unwrap_or_else(|_| panic!("compact"));
    assert_eq!(point, 2);
    // The indexer applies the rest (a delete of a report that carried nothing).
    assert_eq!(
        indexer::step(
            &mut conn,
            100,
            crate::findings_index::INDEX_BATCH_BYTES,
            &Hints::default()
        )
        .expect("step"),
        (3, true)
    );
}

/// A restore applies what the copy's indexer had not applied yet before it drops the change
/// history, then starts the cursor at the restored revision.
#[test]
fn a_restore_applies_the_pending_changes_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn = db(&dir.path().join("prext.db"));
    schema::migrate(&mut conn).expect("migrate");
    let body = r#"{"results": [{"policy": "p1", "result": "fail", "resources": [{"uid": "pod"}]}]}"#;
    conn.execute(
        "INSERT INTO changes (revision, event, resource, namespace, name, body, labels, written_at,
             results_flag)
         VALUES (1, 'ADDED', ?1, 'ns', 'a', ?2, '{}', 1000, 2),
                (2, 'DELETED', ?1, 'ns', 'a', ?2, '{}', 2000, NULL)",
        rusqlite::params![POLR, body],
    )
    .expect("changes");
    indexer::finish(&conn, 2, 100).expect("finish");
    let (opened, resolved, cursor): (i64, i64, i64) = conn
        .query_row(
            "SELECT f.first_seen, f.resolved_at, c.revision FROM findings f, findings_cursor c",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("one finding");
    assert_eq!((opened, resolved, cursor), (1000, 2000, 100));
}

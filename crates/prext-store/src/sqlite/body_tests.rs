//! Schema version 12 on SQLite: bodies stored compressed, and a store written before it (TEXT
//! bodies) read, rewritten and watched through the upgrade.

use std::collections::BTreeMap;

use prext_api::{report, resources};
use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;
use serde_json::json;

use super::body::{decode, LZ4};
use super::{SqliteOptions, SqliteStore};
use crate::{EventType, ListItem, ListOptions, ObjectKey, ObjectWrite, Preconditions, Store, StoredObject};

const POLR: &str = "policyreports.wgpolicyk8s.io";

/// A PolicyReport with 20 results (a body of a few KB), `tag` in a label and each message.
fn report(name: &str, tag: &str) -> ObjectWrite {
    let results: Vec<_> = (0..20)
        .map(|i| {
            json!({"policy": format!("policy-{i}"), "rule": "check", "result": if i % 3 == 0 { "fail" } else { "pass" },
                   "severity": "high", "source": "kyverno", "message": format!("{tag}: rule {i} of the report"),
                   "resources": [{"kind": "Pod", "namespace": "ns", "name": format!("pod-{i}"), "uid": format!("uid-{i}")}]})
        })
        .collect();
    let body = json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"tag": tag}},
        "results": results,
    });
    let def = resources::find("wgpolicyk8s.io", "v1alpha2", "policyreports").expect("policyreports");
    ObjectWrite {
        key: ObjectKey::new(POLR, "ns", name),
        uid: format!("uid-{name}"),
        labels: BTreeMap::from([("tag".to_owned(), tag.to_owned())]),
        created: "2024-05-01T10:00:00Z".into(),
        deleting: false,
        index: report::index(def, &body),
        body,
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{e}: {sql}"))
}

/// `revision || typeof(column)` of every change, in revision order, joined by commas
/// (`"1text,2null,3blob"`).
fn change_types(conn: &Connection, column: &str) -> String {
    conn.query_row(
        &format!(
            "SELECT group_concat(revision || typeof({column}), ',') \
             FROM (SELECT * FROM changes ORDER BY revision)"
        ),
        [],
        |r| r.get(0),
    )
    .expect("change column types")
}

async fn listed(store: &SqliteStore) -> Vec<StoredObject> {
    let mut stream = store
        .list(ListOptions {
            resource: POLR.into(),
            namespace: None,
            labels: Default::default(),
            fields: Default::default(),
            limit: None,
            after: None,
        })
        .await
        .expect("list");
    let mut out = Vec::new();
    while let Some(item) = stream.items.recv().await {
        match item.expect("list item") {
            ListItem::Object(o) => out.push(o),
            ListItem::More => panic!("no limit was asked"),
        }
    }
    out
}

/// The bodies of the history, in order, as (revision, event, body).
async fn history(store: &SqliteStore) -> Vec<(i64, EventType, bytes::Bytes)> {
    store
        .changes(0, 100)
        .await
        .expect("changes")
        .into_iter()
        .map(|c| (c.revision, c.event, c.body))
        .collect()
}

/// Turns the database back into what schema version 11 and earlier wrote: every body TEXT,
/// every change with its labels, each result's subject uid in its row, versions 12
/// (`compressed_bodies`) and later forgotten (the `changes` table stays rebuilt without the NOT
/// NULL on `labels`, which changes nothing a reader sees; version 13's views and uid index are
/// made again by its migration).
fn as_text_bodies(path: &std::path::Path) {
    let conn = Connection::open(path).expect("open");
    conn.create_scalar_function("plain", 1, FunctionFlags::SQLITE_UTF8, |ctx| {
        Ok(match ctx.get_raw(0) {
            rusqlite::types::ValueRef::Blob(b) => {
                let json = decode(b).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
                rusqlite::types::Value::Text(String::from_utf8(json).expect("utf-8"))
            }
            other => rusqlite::types::Value::try_from(other)
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?,
        })
    })
    .expect("function");
    conn.execute_batch(
        "UPDATE objects SET body = plain(body);
         UPDATE changes SET body = plain(body) WHERE body IS NOT NULL;
         UPDATE changes SET labels = (SELECT labels FROM objects o WHERE o.resource = changes.resource
             AND o.namespace = changes.namespace AND o.name = changes.name) WHERE labels IS NULL;
         UPDATE results SET subject_uid = CASE
             WHEN subject_uid IS NULL THEN (SELECT scope_uid FROM objects o WHERE o.id = results.object_id)
             WHEN typeof(subject_uid) = 'text' THEN subject_uid END;
         DROP INDEX objects_scope_uid;
         DELETE FROM schema_migrations WHERE version >= 12;",
    )
    .expect("text bodies");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM objects WHERE typeof(body) <> 'text'")
            + count(&conn, "SELECT count(*) FROM changes WHERE typeof(body) = 'blob'"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_bodies_of_earlier_versions_read_and_rewrite_after_the_upgrade() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("prext.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
    let mut written = Vec::new();
    for name in ["a", "b", "c"] {
        written.push(store.create(report(name, "first")).await.expect("create"));
    }
    // `a` twice: its first body moves to the change log.
    written[0] = store
        .update(report("a", "second"), written[0].revision)
        .await
        .expect("update");
    let before = history(&store).await;
    assert_eq!(before.len(), 4);
    store.close().await;
    {
        let conn = Connection::open(&path).expect("open");
        assert_eq!(
            count(&conn, "SELECT count(*) FROM objects WHERE typeof(body) = 'blob'"),
            3,
            "bodies of a few KB are stored compressed"
        );
        assert_eq!(
            count(&conn, "SELECT count(*) FROM changes WHERE typeof(body) = 'blob'"),
            1,
            "so is the superseded body in the change log"
        );
        let blob: Vec<u8> = conn
            .query_row("SELECT body FROM objects WHERE name = 'b'", [], |r| r.get(0))
            .expect("body");
        assert_eq!(blob[0], LZ4);
        assert!(
            blob.len() * 3 < written[1].body.len(),
            "{} of {}",
            blob.len(),
            written[1].body.len()
        );
    }

    as_text_bodies(&path);
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
    let conn = Connection::open(&path).expect("open");
    assert_eq!(
        count(&conn, "SELECT max(version) FROM schema_migrations"),
        super::schema::latest_version()
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM changes WHERE labels IS NULL"),
        3,
        "the upgrade drops the labels of each report's newest change (b's, c's and a's second)"
    );
    // Every read serves the text bodies as they were served before.
    for w in &written {
        assert_eq!(store.get(&w.key).await.expect("get").as_ref(), Some(w));
    }
    assert_eq!(listed(&store).await, written);
    assert_eq!(history(&store).await, before);

    // Writes after the upgrade: `b`'s text body moves to the log as it is, `c`'s last state
    // (text) is stamped for its deletion; both read back with the new compressed bodies.
    let b = store
        .update(report("b", "third"), written[1].revision)
        .await
        .expect("update");
    let c = store
        .delete(&written[2].key, Preconditions::default())
        .await
        .expect("delete");
    let stored = change_types(&conn, "body");
    assert_eq!(
        stored, "1text,2text,3text,4null,5null,6blob",
        "b's and c's superseded text bodies are copied as stored; the deletion's body is new"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM changes WHERE labels IS NULL"),
        2,
        "a's and b's newest changes"
    );
    assert_eq!(store.get(&b.key).await.expect("get"), Some(b.clone()));
    let after = history(&store).await;
    assert_eq!(after[..4], before[..]);
    assert_eq!(after[4], (b.revision, EventType::Modified, b.body.clone()));
    assert_eq!(after[5], (c.revision, EventType::Deleted, c.body.clone()));
    let last: serde_json::Value = serde_json::from_slice(&c.body).expect("json");
    assert_eq!(last["metadata"]["resourceVersion"], c.revision.to_string());
    assert_eq!(last["results"][0]["message"], "first: rule 0 of the report");
    assert_eq!(listed(&store).await, vec![written[0].clone(), b]);
    store.close().await;
}

#[test]
fn version_10_change_logs_upgrade_in_place() {
    let mut conn = Connection::open_in_memory().expect("memory db");
    assert_eq!(super::schema::migrate_to(&mut conn, 10).expect("version 10"), 10);
    // Written the way version 10 wrote: TEXT bodies, every change with its labels, the newest
    // change of `a` without its body. `a` was created and relabelled, `b` created and deleted.
    conn.execute_batch(
        r#"INSERT INTO objects (id, resource, namespace, name, uid, revision, created, labels, body)
           VALUES (1, 'policyreports.wgpolicyk8s.io', 'ns', 'a', 'u1', 2, '2024-01-01T00:00:00Z', '{"x":"2"}', '{"v":2}');
           INSERT INTO changes (revision, event, resource, namespace, name, body, labels, prev_labels)
           VALUES (1, 'ADDED', 'policyreports.wgpolicyk8s.io', 'ns', 'a', '{"v":1}', '{"x":"1"}', NULL),
                  (2, 'MODIFIED', 'policyreports.wgpolicyk8s.io', 'ns', 'a', NULL, '{"x":"2"}', '{"x":"1"}'),
                  (3, 'ADDED', 'policyreports.wgpolicyk8s.io', 'ns', 'b', '{"b":3}', '{"y":"3"}', NULL),
                  (4, 'DELETED', 'policyreports.wgpolicyk8s.io', 'ns', 'b', '{"b":4}', '{"y":"3"}', '{"y":"3"}');
           UPDATE meta SET revision = 4;"#,
    )
    .expect("version 10 rows");
    let replay = |conn: &mut Connection| {
        super::reader::changes(conn, 0, 100)
            .expect("changes")
            .into_iter()
            .map(|c| (c.revision, c.body, c.labels, c.prev_labels))
            .collect::<Vec<_>>()
    };
    let before = replay(&mut conn);
    assert_eq!(before.len(), 4);
    assert_eq!(&before[1].1[..], br#"{"v":2}"#);
    assert_eq!(
        super::schema::migrate(&mut conn).expect("upgrade"),
        super::schema::latest_version()
    );
    assert_eq!(
        replay(&mut conn),
        before,
        "the history replays the same after the upgrade"
    );
    let stored = change_types(&conn, "labels");
    assert_eq!(
        stored, "1text,2null,3text,4text",
        "only the current object's labels lose their copy"
    );
    let refused = conn.execute(
        "INSERT INTO changes (revision, event, resource, namespace, name, body, labels)
         VALUES (5, 'ADDED', 'policyreports.wgpolicyk8s.io', 'ns', 'c', '{}', NULL)",
        [],
    );
    assert!(refused.is_err(), "a change with a body keeps its labels");
}

//! Schema version 4 on SQLite: a version 3 database upgrades in place, its failing results
//! becoming open findings (one per subject, policy and rule, carried by every report that has
//! it), and the next writes resolve them like any other; version 7 keeps them, carried by
//! the reports' keys, with the findings indexer's cursor at the current revision.

use std::time::Duration;

use prext_api::report::{ResultRow, Subject};
use rusqlite::Connection;

use super::findings;
use super::schema::{latest_version, migrate, migrate_to, open_writer};
use crate::findings_index::carried;
use crate::ObjectKey;

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{e}: {sql}"))
}

#[test]
fn version_3_databases_upgrade_with_their_open_findings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn = open_writer(&dir.path().join("prext.db"), Duration::from_secs(5)).expect("open");
    assert_eq!(migrate_to(&mut conn, 3).expect("version 3"), 3);
    // Two reports fail p1 on the same Pod (by uid); one also warns p3 (no uid); one passes.
    conn.execute_batch(
        r#"INSERT INTO objects (id, resource, namespace, name, uid, revision, created, body)
           VALUES (1, 'policyreports.wgpolicyk8s.io', 'a', 'r1', 'u1', 1, '2024-01-01T00:00:00Z', '{}'),
                  (2, 'ephemeralreports.reports.kyverno.io', 'a', 'r2', 'u2', 2, '2024-01-01T00:00:00Z', '{}');
           INSERT INTO results (object_id, idx, policy, rule, result, severity, properties, resources,
                                subject_kind, subject_namespace, subject_name, subject_uid)
           VALUES (1, 0, 'p1', 'r', 'fail', 'high', '{}', '[]', 'Pod', 'a', 'web', 'pod-uid'),
                  (1, 1, 'p2', 'r', 'pass', NULL, '{}', '[]', 'Pod', 'a', 'web', 'pod-uid'),
                  (1, 2, 'p3', NULL, 'warn', NULL, '{}', '[]', 'Pod', 'a', 'db', NULL),
                  (2, 0, 'p1', 'r', 'fail', 'high', '{}', '[]', 'Pod', 'a', 'web', 'pod-uid');
           UPDATE meta SET revision = 2;"#,
    )
    .expect("version 3 rows");
    let before = crate::findings::now_ms();
    assert_eq!(migrate(&mut conn).expect("upgrade"), latest_version());
    let after = crate::findings::now_ms();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM findings WHERE resolved_at IS NULL"),
        2
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM findings WHERE subject_key = 'Pod/a/db' AND rule = ''"
        ),
        1
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM finding_carriers"),
        3,
        "p1 twice, p3 once"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM findings WHERE first_seen_revision <> 2"
        ),
        0
    );
    let seen = count(&conn, "SELECT min(first_seen) FROM findings");
    assert!(
        before - 1000 <= seen && seen <= after + 1000,
        "{before} <= {seen} <= {after}"
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM findings_v1 WHERE open"), 2);
    assert_eq!(
        count(&conn, "SELECT revision FROM findings_cursor"),
        2,
        "the indexer starts at the revision of the upgrade"
    );

    // r1 fixes p3 (its rows rewritten without it): p3 resolves, p1 stays carried by r2.
    let r1 = ObjectKey::new("policyreports.wgpolicyk8s.io", "a", "r1");
    let p1 = ResultRow {
        policy: Some("p1".into()),
        rule: Some("r".into()),
        result: Some("fail".into()),
        severity: Some("high".into()),
        subject: Subject {
            kind: Some("Pod".into()),
            namespace: Some("a".into()),
            name: Some("web".into()),
            uid: Some("pod-uid".into()),
            ..Subject::default()
        },
        ..ResultRow::default()
    };
    findings::record(&conn, &r1, &carried(&[p1]), after + 5, 3).expect("record");
    assert_eq!(
        count(
            &conn,
            "SELECT resolved_revision FROM findings WHERE policy = 'p3'"
        ),
        3
    );
    // r1 now fails nothing.
    findings::record(&conn, &r1, &[], after + 6, 4).expect("record");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM findings WHERE resolved_at IS NULL"),
        1,
        "r2 keeps p1"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT last_seen_revision FROM findings WHERE policy = 'p1'"
        ),
        3,
        "the last write that carried it"
    );
}

//! Tests of the writer's group commit: one batch mixing refused and successful requests, fed
//! to [`batch`] directly so that every request is certainly in the same transaction.

use std::collections::BTreeMap;
use std::time::Duration;

use prext_api::{report, resources};
use serde_json::json;

use tokio::sync::oneshot;

use super::*;
use crate::sqlite::schema;
use crate::{ObjectKey, Preconditions};

const POLR: &str = "policyreports.wgpolicyk8s.io";

/// A PolicyReport `ns/name` whose results are `policies` (each failing), with its index.
fn write(name: &str, policies: &[&str]) -> Prepared {
    let results: Vec<_> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"policy": p, "result": "fail", "severity": "high", "source": "kyverno",
                   "properties": {"score": format!("{i}.5")},
                   "resources": [{"kind": "Pod", "namespace": "ns", "name": format!("pod-{i}")}]})
        })
        .collect();
    let body = json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "results": results,
    });
    let def = resources::find("wgpolicyk8s.io", "v1alpha2", "policyreports").expect("policyreports");
    Prepared::new(crate::ObjectWrite {
        key: ObjectKey::new(POLR, "ns", name),
        uid: format!("uid-{name}"),
        labels: BTreeMap::new(),
        created: "2024-05-01T10:00:00Z".into(),
        deleting: false,
        index: report::index(def, &body),
        body,
    })
    .expect("prepared")
}

type Receivers = Vec<oneshot::Receiver<Result<Reply>>>;

/// Queues `ops` and runs them as one batch; returns each op's answer, in order.
fn run_batch(conn: &mut Connection, ops: Vec<Op>) -> Vec<Result<Reply>> {
    run_batch_with(conn, ops, &Hints::default())
}

/// [`run_batch`], leaving the findings of its writes in `hints`.
fn run_batch_with(conn: &mut Connection, ops: Vec<Op>, hints: &Hints) -> Vec<Result<Reply>> {
    let (tx, mut rx) = mpsc::channel(ops.len().max(1));
    let mut receivers: Receivers = Vec::new();
    for op in ops {
        let (reply, answer) = oneshot::channel();
        receivers.push(answer);
        tx.try_send(Request { op, reply }).expect("queue has room");
    }
    let first = rx.try_recv().expect("a first request");
    let limits = Limits {
        ops: 256,
        bytes: 1 << 24,
    };
    let mut stager = super::Stager::default();
    let (answers, _) = batch(conn, first, &mut rx, limits, &mut stager, hints);
    assert!(rx.try_recv().is_err(), "the whole queue went into one batch");
    for (reply, answer) in answers {
        reply.send(answer).expect("receiver alive");
    }
    // Large writes taken aside are staged and switched to, as the writer does between batches.
    while stager.busy() {
        if let Some(done) = stager.step(conn) {
            done.reply.send(done.answer).expect("receiver alive");
        }
    }
    receivers
        .into_iter()
        .map(|mut r| r.try_recv().expect("answered"))
        .collect()
}

fn revision_of(answer: &Result<Reply>) -> i64 {
    match answer {
        Ok(Reply::Object(o)) => o.revision,
        other => panic!("want a stored object, got {other:?}"),
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// The rows of every table a write touches, as text, to compare states.
fn snapshot(conn: &Connection, object: &str) -> Vec<String> {
    let sqls = [
        format!("SELECT revision || hex(body) || labels FROM objects WHERE name = '{object}'"),
        format!(
            "SELECT r.idx || r.policy || r.properties FROM results AS r JOIN objects AS o \
             ON o.id = r.object_id WHERE o.name = '{object}' ORDER BY r.idx"
        ),
        format!(
            "SELECT n.idx || n.key || n.value FROM result_numbers AS n JOIN objects AS o \
             ON o.id = n.object_id WHERE o.name = '{object}' ORDER BY n.idx, n.key"
        ),
        format!(
            "SELECT c.result || c.severity || c.n FROM result_counts AS c JOIN objects AS o \
             ON o.id = c.object_id WHERE o.name = '{object}' ORDER BY 1"
        ),
    ];
    sqls.iter()
        .flat_map(|sql| {
            let mut stmt = conn.prepare(sql).expect(sql);
            let rows: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            rows
        })
        .collect()
}

#[test]
fn refused_requests_in_a_batch_change_nothing_and_their_neighbours_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn = schema::open_writer(&dir.path().join("prext.db"), Duration::from_secs(5)).expect("open");
    schema::migrate(&mut conn).expect("migrate");
    let first = run_batch(&mut conn, vec![Op::Create(write("a", &["p0", "p1"]))]);
    let a_rev = revision_of(&first[0]);
    let before = snapshot(&conn, "a");
    let changes_before = count(&conn, "SELECT count(*) FROM changes");

    let wrong_uid = Preconditions {
        uid: Some("someone-else".into()),
        resource_version: None,
    };
    let answers = run_batch(
        &mut conn,
        vec![
            Op::Create(write("b", &["q0"])),
            // The key is taken: refused by the objects INSERT itself.
            Op::Create(write("a", &["x0", "x1", "x2"])),
            Op::Update(write("a", &["y0"]), a_rev - 1),
            Op::Create(write("c", &["r0", "r1"])),
            Op::Delete(ObjectKey::new(POLR, "ns", "a"), wrong_uid),
            Op::Update(write("missing", &["z0"]), a_rev),
            Op::Create(write("d", &[])),
        ],
    );
    assert!(matches!(
        answers[1],
        Err(Error::AlreadyExists { being_deleted: false })
    ));
    assert!(matches!(answers[2], Err(Error::Conflict(_))), "{:?}", answers[2]);
    assert!(matches!(answers[4], Err(Error::Conflict(_))), "{:?}", answers[4]);
    assert!(matches!(answers[5], Err(Error::NotFound)), "{:?}", answers[5]);
    let revisions: Vec<i64> = [0, 3, 6].iter().map(|i| revision_of(&answers[*i])).collect();
    assert_eq!(
        revisions,
        [a_rev + 1, a_rev + 2, a_rev + 3],
        "successes take consecutive revisions, refusals none"
    );

    assert_eq!(
        snapshot(&conn, "a"),
        before,
        "refused requests left `a` as it was"
    );
    assert_eq!(count(&conn, "SELECT revision FROM meta"), a_rev + 3);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM changes"),
        changes_before + 3,
        "one change per success"
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM objects"), 4);
    assert_eq!(snapshot(&conn, "b").len(), 1 + 1 + 1 + 1);
    assert_eq!(snapshot(&conn, "c").len(), 1 + 2 + 2 + 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM results"), 2 + 1 + 2);

    // The refused requests did not break the connection's transaction state either.
    let after = run_batch(&mut conn, vec![Op::Update(write("a", &["p9"]), a_rev)]);
    assert_eq!(revision_of(&after[0]), a_rev + 4);
    assert_eq!(snapshot(&conn, "a").len(), 1 + 1 + 1 + 1);
}

/// A report with `n` results (each with a numeric `score`), for the purge tests.
fn large(name: &str, n: usize) -> Prepared {
    let policies: Vec<String> = (0..n).map(|i| format!("p{}", i % 5)).collect();
    let refs: Vec<&str> = policies.iter().map(String::as_str).collect();
    write(name, &refs)
}

/// Every result query that can read result rows without their report, with its total.
fn served(conn: &mut Connection) -> Vec<u64> {
    use crate::results::{Compare, Condition, PropertyTest, ResultColumn, ResultFilter, ResultQuery};
    let filters = [
        ResultFilter::default(),
        ResultFilter {
            namespace: None,
            conditions: vec![Condition::In(ResultColumn::Policy, vec!["p0".into()])],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![Condition::Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::GreaterOrEqual, 0.0),
            }],
        },
    ];
    filters
        .into_iter()
        .map(|filter| {
            let page = super::super::results::query(
                conn,
                &ResultQuery {
                    filter,
                    limit: 10,
                    count: true,
                    ..ResultQuery::default()
                },
            )
            .expect("query");
            page.total.expect("counted")
        })
        .collect()
}

#[test]
fn large_deletes_leave_their_rows_to_chunks_that_writes_go_between() {
    use super::super::purge::{self, Purger, CHUNK_ROWS, INLINE_ROWS};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn = schema::open_writer(&dir.path().join("prext.db"), Duration::from_secs(5)).expect("open");
    schema::migrate(&mut conn).expect("migrate");
    let n = usize::try_from(2 * CHUNK_ROWS + INLINE_ROWS + 7).expect("small");
    run_batch(&mut conn, vec![Op::Create(write("keep", &["p0", "p1"]))]);
    run_batch(&mut conn, vec![Op::Create(large("large", n))]);
    let large_id = count(&conn, "SELECT id FROM objects WHERE name = 'large'");
    assert_eq!(
        served(&mut conn),
        [2 + n as u64, 1 + n.div_ceil(5) as u64, 2 + n as u64]
    );

    // The delete is one small transaction: the report and its counts go, its rows wait.
    let deleted = run_batch(
        &mut conn,
        vec![Op::Delete(
            ObjectKey::new(POLR, "ns", "large"),
            Preconditions::default(),
        )],
    );
    revision_of(&deleted[0]);
    assert_eq!(count(&conn, "SELECT count(*) FROM purges"), 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM results"), 2 + n as i64);
    assert_eq!(count(&conn, "SELECT count(*) FROM result_counts"), 1);
    assert_eq!(
        served(&mut conn),
        [2, 1, 2],
        "no query serves the rows awaiting their purge"
    );

    // A write goes through before any chunk: it does not wait for the purge, and its new row
    // does not take the purged report's id (whose rows it would otherwise inherit).
    let created = run_batch(&mut conn, vec![Op::Create(write("fresh", &["p0", "p2", "p3"]))]);
    revision_of(&created[0]);
    assert!(count(&conn, "SELECT id FROM objects WHERE name = 'fresh'") > large_id);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM results"),
        5 + n as i64,
        "nothing purged yet"
    );
    assert_eq!(served(&mut conn), [5, 2, 5]);

    // A new writer (after a crash or restart) finds the work; chunks remove it, each bounded.
    let mut purger = Purger::open(&conn);
    assert!(purger.pending());
    let mut chunks = 0;
    while purger.pending() {
        let before = count(&conn, "SELECT count(*) FROM results");
        purger.step(&mut conn);
        let removed = before - count(&conn, "SELECT count(*) FROM results");
        assert!(removed <= CHUNK_ROWS, "{removed} rows in one chunk");
        assert_eq!(served(&mut conn), [5, 2, 5]);
        chunks += 1;
    }
    assert_eq!(chunks, (n as i64 - 1) / CHUNK_ROWS + 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM results"), 5);
    assert_eq!(count(&conn, "SELECT count(*) FROM result_numbers"), 5);
    assert_eq!(count(&conn, "SELECT count(*) FROM purges"), 0);
    assert!(!purge::pending(&conn).expect("pending"));

    // A small report loses its rows in the delete itself.
    run_batch(
        &mut conn,
        vec![Op::Delete(
            ObjectKey::new(POLR, "ns", "keep"),
            Preconditions::default(),
        )],
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM purges"), 0);
    assert_eq!(count(&conn, "SELECT count(*) FROM results"), 3);
    assert_eq!(count(&conn, "SELECT count(*) FROM result_numbers"), 3);
}

/// A committed batch leaves the findings of its writes (not of a refused one) for the
/// indexer, which applies them without reading the bodies back; without them it reads the
/// bodies and finds the same findings.
#[test]
fn committed_writes_leave_their_findings_for_the_indexer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("prext.db");
    let mut conn = schema::open_writer(&path, Duration::from_secs(5)).expect("open");
    schema::migrate(&mut conn).expect("migrate");
    let hints = Hints::default();
    let answers = run_batch_with(
        &mut conn,
        vec![
            Op::Create(write("a", &["p0", "p1"])),
            Op::Create(write("a", &["p9"])),
            Op::Create(write("b", &["p2"])),
        ],
        &hints,
    );
    assert!(
        matches!(answers[1], Err(Error::AlreadyExists { .. })),
        "{:?}",
        answers[1]
    );
    assert_eq!(hints.len(), 2, "the two creates that committed");
    let findings = |conn: &Connection| -> Vec<String> {
        let mut stmt = conn
            .prepare(
                "SELECT policy || ' ' || report || ' ' || result || ' ' || severity || ' '
                        || subject_key || ' ' || first_seen_revision
                 FROM findings ORDER BY 1",
            )
            .expect("findings");
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        rows
    };
    let from_bodies = {
        let copy = dir.path().join("copy.db");
        conn.execute("VACUUM INTO ?1", [copy.to_str().expect("utf-8 path")])
            .expect("copy");
        let mut copy = schema::open_writer(&copy, Duration::from_secs(5)).expect("open copy");
        let step = crate::sqlite::indexer::step(&mut copy, 100, 1 << 20, &Hints::default());
        assert_eq!(step.expect("indexed from the bodies"), (2, true));
        findings(&copy)
    };
    assert_eq!(
        from_bodies,
        [
            "p0 a fail high Pod/ns/pod-0 1",
            "p1 a fail high Pod/ns/pod-1 1",
            "p2 b fail high Pod/ns/pod-0 2"
        ]
    );
    // Bodies that are not JSON: only the hints can give the findings.
    conn.execute_batch("UPDATE objects SET body = '{'")
        .expect("spoil the bodies");
    let step = crate::sqlite::indexer::step(&mut conn, 100, 1 << 20, &hints);
    assert_eq!(step.expect("indexed from the hints"), (2, true));
    assert_eq!(findings(&conn), from_bodies);
    assert_eq!(hints.len(), 0, "taken");
}

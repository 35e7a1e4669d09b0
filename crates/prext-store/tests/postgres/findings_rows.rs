//! The findings indexer derives a report's findings from its result rows while the change is
//! the report's newest write (`postgres/findings_rows.rs`), and from the body the change kept
//! otherwise: both must give exactly the findings SQLite's indexer derives from bodies.

use prext_store::findings::{Finding, FindingQuery};
use prext_store::testsuite::{fixtures, TempPostgres, TempSqlite};
use prext_store::{ObjectKey, ObjectWrite, Preconditions, Store};
use serde_json::{json, Value};

/// A result about `subject` (`[uid, kind, namespace, name]`, `None` leaves the field out).
fn result(
    policy: Option<&str>,
    rule: Option<&str>,
    result: &str,
    message: &str,
    subject: [Option<&str>; 4],
) -> Value {
    let mut resource = serde_json::Map::new();
    resource.insert("apiVersion".into(), json!("v1"));
    for (field, value) in ["uid", "kind", "namespace", "name"].iter().zip(subject) {
        if let Some(v) = value {
            resource.insert((*field).into(), json!(v));
        }
    }
    let mut r = json!({
        "source": "kyverno",
        "result": result,
        "severity": "high",
        "category": "cat",
        "message": message,
        "resources": [Value::Object(resource)],
    });
    if let Some(p) = policy {
        r["policy"] = json!(p);
    }
    if let Some(rule) = rule {
        r["rule"] = json!(rule);
    }
    r
}

fn report(name: &str, results: Vec<Value>) -> ObjectWrite {
    let mut w = fixtures::report(fixtures::POLR, "ns", name);
    w.body["results"] = Value::Array(results);
    fixtures::reindex(&mut w);
    w
}

/// Writes the same history to `store`; returns nothing, the findings tell.
async fn history(store: &dyn Store) {
    fn pod(name: &str) -> [Option<&str>; 4] {
        [None, Some("Pod"), Some("ns"), Some(name)]
    }
    // r1's first version is superseded before the indexer runs: its findings come from the
    // body its change kept. Its second version is current: from its result rows.
    let r1 = fixtures::create(
        store,
        report(
            "r1",
            vec![
                result(Some("p1"), Some("a"), "fail", "r1 first", pod("web")),
                result(Some("p2"), Some("a"), "warn", "r1 warn", pod("web")),
                result(Some("p3"), Some("a"), "pass", "r1 pass", pod("web")),
            ],
        ),
    )
    .await;
    store
        .update(
            report(
                "r1",
                vec![
                    result(Some("p1"), Some("a"), "error", "r1 again", pod("web")),
                    result(
                        Some("p4"),
                        Some("a"),
                        "fail",
                        "r1 new",
                        [Some("uid-1"), Some("Pod"), Some("ns"), Some("x")],
                    ),
                ],
            ),
            r1.revision,
        )
        .await
        .expect("update r1");
    // Keys that repeat (the first failing row by position wins), absent policy and rule, an
    // empty uid (the key is kind/namespace/name), a missing namespace, and policies whose
    // byte order differs from a linguistic collation's.
    fixtures::create(
        store,
        report(
            "r2",
            vec![
                result(Some("b"), Some("r"), "pass", "passing first", pod("api")),
                result(
                    Some("b"),
                    Some("r"),
                    "warn",
                    "second row, first failing",
                    pod("api"),
                ),
                result(Some("b"), Some("r"), "fail", "third row", pod("api")),
                result(Some("B"), Some("r"), "fail", "upper case", pod("api")),
                result(Some("\u{e4}"), Some("r"), "fail", "a umlaut", pod("api")),
                result(Some("a"), Some("R"), "error", "lower a", pod("api")),
                result(
                    None,
                    None,
                    "fail",
                    "no policy, no rule",
                    [Some(""), Some("Pod"), None, Some("n")],
                ),
                result(Some("p1"), Some("a"), "fail", "same key as r1's", pod("web")),
                result(Some("p5"), Some("a"), "skip", "skipped", pod("web")),
            ],
        ),
    )
    .await;
    // A report whose failing rows turn to pass (its findings resolve), and one deleted.
    let r3 = fixtures::create(
        store,
        report("r3", vec![result(Some("p6"), Some("a"), "fail", "r3", pod("db"))]),
    )
    .await;
    store
        .update(
            report(
                "r3",
                vec![result(Some("p6"), Some("a"), "pass", "r3 ok", pod("db"))],
            ),
            r3.revision,
        )
        .await
        .expect("update r3");
    fixtures::create(
        store,
        report(
            "r4",
            vec![result(Some("p7"), Some("a"), "fail", "r4", pod("cache"))],
        ),
    )
    .await;
    store
        .delete(
            &ObjectKey::new(fixtures::POLR, "ns", "r4"),
            Preconditions::default(),
        )
        .await
        .expect("delete r4");
}

/// Every finding in id order, without ids and times (the two stores ran at other moments).
async fn findings(store: &dyn Store) -> Vec<Finding> {
    let page = store
        .query_findings(FindingQuery {
            limit: 1000,
            ..FindingQuery::default()
        })
        .await
        .expect("findings");
    assert!(!page.more);
    page.items
        .into_iter()
        .map(|f| Finding {
            id: 0,
            first_seen: 0,
            last_seen: 0,
            resolved_at: f.resolved_at.map(|_| 0),
            ..f
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_from_result_rows_match_findings_from_bodies() {
    let sqlite = TempSqlite::new();
    let oracle = sqlite.open_sqlite().await;
    history(&*oracle).await;
    let want = findings(&*oracle).await;
    oracle.close().await;

    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    // The whole history waits for one indexer step: an outside session holds the cursor row.
    let mut admin = db.analyst_client().await;
    let tx = admin.transaction().await.expect("begin");
    tx.query(
        "SELECT revision FROM findings_cursor WHERE cluster = $1 FOR UPDATE",
        &[&db.options().cluster],
    )
    .await
    .expect("lock the cursor row");
    history(&*store).await;
    // Both paths are taken: r1's first change kept its body, r2's is its report's newest.
    let kept: i64 = tx
        .query_one(
            "SELECT count(*) FROM changes WHERE results_flag = 2 AND body IS NOT NULL AND event <> 'DELETED'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    let current: i64 = tx
        .query_one(
            "SELECT count(*) FROM changes WHERE results_flag = 2 AND body IS NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert!(kept >= 2 && current >= 2, "kept {kept}, current {current}");
    tx.rollback().await.expect("release");

    let got = findings(&*store).await;
    assert_eq!(got, want);
    assert!(got.len() >= 10, "{got:#?}");
    assert!(got.iter().any(|f| f.resolved_revision.is_some()));
    store.close().await;
}

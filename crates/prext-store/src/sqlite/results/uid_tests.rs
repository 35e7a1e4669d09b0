//! The subject's uid stored once per report (schema version 13): what a row stores, the plans
//! of a uid filter (searched in the two partial indexes, never a scan of the result rows), and
//! the two forms of its test (searched, or read on each row by the report-order walk) keeping
//! the same rows.

use prext_api::report::{ReportIndex, ResultRow, Subject};
use rusqlite::Connection;

use super::tests::plan;
use super::*;
use crate::sqlite::prepared::Prepared;
use crate::sqlite::{ops, schema, statistics};

/// Report `n` of namespace `ns`: its scope is the Pod `pod-{n}` (uid `u-{n}`, none when `n` is
/// a multiple of 7); of its 20 results the first 15 are about the scope, 3 about the Pod by
/// its own reference (same uid), one about a Pod without a uid and one about `other-{n}`.
fn report(ns: &str, n: usize) -> Prepared {
    let scope_uid = (!n.is_multiple_of(7)).then(|| format!("u-{n}"));
    let scope = Subject {
        kind: Some("Pod".into()),
        name: Some(format!("pod-{n}")),
        uid: scope_uid.clone(),
        ..Subject::default()
    };
    let results = (0..20)
        .map(|j| ResultRow {
            index: j,
            policy: Some(format!("p{}", j % 4)),
            result: Some(if j % 3 == 0 { "fail" } else { "pass" }.into()),
            subject: match j {
                0..=17 => scope.clone(),
                18 => Subject {
                    kind: Some("Pod".into()),
                    name: Some("loose".into()),
                    ..Subject::default()
                },
                _ => Subject {
                    uid: Some(format!("other-{n}")),
                    ..scope.clone()
                },
            },
            ..ResultRow::default()
        })
        .collect();
    Prepared::new(crate::ObjectWrite {
        key: crate::ObjectKey::new("policyreports.wgpolicyk8s.io", ns, format!("r{n:03}")),
        uid: format!("report-{n}"),
        labels: Default::default(),
        created: "2024-01-01T00:00:00Z".into(),
        deleting: false,
        body: serde_json::json!({"metadata": {"name": format!("r{n:03}")}}),
        index: ReportIndex {
            scope,
            results,
            ..ReportIndex::default()
        },
    })
    .expect("prepared")
}

/// 60 reports of 20 results, analyzed.
fn scoped() -> Connection {
    let mut conn = Connection::open_in_memory().expect("memory db");
    schema::migrate(&mut conn).expect("migrate");
    for n in 0..60 {
        let ns = if n % 2 == 0 { "a" } else { "b" };
        ops::create(&conn, report(ns, n), i64::try_from(n + 1).expect("small"), None).expect("create");
    }
    statistics::analyze(&conn).expect("analyze");
    conn
}

fn strings(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).expect(sql);
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("query");
    rows.collect::<rusqlite::Result<_>>().expect("rows")
}

#[test]
fn a_scope_uid_is_stored_once() {
    let conn = scoped();
    // Per report with a scope uid: 18 rows NULL, one empty BLOB, one TEXT; without one: 19
    // NULL (no uid either) and one TEXT.
    let stored = strings(
        &conn,
        "SELECT typeof(subject_uid) || ' ' || count(*) FROM results GROUP BY typeof(subject_uid) ORDER BY 1",
    );
    // Reports 0, 7, …, 56 (9 of 60) have no scope uid.
    assert_eq!(stored, ["blob 51", "null 1089", "text 60"]);
    let indexed: i64 = conn
        .query_row(
            "SELECT count(*) FROM results INDEXED BY results_subject_uid WHERE subject_uid IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(indexed, 111, "only the uids stored have an entry");
    // Every row reads back its subject's uid.
    let read = strings(
        &conn,
        &format!(
            "SELECT coalesce({SUBJECT_UID_SQL}, '-') FROM results AS r JOIN objects AS o ON o.id = r.object_id \
             WHERE o.name = 'r008' ORDER BY r.idx"
        ),
    );
    let mut want = vec!["u-8".to_owned(); 18];
    want.extend(["-".to_owned(), "other-8".to_owned()]);
    assert_eq!(read, want);
}

/// The rowids a filter keeps, its uid test written for the sorted read or for the walk.
fn kept(conn: &Connection, conditions: Vec<Condition>, indexes: Indexes) -> Vec<i64> {
    let filter = ResultFilter {
        namespace: None,
        conditions,
    };
    let p = lower(&filter, indexes).predicate(NumberForm::Probe);
    let sql = format!(
        "SELECT r.rowid FROM objects AS o CROSS JOIN results AS r ON r.object_id = o.id{} ORDER BY r.rowid",
        p.where_sql()
    );
    let mut stmt = conn.prepare(&sql).expect(&sql);
    let rows = stmt
        .query_map(rusqlite::params_from_iter(p.params.iter()), |r| r.get(0))
        .expect("query");
    rows.collect::<rusqlite::Result<_>>().expect("rows")
}

#[test]
fn both_forms_of_a_uid_test_keep_the_same_rows() {
    let conn = scoped();
    let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    for values in [
        set(&["u-8"]),
        set(&["u-8", "other-9", "u-14"]),
        set(&["other-7"]),
        set(&[""]),
        set(&["u-8", ""]),
        set(&["none"]),
    ] {
        for negated in [false, true] {
            let c = if negated {
                Condition::NotIn(ResultColumn::SubjectUid, values.clone())
            } else {
                Condition::In(ResultColumn::SubjectUid, values.clone())
            };
            let searched = kept(&conn, vec![c.clone()], Indexes::Use);
            let walked = kept(&conn, vec![c.clone()], Indexes::Avoid);
            assert_eq!(searched, walked, "{c:?}");
            let all: i64 = conn
                .query_row("SELECT count(*) FROM results", [], |r| r.get(0))
                .expect("count");
            let want = match (values.as_slice(), negated) {
                ([one], false) if one == "u-8" => 18,
                ([one], false) if one == "other-7" => 1,
                // Report 14 has no scope uid: `u-14` is no one's.
                (three, false) if three.len() == 3 => 18 + 1,
                ([one], false) if one.is_empty() => 51 + 9 * 19,
                (two, false) if two.len() == 2 => 18 + 51 + 9 * 19,
                (_, false) => 0,
                (_, true) => {
                    all - kept(
                        &conn,
                        vec![Condition::In(ResultColumn::SubjectUid, values.clone())],
                        Indexes::Use,
                    )
                    .len() as i64
                }
            };
            assert_eq!(searched.len() as i64, want, "{c:?}");
        }
    }
}

#[test]
fn a_uid_filter_searches_both_partial_indexes() {
    let conn = scoped();
    let filter = ResultFilter {
        namespace: None,
        conditions: vec![Condition::In(
            ResultColumn::SubjectUid,
            vec!["u-8".into(), "other-9".into()],
        )],
    };
    let lowered = lower(&filter, Indexes::Use);
    assert!(!lowered.needs_report, "the search needs no report row");
    let p = lowered.predicate(lowered.number_form());
    let count = format!("SELECT count(*) FROM results AS r{}", p.where_sql());
    let page = format!(
        "SELECT {RECORD_COLUMNS} FROM results AS r JOIN objects AS o ON o.id = r.object_id{} ORDER BY {} LIMIT 51",
        p.where_sql(),
        sorted_order_by(ResultOrder::Report)
    );
    for sql in [count, page] {
        let plan = plan(&conn, &sql, &p.params);
        assert!(plan.contains("results_subject_uid (subject_uid=?)"), "{plan}");
        assert!(plan.contains("objects_scope_uid (scope_uid=?)"), "{plan}");
        assert!(!plan.contains("SCAN r\n") && !plan.ends_with("SCAN r"), "{plan}");
        assert!(!plan.contains("SCAN results"), "{plan}");
    }
}

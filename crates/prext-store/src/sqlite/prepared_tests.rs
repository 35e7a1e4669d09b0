//! Tests of the prepared form: numeric properties agree with the SQL that schema version 2's
//! trigger ran, counts group like its counting trigger, and the digest tells rows apart.

use std::collections::BTreeMap;

use prext_api::report::ReportIndex;
use rusqlite::Connection;
use serde_json::json;

use super::*;
use crate::ObjectKey;

/// What version 2's `results_numbers_insert` trigger made of a text property value.
fn sqlite_number(conn: &Connection, text: &str) -> Option<f64> {
    conn.query_row(
        "SELECT CASE WHEN json_valid(?1) AND json_type(?1) IN ('integer', 'real')
                     THEN CAST(?1 AS REAL) END",
        [text],
        |r| r.get(0),
    )
    .expect("evaluate")
}

#[test]
fn text_numbers_agree_with_the_sql_trigger() {
    let conn = Connection::open_in_memory().expect("memory db");
    let cases = [
        "8",
        "9.8",
        "-3",
        "0",
        "-0",
        "0.0",
        "1e5",
        "1E+2",
        "2e-3",
        "-1.5e-3",
        " 8 ",
        "\t7\n",
        "\r\n6 ",
        "99999999999999999999",
        "1e999",
        "08",
        "+1",
        ".5",
        "5.",
        "1e",
        "1e+",
        "-",
        "",
        " ",
        "0x10",
        "NaN",
        "Infinity",
        "-Infinity",
        "abc",
        "\"8\"",
        "8 8",
        "[8]",
        "{}",
        "true",
        "null",
        "1_000",
        "１",
        "8\u{a0}",
        "\u{b}8",
        "--1",
        "1.2.3",
        "00",
        "-01",
    ];
    for text in cases {
        let want = sqlite_number(&conn, text);
        let got = number(&Value::String(text.to_owned()));
        assert_eq!(
            got.map(f64::to_bits),
            want.map(f64::to_bits),
            "property value {text:?}: prext {got:?}, SQL {want:?}"
        );
    }
}

#[test]
fn json_numbers_count_and_other_values_do_not() {
    assert_eq!(number(&json!(7)), Some(7.0));
    assert_eq!(number(&json!(-2.5)), Some(-2.5));
    assert_eq!(number(&json!(u64::MAX)), Some(u64::MAX as f64));
    for v in [json!(true), json!(null), json!([1]), json!({"a": 1})] {
        assert_eq!(number(&v), None, "{v}");
    }
}

fn row(index: i64, result: Option<&str>, severity: Option<&str>, props: Value) -> ResultRow {
    ResultRow {
        index,
        source: Some("kyverno".into()),
        policy: Some(format!("p{index}")),
        result: result.map(str::to_owned),
        severity: severity.map(str::to_owned),
        properties: props,
        resources: json!([]),
        ..ResultRow::default()
    }
}

fn prepare(results: Vec<ResultRow>) -> Prepared {
    Prepared::new(crate::ObjectWrite {
        key: ObjectKey::new("policyreports.wgpolicyk8s.io", "ns", "r"),
        uid: "u".into(),
        labels: BTreeMap::from([("a".to_owned(), "b".to_owned())]),
        created: "2024-05-01T10:00:00Z".into(),
        deleting: false,
        body: json!({"metadata": {"name": "r"}}),
        index: ReportIndex {
            results,
            ..ReportIndex::default()
        },
    })
    .expect("prepared")
}

#[test]
fn numbers_and_counts_per_report() {
    let p = prepare(vec![
        row(
            0,
            Some("fail"),
            Some("high"),
            json!({"score": "9.8", "pkg": "openssl", "n": 3}),
        ),
        row(1, Some("fail"), Some("high"), json!({})),
        row(2, None, None, json!({"score": "n/a"})),
    ]);
    assert_eq!(p.labels, r#"{"a":"b"}"#);
    assert_eq!(
        p.results[0].numbers,
        [("score".to_owned(), 9.8), ("n".to_owned(), 3.0)]
    );
    assert!(p.results[1].numbers.is_empty() && p.results[2].numbers.is_empty());
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        p.counts,
        [(s("", "", "kyverno"), 1), (s("fail", "high", "kyverno"), 2)]
    );
    assert!(prepare(vec![]).counts.is_empty());
}

#[test]
fn the_digest_follows_every_column() {
    let base = || row(0, Some("fail"), Some("high"), json!({"score": "9"}));
    let digest_of = |r: ResultRow| prepare(vec![r]).head.results_digest;
    let d = digest_of(base());
    assert_eq!(d, digest_of(base()), "stable");
    assert_ne!(d, prepare(vec![]).head.results_digest);
    assert_ne!(d, prepare(vec![base(), base()]).head.results_digest);
    let changes: Vec<fn(&mut ResultRow)> = vec![
        |r| r.index = 1,
        |r| r.policy = None,
        |r| r.rule = Some(String::new()),
        |r| r.result = Some("pass".into()),
        |r| r.severity = None,
        |r| r.category = Some("c".into()),
        |r| r.source = Some("kyvernO".into()),
        |r| r.scored = Some(false),
        |r| r.message = Some("m".into()),
        |r| r.timestamp = Some(0),
        |r| r.properties = json!({"score": "9.0"}),
        |r| r.resources = json!([{"kind": "Pod"}]),
        |r| r.subject.kind = Some("Pod".into()),
        |r| r.subject.uid = Some(String::new()),
    ];
    for (i, change) in changes.into_iter().enumerate() {
        let mut r = base();
        change(&mut r);
        assert_ne!(digest_of(r), d, "change {i} is seen");
    }
    // Field boundaries are part of the encoding.
    let mut a = base();
    a.policy = Some("ab".into());
    a.rule = Some("c".into());
    let mut b = base();
    b.policy = Some("a".into());
    b.rule = Some("bc".into());
    assert_ne!(digest_of(a), digest_of(b));
}

//! Conformance under hostile input: what a request can put into a query or a write must be
//! treated as data by every backend, never as part of an expression, and answer the documented
//! semantics instead of an error.
//!
//! These checks are listed in [`super::RESULT_CHECKS`].

use serde_json::json;

use super::fixtures::{self, create, POLR};
use super::results::matches;
use crate::results::{Compare, Condition, PropertyTest, ResultFilter, ResultQuery};
use crate::Store;

/// Property keys that mean something in a JSON path or in SQL, or that are hard to quote.
const KEYS: &[&str] = &[
    "\\",
    "\\=1",
    "a\"b",
    "\"",
    "$.x",
    "a.b",
    "[0]",
    "x'); DROP TABLE results; --",
    "tab\there",
    "é",
    "*",
    "",
];

/// `policyresults?property=KEY…`: a property key is looked up as data on every backend (one
/// of a backslash was a "bad JSON path" 500 on SQLite).
pub async fn property_keys_are_data(store: &dyn Store) {
    let mut w = fixtures::report(POLR, "a", "keys");
    w.body["results"] = KEYS
        .iter()
        .enumerate()
        .map(|(i, key)| {
            json!({
                "policy": format!("p{i}"), "rule": "r", "result": "fail", "source": "s",
                "properties": {*key: format!("{i}"), "other": "x"},
            })
        })
        .collect();
    fixtures::reindex(&mut w);
    create(store, w).await;
    let all = store
        .query_results(ResultQuery {
            limit: 100,
            ..ResultQuery::default()
        })
        .await
        .expect("every result");
    assert_eq!(all.items.len(), KEYS.len());
    for (i, key) in KEYS.iter().enumerate() {
        let tests = [
            PropertyTest::Exists,
            PropertyTest::Missing,
            PropertyTest::In(vec![i.to_string()]),
            PropertyTest::NotIn(vec![i.to_string()]),
            PropertyTest::Number(Compare::GreaterOrEqual, i as f64),
        ];
        for test in tests {
            let filter = ResultFilter {
                namespace: None,
                conditions: vec![Condition::Property {
                    key: (*key).to_owned(),
                    test,
                }],
            };
            let want: Vec<i64> = all
                .items
                .iter()
                .filter(|r| matches(&filter, r))
                .map(|r| r.index)
                .collect();
            let page = store
                .query_results(ResultQuery {
                    filter: filter.clone(),
                    limit: 100,
                    count: true,
                    ..ResultQuery::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{filter:?}: {e}"));
            let got: Vec<i64> = page.items.iter().map(|r| r.index).collect();
            assert_eq!(got, want, "{filter:?}");
            assert_eq!(page.total, Some(want.len() as u64), "count of {filter:?}");
        }
    }
}

/// Deleting a report with many results next to a report with a 1 MiB result message (stored
/// just before it) removes exactly its rows. On SQLite's version 3 schema (a WITHOUT ROWID result
/// table) such a delete read the large row for every key comparison and took tens of seconds,
/// holding the single writer.
pub async fn deletes_next_to_large_results(store: &dyn Store) {
    let mut big = fixtures::report(POLR, "a", "big");
    big.body["results"] = json!([{
        "policy": "p", "rule": "r", "result": "fail", "source": "s",
        "message": "m".repeat(1 << 20),
    }]);
    fixtures::reindex(&mut big);
    create(store, big).await;
    let mut many = fixtures::report(POLR, "a", "many");
    many.body["results"] = (0..2_000)
        .map(|i| json!({"policy": format!("p{i}"), "rule": "r", "result": "pass", "source": "s"}))
        .collect();
    fixtures::reindex(&mut many);
    let key = many.key.clone();
    create(store, many).await;
    store
        .delete(&key, crate::Preconditions::default())
        .await
        .expect("delete");
    let left = store
        .query_results(ResultQuery {
            limit: 10,
            count: true,
            ..ResultQuery::default()
        })
        .await
        .expect("results");
    assert_eq!(left.total, Some(1));
    assert_eq!(left.items[0].report, "big");
    assert_eq!(left.items[0].message.as_deref().map(str::len), Some(1 << 20));
}

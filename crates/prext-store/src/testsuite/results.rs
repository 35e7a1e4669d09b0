//! Conformance of result queries ([`Store::query_results`], [`Store::summarize_results`]):
//! every backend must agree with the semantics documented on [`crate::results`], which this
//! module also states as plain Rust ([`matches`]) and uses as the oracle.
//!
//! These checks are listed in [`super::RESULT_CHECKS`] and run by [`super::run_results`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::fixtures::{self, create, CPOLR, POLR, REPS};
use crate::results::{
    severity_rank, Compare, Condition, PropertyTest, ResultColumn, ResultFilter, ResultOrder, ResultQuery,
    ResultRecord, SummaryQuery,
};
use crate::{ObjectKey, ObjectWrite, Preconditions, Store};

/// One result of a test report: `(policy, result, severity, score, message)`.
type Spec<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, &'a str);

/// A report with these results, each about its own Pod (the last one about nothing).
fn report(resource: &str, namespace: &str, name: &str, results: &[Spec<'_>]) -> ObjectWrite {
    let mut w = fixtures::report(resource, namespace, name);
    w.body["results"] = results
        .iter()
        .enumerate()
        .map(|(i, (policy, result, severity, score, message))| {
            let mut r = json!({
                "source": if i % 2 == 0 { "kyverno" } else { "trivy" },
                "policy": policy, "rule": format!("rule-{i}"), "result": result, "message": message,
                "timestamp": {"seconds": 1_714_557_600 + (i as i64 * 7 + name.len() as i64) % 5, "nanos": 0},
                "properties": {"pkg": "openssl"},
            });
            if let Some(s) = severity {
                r["severity"] = json!(s);
            }
            if let Some(s) = score {
                r["properties"]["score"] = json!(s);
            }
            if i + 1 < results.len() {
                r["resources"] = json!([{"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": format!("pod-{i}")}]);
            }
            r
        })
        .collect();
    fixtures::reindex(&mut w);
    w
}

/// The reports every check starts from: two namespaces, a second kind, a cluster report.
pub(super) async fn load(store: &dyn Store) {
    let reports = [
        report(
            POLR,
            "a",
            "web",
            &[
                ("p1", "fail", Some("high"), Some("9.8"), "CVE in openssl 100%"),
                ("p2", "pass", None, None, "ok"),
                (
                    "p1",
                    "fail",
                    Some("critical"),
                    Some("7"),
                    "Privilege escalation_allowed",
                ),
            ],
        ),
        report(
            POLR,
            "a",
            "api",
            &[
                ("p3", "warn", Some("low"), Some("n/a"), "warned"),
                ("p1", "fail", Some("high"), Some("8"), "again"),
            ],
        ),
        report(
            REPS,
            "a",
            "web",
            &[("p4", "error", Some("medium"), Some("4.5"), "broken")],
        ),
        report(
            POLR,
            "b",
            "db",
            &[
                ("p1", "skip", Some("info"), None, "skipped"),
                ("p2", "fail", Some("HIGH"), Some("10"), "upper"),
            ],
        ),
        report(
            CPOLR,
            "",
            "cluster",
            &[("p5", "fail", Some("critical"), Some("9.1"), "cluster wide")],
        ),
    ];
    for w in reports {
        create(store, w).await;
    }
}

/// The value of a column, a missing one as `""` (the documented semantics).
pub(super) fn value(r: &ResultRecord, c: ResultColumn) -> String {
    let v = match c {
        ResultColumn::Result => r.result.clone(),
        ResultColumn::Severity => r.severity.clone(),
        ResultColumn::Policy => r.policy.clone(),
        ResultColumn::Rule => r.rule.clone(),
        ResultColumn::Category => r.category.clone(),
        ResultColumn::Source => r.source.clone(),
        ResultColumn::Namespace => Some(r.namespace.clone()),
        ResultColumn::Resource => Some(r.resource.clone()),
        ResultColumn::Report => Some(r.report.clone()),
        ResultColumn::SubjectApiVersion => r.subject_api_version.clone(),
        ResultColumn::SubjectKind => r.subject_kind.clone(),
        ResultColumn::SubjectNamespace => r.subject_namespace.clone(),
        ResultColumn::SubjectName => r.subject_name.clone(),
        ResultColumn::SubjectUid => r.subject_uid.clone(),
    };
    v.unwrap_or_default()
}

/// Whether `r` satisfies `filter`: the documented semantics as plain Rust.
pub fn matches(filter: &ResultFilter, r: &ResultRecord) -> bool {
    if filter.namespace.as_ref().is_some_and(|ns| *ns != r.namespace) {
        return false;
    }
    let properties: Value = serde_json::from_str(&r.properties).unwrap_or_default();
    filter.conditions.iter().all(|c| match c {
        Condition::In(col, values) => values.contains(&value(r, *col)),
        Condition::NotIn(col, values) => !values.contains(&value(r, *col)),
        Condition::MessageContains(text) => r
            .message
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase()
            .contains(&text.to_ascii_lowercase()),
        Condition::Index(i) => r.index == *i,
        Condition::Property { key, test } => {
            let v = properties.get(key).and_then(Value::as_str);
            match test {
                PropertyTest::Exists => v.is_some(),
                PropertyTest::Missing => v.is_none(),
                PropertyTest::In(values) => v.is_some_and(|v| values.iter().any(|x| x == v)),
                PropertyTest::NotIn(values) => !v.is_some_and(|v| values.iter().any(|x| x == v)),
                PropertyTest::Number(op, bound) => v
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .is_some_and(|n| op.holds(n, *bound)),
            }
        }
    })
}

/// The documented order of `order` as a comparator.
pub fn compare(order: ResultOrder, a: &ResultRecord, b: &ResultRecord) -> Ordering {
    let tail = |a: &ResultRecord, b: &ResultRecord| {
        (&a.namespace, &a.report, &a.resource, a.index).cmp(&(&b.namespace, &b.report, &b.resource, b.index))
    };
    let lead = match order {
        ResultOrder::Report => Ordering::Equal,
        ResultOrder::Severity { ascending } => {
            let o = severity_rank(a.severity.as_deref()).cmp(&severity_rank(b.severity.as_deref()));
            if ascending {
                o
            } else {
                o.reverse()
            }
        }
        ResultOrder::Timestamp { ascending } => {
            let o = a
                .timestamp
                .unwrap_or(i64::MIN)
                .cmp(&b.timestamp.unwrap_or(i64::MIN));
            if ascending {
                o
            } else {
                o.reverse()
            }
        }
    };
    lead.then_with(|| tail(a, b))
}

async fn query(store: &dyn Store, q: ResultQuery) -> crate::results::ResultPage {
    store
        .query_results(q.clone())
        .await
        .unwrap_or_else(|e| panic!("query {q:?}: {e}"))
}

pub(super) async fn everything(store: &dyn Store) -> Vec<ResultRecord> {
    let page = query(
        store,
        ResultQuery {
            limit: 1000,
            count: true,
            ..ResultQuery::default()
        },
    )
    .await;
    assert!(!page.more);
    assert_eq!(page.total, Some(page.items.len() as u64));
    page.items
}

fn key(r: &ResultRecord) -> String {
    format!("{}/{}/{}/{}", r.resource, r.namespace, r.report, r.index)
}

pub(super) fn filters() -> Vec<ResultFilter> {
    use Condition::*;
    use ResultColumn as C;
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let prop = |key: &str, test| Property {
        key: key.into(),
        test,
    };
    let one = |c| ResultFilter {
        namespace: None,
        conditions: vec![c],
    };
    vec![
        ResultFilter::default(),
        ResultFilter {
            namespace: Some("a".into()),
            conditions: vec![],
        },
        ResultFilter {
            namespace: Some(String::new()),
            conditions: vec![],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![
                In(C::Result, s(&["fail"])),
                In(C::Severity, s(&["high", "critical"])),
            ],
        },
        one(In(C::Severity, s(&[""]))),
        one(NotIn(C::Severity, s(&["high", "critical"]))),
        one(NotIn(C::Severity, s(&["", "info"]))),
        one(In(C::Resource, s(&[REPS, CPOLR]))),
        one(In(C::Report, s(&["web"]))),
        one(In(C::SubjectKind, s(&[""]))),
        one(In(C::SubjectName, s(&["pod-0"]))),
        one(In(C::Source, s(&["trivy"]))),
        one(In(C::Policy, vec![])),
        one(MessageContains("100%".into())),
        one(MessageContains("ESCALATION_".into())),
        one(MessageContains("n_a".into())),
        one(Index(1)),
        one(prop("score", PropertyTest::Number(Compare::GreaterOrEqual, 8.0))),
        one(prop("score", PropertyTest::Number(Compare::Less, 8.0))),
        one(prop("score", PropertyTest::Number(Compare::Greater, 9.8))),
        one(prop("score", PropertyTest::Number(Compare::LessOrEqual, 4.5))),
        one(prop("score", PropertyTest::Exists)),
        one(prop("score", PropertyTest::Missing)),
        one(prop("score", PropertyTest::In(s(&["n/a", "8"])))),
        one(prop("score", PropertyTest::NotIn(s(&["n/a"])))),
        ResultFilter {
            namespace: Some("a".into()),
            conditions: vec![
                NotIn(C::Result, s(&["pass"])),
                prop("pkg", PropertyTest::In(s(&["openssl"]))),
            ],
        },
        // A source with a numeric range (the range is narrowed to the source's reports).
        ResultFilter {
            namespace: None,
            conditions: vec![
                In(C::Source, s(&["trivy"])),
                prop("score", PropertyTest::Number(Compare::GreaterOrEqual, 8.0)),
            ],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![
                prop("score", PropertyTest::Number(Compare::Greater, 4.0)),
                In(C::Source, s(&["kyverno", "nobody"])),
                In(C::Severity, s(&["high", "critical"])),
            ],
        },
        // A numeric range with conditions on the result and the severity, which the number
        // rows hold beside each number (tested inside the range's index), a missing severity
        // included.
        ResultFilter {
            namespace: None,
            conditions: vec![
                prop("score", PropertyTest::Number(Compare::GreaterOrEqual, 4.0)),
                In(C::Severity, s(&["high", ""])),
            ],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![
                NotIn(C::Result, s(&["pass"])),
                prop("score", PropertyTest::Number(Compare::Less, 9.9)),
                NotIn(C::Severity, s(&["critical"])),
            ],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![
                In(C::Severity, s(&["medium", "low"])),
                prop("score", PropertyTest::Number(Compare::GreaterOrEqual, 8.0)),
            ],
        },
        ResultFilter {
            namespace: Some("a".into()),
            conditions: vec![
                prop("score", PropertyTest::Number(Compare::Greater, 0.0)),
                NotIn(C::Severity, s(&[""])),
                In(C::Result, s(&["fail", "warn"])),
            ],
        },
        // A source with a message test (the scan is narrowed to the source's reports).
        ResultFilter {
            namespace: None,
            conditions: vec![MessageContains("A".into()), In(C::Source, s(&["trivy"]))],
        },
        // Conditions that contradict each other (answered without SQL), and some that only
        // look alike.
        ResultFilter {
            namespace: None,
            conditions: vec![
                In(C::Severity, s(&["critical"])),
                In(C::Severity, s(&["medium", "low"])),
            ],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![
                In(C::Severity, s(&["high", "critical"])),
                NotIn(C::Severity, s(&["high", "critical"])),
            ],
        },
        ResultFilter {
            namespace: Some("a".into()),
            conditions: vec![In(C::Namespace, s(&["b"]))],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![
                prop("score", PropertyTest::Number(Compare::GreaterOrEqual, 8.0)),
                prop("score", PropertyTest::Number(Compare::Less, 8.0)),
            ],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![Index(0), Index(1)],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![
                In(C::Severity, s(&["high", "critical"])),
                NotIn(C::Severity, s(&["critical"])),
            ],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![
                prop("score", PropertyTest::Number(Compare::GreaterOrEqual, 8.0)),
                prop("score", PropertyTest::Number(Compare::LessOrEqual, 8.0)),
            ],
        },
        // Several bounds of one property (one probe of its numbers on PostgreSQL), with the
        // result beside them and a string test of the same property.
        ResultFilter {
            namespace: None,
            conditions: vec![
                prop("score", PropertyTest::Number(Compare::Greater, 4.0)),
                In(C::Result, s(&["fail", "warn"])),
                prop("score", PropertyTest::Number(Compare::Less, 9.9)),
                prop("score", PropertyTest::NotIn(s(&["7"]))),
                prop("score", PropertyTest::Number(Compare::GreaterOrEqual, 4.5)),
            ],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![
                prop("score", PropertyTest::Number(Compare::GreaterOrEqual, f64::NAN)),
                prop("score", PropertyTest::Number(Compare::GreaterOrEqual, 1.0)),
            ],
        },
    ]
}

/// Every filter selects what the documented semantics select, and counts it.
pub async fn result_filters(store: &dyn Store) {
    load(store).await;
    let all = everything(store).await;
    assert_eq!(all.len(), 9);
    for filter in filters() {
        let want: Vec<String> = all.iter().filter(|r| matches(&filter, r)).map(key).collect();
        let page = query(
            store,
            ResultQuery {
                filter: filter.clone(),
                limit: 100,
                count: true,
                ..ResultQuery::default()
            },
        )
        .await;
        let got: Vec<String> = page.items.iter().map(key).collect();
        assert_eq!(got, want, "{filter:?}");
        assert_eq!(page.total, Some(want.len() as u64), "count of {filter:?}");
    }
}

/// Pages of every size, in every order, give the documented order without gaps or repeats.
pub async fn result_pages_and_orders(store: &dyn Store) {
    load(store).await;
    let all = everything(store).await;
    let orders = [
        ResultOrder::Report,
        ResultOrder::Severity { ascending: false },
        ResultOrder::Severity { ascending: true },
        ResultOrder::Timestamp { ascending: false },
        ResultOrder::Timestamp { ascending: true },
    ];
    for order in orders {
        let mut want = all.clone();
        want.sort_by(|a, b| compare(order, a, b));
        let want: Vec<String> = want.iter().map(key).collect();
        for limit in [1, 2, 4, 100] {
            let mut got = Vec::new();
            let mut after = None;
            loop {
                let page = query(
                    store,
                    ResultQuery {
                        order,
                        limit,
                        after: after.clone(),
                        ..ResultQuery::default()
                    },
                )
                .await;
                assert!(page.items.len() <= limit);
                got.extend(page.items.iter().map(key));
                match (page.more, page.items.last()) {
                    (true, Some(last)) => after = Some(last.cursor(order)),
                    (true, None) => panic!("an empty page announced more"),
                    (false, _) => break,
                }
            }
            assert_eq!(got, want, "{order:?}, pages of {limit}");
        }
    }
}

/// Summaries count what the filter keeps, per group.
pub async fn result_summaries(store: &dyn Store) {
    load(store).await;
    let all = everything(store).await;
    let groupings = [
        vec![],
        vec![
            ResultColumn::Namespace,
            ResultColumn::Result,
            ResultColumn::Severity,
        ],
        vec![ResultColumn::Policy],
        vec![ResultColumn::Resource, ResultColumn::Result],
        vec![ResultColumn::Severity, ResultColumn::SubjectKind],
        vec![ResultColumn::Source, ResultColumn::Namespace],
    ];
    for filter in filters().into_iter().take(6) {
        for group_by in &groupings {
            let mut want: BTreeMap<Vec<Option<String>>, u64> = BTreeMap::new();
            for r in all.iter().filter(|r| matches(&filter, r)) {
                let keys = group_by
                    .iter()
                    .map(|c| Some(value(r, *c)).filter(|v| !v.is_empty() || !nullable(*c)))
                    .collect();
                *want.entry(keys).or_insert(0) += 1;
            }
            let got = store
                .summarize_results(SummaryQuery {
                    filter: filter.clone(),
                    group_by: group_by.clone(),
                    page: None,
                })
                .await
                .unwrap_or_else(|e| panic!("summary: {e}"));
            let got: BTreeMap<Vec<Option<String>>, u64> =
                got.rows.into_iter().map(|r| (r.keys, r.count)).collect();
            if want.is_empty() && group_by.is_empty() {
                assert_eq!(got.values().sum::<u64>(), 0, "{filter:?} by {group_by:?}");
                continue;
            }
            assert_eq!(got, want, "{filter:?} by {group_by:?}");
        }
    }
}

fn nullable(c: ResultColumn) -> bool {
    !matches!(
        c,
        ResultColumn::Namespace | ResultColumn::Resource | ResultColumn::Report
    )
}

/// Queries follow updates and deletes of reports, numeric properties included.
pub async fn result_queries_follow_writes(store: &dyn Store) {
    load(store).await;
    let high = ResultFilter {
        namespace: None,
        conditions: vec![Condition::Property {
            key: "score".into(),
            test: PropertyTest::Number(Compare::GreaterOrEqual, 9.5),
        }],
    };
    let count = |filter: ResultFilter| async move {
        query(
            store,
            ResultQuery {
                filter,
                limit: 100,
                count: true,
                ..ResultQuery::default()
            },
        )
        .await
        .total
    };
    assert_eq!(count(high.clone()).await, Some(2), "9.8 and 10");
    let key = ObjectKey::new(POLR, "b", "db");
    let current = store.get(&key).await.ok().flatten().expect("db exists");
    let w = report(
        POLR,
        "b",
        "db",
        &[("p1", "skip", Some("info"), Some("1.0"), "now low")],
    );
    store
        .update(w, current.revision)
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!(
        count(high.clone()).await,
        Some(1),
        "the updated report's 10 is gone"
    );
    store
        .delete(&ObjectKey::new(POLR, "a", "web"), Preconditions::default())
        .await
        .expect("delete");
    assert_eq!(count(high).await, Some(0));
    let page = query(
        store,
        ResultQuery {
            limit: 100,
            ..ResultQuery::default()
        },
    )
    .await;
    assert_eq!(
        page.items.len(),
        5,
        "2 (api) + 1 (reps web) + 1 (db) + 1 (cluster)"
    );
    assert_eq!(page.revision, fixtures::revision(store).await);
}

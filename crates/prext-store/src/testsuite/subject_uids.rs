//! Conformance of the subject's uid in result queries, whatever a backend stores for it (SQLite
//! leaves out a uid that is the report's scope uid, schema version 13): results about their
//! report's scope, about another resource with the scope's uid, without a uid while the scope
//! has one, with an empty uid, with another report's scope uid, in a report without a scope,
//! and a report whose scope's uid changes while its results stay the same.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::fixtures::{self, create, POLR};
use super::results::{everything, matches, value};
use crate::results::{
    Condition, GroupPage, GroupRank, ResultColumn, ResultFilter, ResultQuery, ResultRecord, SummaryQuery,
};
use crate::{ObjectWrite, Store};

/// A report `namespace/name` about `scope` (none when `Null`) whose results have these
/// `resources` (none when `Null`), each failing or passing in turn.
fn report(namespace: &str, name: &str, scope: Value, resources: &[Value]) -> ObjectWrite {
    let mut w = fixtures::report(POLR, namespace, name);
    if scope.is_null() {
        if let Some(body) = w.body.as_object_mut() {
            body.remove("scope");
        }
    } else {
        w.body["scope"] = scope;
    }
    w.body["results"] = resources
        .iter()
        .enumerate()
        .map(|(i, res)| {
            let mut r = json!({
                "source": "kyverno", "policy": format!("p{}", i % 2), "rule": "r",
                "result": if i % 2 == 0 { "fail" } else { "pass" }, "severity": "high",
            });
            if !res.is_null() {
                r["resources"] = json!([res]);
            }
            r
        })
        .collect();
    fixtures::reindex(&mut w);
    w
}

fn pod(name: &str, uid: Option<&str>) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "namespace": "a", "name": name});
    if let Some(uid) = uid {
        p["uid"] = json!(uid);
    }
    p
}

/// The reports of the check: `(write, the uid of each result's subject)`.
fn reports() -> Vec<ObjectWrite> {
    vec![
        report(
            "a",
            "scoped",
            pod("p", Some("u-p")),
            &[
                Value::Null,
                pod("p", Some("u-p")),
                pod("q", None),
                pod("r", Some("u-r")),
                pod("e", Some("")),
            ],
        ),
        report(
            "a",
            "other",
            pod("r", Some("u-r")),
            &[Value::Null, pod("p", Some("u-p"))],
        ),
        report(
            "b",
            "unscoped",
            Value::Null,
            &[Value::Null, pod("p", Some("u-p"))],
        ),
        report(
            "b",
            "moving",
            pod("s", Some("u-s")),
            &[pod("s", Some("u-s")), pod("x", None)],
        ),
    ]
}

/// The subject uids the written reports hold, by (report, index), from their index.
fn written_uids(writes: &[ObjectWrite]) -> BTreeMap<(String, i64), Option<String>> {
    writes
        .iter()
        .flat_map(|w| {
            w.index
                .results
                .iter()
                .map(|r| ((w.key.name.clone(), r.index), r.subject.uid.clone()))
        })
        .collect()
}

fn record_uids(records: &[ResultRecord]) -> BTreeMap<(String, i64), Option<String>> {
    records
        .iter()
        .map(|r| ((r.report.clone(), r.index), r.subject_uid.clone()))
        .collect()
}

fn uid_filters() -> Vec<ResultFilter> {
    let sets: [&[&str]; 8] = [
        &["u-p"],
        &["u-r"],
        &[""],
        &["u-p", "u-r"],
        &["u-p", ""],
        &["u-s"],
        &["u-t"],
        &["nope"],
    ];
    let mut out = Vec::new();
    for set in sets {
        let values: Vec<String> = set.iter().map(|v| (*v).to_owned()).collect();
        for negated in [false, true] {
            let c = if negated {
                Condition::NotIn(ResultColumn::SubjectUid, values.clone())
            } else {
                Condition::In(ResultColumn::SubjectUid, values.clone())
            };
            out.push(ResultFilter {
                namespace: None,
                conditions: vec![c.clone()],
            });
            out.push(ResultFilter {
                namespace: Some("a".into()),
                conditions: vec![c.clone()],
            });
            out.push(ResultFilter {
                namespace: None,
                conditions: vec![c, Condition::In(ResultColumn::Result, vec!["fail".into()])],
            });
        }
    }
    out
}

/// Every uid filter finds what the records say, and every summary by uid counts them.
async fn check_queries(store: &dyn Store, all: &[ResultRecord]) {
    let key = |r: &ResultRecord| format!("{}/{}/{}", r.namespace, r.report, r.index);
    for filter in uid_filters() {
        let want: Vec<String> = all.iter().filter(|r| matches(&filter, r)).map(key).collect();
        let page = store
            .query_results(ResultQuery {
                filter: filter.clone(),
                limit: 100,
                count: true,
                ..ResultQuery::default()
            })
            .await
            .unwrap_or_else(|e| panic!("query {filter:?}: {e}"));
        let got: Vec<String> = page.items.iter().map(key).collect();
        assert_eq!(got, want, "{filter:?}");
        assert_eq!(page.total, Some(want.len() as u64), "count of {filter:?}");
    }
    let groupings = [
        vec![ResultColumn::SubjectUid],
        vec![
            ResultColumn::SubjectUid,
            ResultColumn::Result,
            ResultColumn::Severity,
        ],
        vec![ResultColumn::Namespace, ResultColumn::SubjectUid],
        vec![ResultColumn::Result, ResultColumn::SubjectUid],
    ];
    let filters = [ResultFilter::default(), uid_filters().swap_remove(3)];
    for filter in &filters {
        for group_by in &groupings {
            let mut want: BTreeMap<Vec<String>, u64> = BTreeMap::new();
            for r in all.iter().filter(|r| matches(filter, r)) {
                *want
                    .entry(group_by.iter().map(|c| value(r, *c)).collect())
                    .or_insert(0) += 1;
            }
            let s = store
                .summarize_results(SummaryQuery {
                    filter: filter.clone(),
                    group_by: group_by.clone(),
                    page: None,
                })
                .await
                .unwrap_or_else(|e| panic!("summary: {e}"));
            let mut got: BTreeMap<Vec<String>, u64> = BTreeMap::new();
            for row in s.rows {
                let keys = row.keys.into_iter().map(Option::unwrap_or_default).collect();
                *got.entry(keys).or_insert(0) += row.count;
            }
            assert_eq!(got, want, "{filter:?} by {group_by:?}");
        }
    }
    // Groups ranked by their failures, a page of one at a time.
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for r in all.iter().filter(|r| r.result.as_deref() == Some("fail")) {
        let uid = value(r, ResultColumn::SubjectUid);
        if !uid.is_empty() {
            *want.entry(uid).or_insert(0) += 1;
        }
    }
    let mut want: Vec<(String, u64)> = want.into_iter().collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut got = Vec::new();
    let mut after = None;
    for _ in 0..=all.len() {
        let s = store
            .summarize_results(SummaryQuery {
                filter: ResultFilter::default(),
                group_by: vec![
                    ResultColumn::SubjectUid,
                    ResultColumn::Result,
                    ResultColumn::Severity,
                ],
                page: Some(GroupPage {
                    rank: GroupRank::Result("fail".into()),
                    limit: 1,
                    after,
                }),
            })
            .await
            .unwrap_or_else(|e| panic!("summary page: {e}"));
        let page = s.page.expect("a page");
        got.extend(
            page.groups
                .iter()
                .filter(|g| !g.group.is_empty() && g.value > 0)
                .map(|g| (g.group.clone(), g.value)),
        );
        after = page.groups.last().map(|g| crate::results::GroupCursor {
            value: g.value,
            group: g.group.clone(),
        });
        if !page.more {
            break;
        }
    }
    assert_eq!(got, want, "uids ranked by failures");
}

/// See the module documentation.
pub async fn subject_uids_read_as_written(store: &dyn Store) {
    let mut writes = reports();
    for w in &writes {
        create(store, w.clone()).await;
    }
    let all = everything(store).await;
    assert_eq!(record_uids(&all), written_uids(&writes), "the uids as written");
    check_queries(store, &all).await;

    // The scope of `moving` gets another uid; its results, about their own resources, do not
    // change (a missing uid stays missing, `u-s` stays `u-s`).
    let moving = writes
        .iter_mut()
        .find(|w| w.key.name == "moving")
        .expect("moving");
    let before = store
        .get(&moving.key)
        .await
        .unwrap_or_else(|e| panic!("get: {e}"))
        .expect("moving exists");
    moving.body["scope"] = pod("s", Some("u-t"));
    fixtures::reindex(moving);
    store
        .update(moving.clone(), before.revision)
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    let all = everything(store).await;
    assert_eq!(
        record_uids(&all),
        written_uids(&writes),
        "after the scope's uid changed"
    );
    check_queries(store, &all).await;
}

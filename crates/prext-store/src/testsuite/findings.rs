//! Findings over time: reports written over a timeline (created, rewritten with a result
//! fixed, a new failure, a label-only rewrite, another report kind carrying the same finding,
//! deleted), and after every write the store's findings compared with the test's own model of
//! them: which findings exist, their revisions, and their times within the bounds of the
//! clock read around each write. Then filters, windows, pages and the trend series.

use std::collections::{BTreeMap, BTreeSet};

use crate::findings::{
    now_ms, Condition, Finding, FindingEvent, FindingFilter, FindingQuery, Interval, ResultColumn, TrendQuery,
};
use crate::testsuite::fixtures::{report, set_labels, set_results, POLR, REPS};
use crate::{ObjectKey, ObjectWrite, Preconditions, Store};

/// `(subject_key, policy, rule)`.
type Key = (String, String, String);

/// A finding as the model expects it: the writes (indexes into `Model::writes`) that opened,
/// last saw and resolved it.
#[derive(Debug, Clone)]
struct Expected {
    key: Key,
    first: usize,
    last: usize,
    resolved: Option<usize>,
    result: String,
    namespace: String,
    report: String,
}

/// A write: its revision and the clock before and after it.
#[derive(Debug, Clone, Copy)]
struct Write {
    revision: i64,
    before: i64,
    after: i64,
}

#[derive(Default)]
struct Model {
    writes: Vec<Write>,
    findings: Vec<Expected>,
    /// The failing keys each report carries, with their result.
    carried: BTreeMap<ObjectKey, BTreeMap<Key, String>>,
}

/// The failing keys of a results list written by [`set_results`] (first occurrence wins).
fn failing(namespace: &str, results: &[(&str, &str)]) -> BTreeMap<Key, String> {
    let mut out = BTreeMap::new();
    for (i, (policy, result)) in results.iter().enumerate() {
        if matches!(*result, "fail" | "warn" | "error") {
            let key = (
                format!("Pod/{namespace}/pod-{i}"),
                (*policy).to_owned(),
                "check".to_owned(),
            );
            out.entry(key).or_insert_with(|| (*result).to_owned());
        }
    }
    out
}

impl Model {
    /// Applies a write of `report` that leaves it carrying `now` (empty for a delete).
    fn apply(&mut self, w: Write, report: &ObjectKey, now: BTreeMap<Key, String>) {
        let at = self.writes.len();
        self.writes.push(w);
        for (key, result) in &now {
            match self
                .findings
                .iter_mut()
                .find(|f| f.key == *key && f.resolved.is_none())
            {
                Some(f) => {
                    f.last = at;
                    f.result = result.clone();
                    f.namespace = report.namespace.clone();
                    f.report = report.name.clone();
                }
                None => self.findings.push(Expected {
                    key: key.clone(),
                    first: at,
                    last: at,
                    resolved: None,
                    result: result.clone(),
                    namespace: report.namespace.clone(),
                    report: report.name.clone(),
                }),
            }
        }
        let before = match now.is_empty() {
            true => self.carried.remove(report),
            false => self.carried.insert(report.clone(), now.clone()),
        }
        .unwrap_or_default();
        for key in before.keys().filter(|k| !now.contains_key(*k)) {
            if self.carried.values().any(|c| c.contains_key(key)) {
                continue;
            }
            if let Some(f) = self
                .findings
                .iter_mut()
                .find(|f| f.key == *key && f.resolved.is_none())
            {
                f.resolved = Some(at);
            }
        }
    }

    /// Checks the store's findings (all, in id order) against the model.
    fn check(&self, got: &[Finding], step: &str) {
        assert_eq!(got.len(), self.findings.len(), "{step}: {got:#?}");
        let mut ids = BTreeSet::new();
        for f in got {
            assert!(ids.insert(f.id), "{step}: ids are unique");
            let key = (
                format!(
                    "{}/{}/{}",
                    f.subject.kind.as_deref().unwrap_or(""),
                    f.subject.namespace.as_deref().unwrap_or(""),
                    f.subject.name.as_deref().unwrap_or("")
                ),
                f.policy.clone(),
                f.rule.clone(),
            );
            let w = |i: usize| self.writes[i];
            let e = self
                .findings
                .iter()
                .find(|e| e.key == key && w(e.first).revision == f.first_seen_revision)
                .unwrap_or_else(|| panic!("{step}: unexpected finding {f:#?}"));
            let within = |t: i64, i: usize, what: &str| {
                assert!(
                    w(i).before <= t && t <= w(i).after,
                    "{step}: {what} of {key:?} is {t}, not within write {i} ({:?})",
                    w(i)
                );
            };
            within(f.first_seen, e.first, "first seen");
            assert_eq!(
                f.last_seen_revision,
                w(e.last).revision,
                "{step}: last seen of {key:?}"
            );
            within(f.last_seen, e.last, "last seen");
            assert_eq!(
                f.resolved_revision,
                e.resolved.map(|i| w(i).revision),
                "{step}: {key:?}"
            );
            match (f.resolved_at, e.resolved) {
                (Some(t), Some(i)) => within(t, i, "resolved"),
                (None, None) => {}
                other => panic!("{step}: resolved of {key:?}: {other:?}"),
            }
            assert_eq!(
                (&f.result, &f.namespace, &f.report),
                (&e.result, &e.namespace, &e.report),
                "{step}: {key:?}"
            );
            assert_eq!(f.severity.as_deref(), Some("medium"));
            assert_eq!(f.source.as_deref(), Some("kyverno"));
        }
        let by_id: Vec<i64> = got.iter().map(|f| f.first_seen_revision).collect();
        assert!(
            by_id.windows(2).all(|p| p[0] <= p[1]),
            "{step}: id order is opening order"
        );
    }
}

async fn all(store: &dyn Store, filter: FindingFilter) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .query_findings(FindingQuery {
                filter: filter.clone(),
                limit: 2,
                after,
                count: after.is_none(),
            })
            .await
            .unwrap_or_else(|e| panic!("query findings: {e}"));
        if after.is_none() {
            assert_eq!(page.revision, store.revision().await.expect("revision"));
        }
        let total = page.total;
        out.extend(page.items);
        after = out.last().map(|f| f.id);
        if let Some(total) = total {
            assert!(out.len() <= usize::try_from(total).unwrap_or(0));
        }
        if !page.more {
            return out;
        }
    }
}

/// Runs one write, records it in the model and checks the store against it.
async fn step(
    store: &dyn Store,
    model: &mut Model,
    name: &str,
    key: &ObjectKey,
    write: Option<(ObjectWrite, &[(&str, &str)])>,
) {
    // Each write in a millisecond of its own, so that the model can tell the writes' times
    // apart (the windows below are in milliseconds; two quick writes could share one).
    let last = model.writes.last().map_or(i64::MIN, |w| w.after);
    while now_ms() <= last {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let before = now_ms();
    let (revision, now) = match write {
        Some((w, results)) => {
            let current = store.get(key).await.expect("get");
            let written = match current {
                Some(cur) => store.update(w, cur.revision).await,
                None => store.create(w).await,
            }
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            (written.revision, failing(&key.namespace, results))
        }
        None => {
            let gone = store
                .delete(key, Preconditions::default())
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (gone.revision, BTreeMap::new())
        }
    };
    let after = now_ms();
    model.apply(
        Write {
            revision,
            before,
            after,
        },
        key,
        now,
    );
    model.check(&all(store, FindingFilter::default()).await, name);
}

fn writing(resource: &str, name: &str, results: &[(&str, &str)], labels: &[(&str, &str)]) -> ObjectWrite {
    let mut w = report(resource, "ns-a", name);
    set_results(&mut w, results);
    set_labels(&mut w, labels);
    w
}

/// The timeline, checked after every write.
pub async fn findings_follow_writes(store: &dyn Store) {
    let mut model = Model::default();
    let r1 = ObjectKey::new(POLR, "ns-a", "r1");
    let r2 = ObjectKey::new(REPS, "ns-a", "r2");
    let v1: &[(&str, &str)] = &[("p1", "fail"), ("p2", "pass"), ("p3", "warn")];
    step(
        store,
        &mut model,
        "create r1",
        &r1,
        Some((writing(POLR, "r1", v1, &[]), v1)),
    )
    .await;
    // Another report kind carries the same finding (pod-0, p1).
    let v2: &[(&str, &str)] = &[("p1", "fail")];
    step(
        store,
        &mut model,
        "create r2",
        &r2,
        Some((writing(REPS, "r2", v2, &[]), v2)),
    )
    .await;
    // p1 fixed in r1 (still carried by r2), p3 kept, a new failure p4 at pod-3, p2 now errors.
    let v3: &[(&str, &str)] = &[("p1", "pass"), ("p2", "error"), ("p3", "warn"), ("p4", "fail")];
    step(
        store,
        &mut model,
        "fix p1 in r1",
        &r1,
        Some((writing(POLR, "r1", v3, &[]), v3)),
    )
    .await;
    // Labels only: the result rows are kept, the findings are seen again.
    step(
        store,
        &mut model,
        "relabel r1",
        &r1,
        Some((writing(POLR, "r1", v3, &[("a", "b")]), v3)),
    )
    .await;
    // The last carrier of p1 goes: resolved.
    step(store, &mut model, "delete r2", &r2, None).await;
    // p3 turns pass, p2 disappears: both resolved; p1 fails again: a new finding.
    let v4: &[(&str, &str)] = &[("p1", "fail"), ("x", "skip"), ("p3", "pass"), ("p4", "fail")];
    step(
        store,
        &mut model,
        "p1 fails again",
        &r1,
        Some((writing(POLR, "r1", v4, &[]), v4)),
    )
    .await;
    // A moment after write 5 ended: a finding write 5 resolved in its last millisecond was
    // still open for part of that millisecond, so `mid` is the next one (write 6 starts there
    // at the earliest, and what it resolves is open at `mid` in the model too).
    let mid = model.writes.last().map(|w| w.after + 1).unwrap_or_default();
    step(store, &mut model, "delete r1", &r1, None).await;
    assert_eq!(
        model.findings.len(),
        5,
        "p1 twice, p2, p3, p4: {:#?}",
        model.findings
    );
    assert!(model.findings.iter().all(|f| f.resolved.is_some()));

    check_filters(store, &model, mid).await;
    check_trends(store, &model).await;
}

async fn check_filters(store: &dyn Store, model: &Model, mid: i64) {
    let w = |i: usize| model.writes[i];
    let count = |filter: FindingFilter| async move {
        let page = store
            .query_findings(FindingQuery {
                filter,
                limit: 1,
                after: None,
                count: true,
            })
            .await
            .expect("count");
        page.total.expect("a total")
    };
    let n = |pred: &dyn Fn(&Expected) -> bool| model.findings.iter().filter(|e| pred(e)).count() as u64;
    // Opened in a window: the writes 2 and 5 ("fix p1" and "p1 fails again").
    let opened = FindingFilter {
        event: FindingEvent::Opened,
        since: Some(w(2).before),
        until: Some(w(5).after + 1),
        ..FindingFilter::default()
    };
    let want = n(&|e| (2..=5).contains(&e.first));
    assert_eq!(count(opened).await, want);
    let resolved = FindingFilter {
        event: FindingEvent::Resolved,
        since: Some(w(4).before),
        until: Some(w(5).after + 1),
        ..FindingFilter::default()
    };
    assert_eq!(count(resolved).await, n(&|e| matches!(e.resolved, Some(4..=5))));
    // Active at `mid` (after write 5): opened before, not resolved before.
    let active = FindingFilter {
        since: Some(mid),
        until: Some(mid + 1),
        ..FindingFilter::default()
    };
    assert_eq!(
        count(active).await,
        n(&|e| e.first <= 5 && e.resolved.is_none_or(|r| r > 5))
    );
    let p1 = FindingFilter {
        conditions: vec![Condition::In(ResultColumn::Policy, vec!["p1".into()])],
        ..FindingFilter::default()
    };
    assert_eq!(count(p1).await, 2);
    let not_fail = FindingFilter {
        conditions: vec![Condition::NotIn(ResultColumn::Result, vec!["fail".into()])],
        namespace: Some("ns-a".into()),
        ..FindingFilter::default()
    };
    assert_eq!(count(not_fail).await, n(&|e| e.result != "fail"));
    let elsewhere = FindingFilter {
        namespace: Some("ns-b".into()),
        ..FindingFilter::default()
    };
    assert_eq!(count(elsewhere).await, 0);
    let open = FindingFilter {
        open: Some(true),
        ..FindingFilter::default()
    };
    assert_eq!(count(open).await, 0);
}

/// The hourly and daily series by policy, against a count over the model.
async fn check_trends(store: &dyn Store, model: &Model) {
    let got = all(store, FindingFilter::default()).await;
    let until = model.writes.last().map(|w| w.after + 1).unwrap_or_default();
    for interval in [Interval::Hour, Interval::Day] {
        let len = interval.millis();
        let since = model.writes[0].before - 2 * len;
        let trends = store
            .finding_trends(TrendQuery {
                filter: FindingFilter::default(),
                group_by: ResultColumn::Policy,
                interval,
                since,
                until,
            })
            .await
            .expect("trends");
        let policies: BTreeSet<&str> = got.iter().map(|f| f.policy.as_str()).collect();
        assert_eq!(
            trends
                .series
                .iter()
                .map(|s| s.group.as_str())
                .collect::<BTreeSet<_>>(),
            policies
        );
        for s in &trends.series {
            let mut start = since - since.rem_euclid(len);
            let mut want = Vec::new();
            while start < until {
                let end = (start + len).min(until);
                let open = got
                    .iter()
                    .filter(|f| f.policy == s.group && f.first_seen < end)
                    .filter(|f| f.resolved_at.is_none_or(|r| r >= end))
                    .count() as u64;
                want.push((start, open));
                start += len;
            }
            assert_eq!(s.points, want, "{interval:?} {}", s.group);
        }
        // At the last point every finding is resolved; somewhere before, p1 was open.
        let p1 = trends.series.iter().find(|s| s.group == "p1").expect("p1");
        assert_eq!(p1.points.last().map(|p| p.1), Some(0));
    }
}

//! Findings over time: the backend-neutral description of what every backend records as
//! reports are written, and of the questions [`Store::query_findings`] and
//! [`Store::finding_trends`] answer.
//!
//! Semantics (checked by the conformance suite on every backend):
//! - a finding is one failing result (`fail`, `warn` or `error`) identified by its subject
//!   (the subject's uid, else `kind/namespace/name`), policy and rule, whichever report
//!   carries it;
//! - it is recorded in the transaction of the write that opens it (`first_seen`), of every
//!   write of a report that carries it (`last_seen`), and of the write after which no report
//!   carries it any more (`resolved_at`): the result disappeared or turned pass/skip, or its
//!   report was deleted. Times are the writes' times (Unix milliseconds), with their revisions;
//! - a failure of a resolved finding's subject, policy and rule opens a new finding;
//! - its namespace, report and result fields are those of the report that carried it last.
//!
//! [`Store::query_findings`]: crate::Store::query_findings
//! [`Store::finding_trends`]: crate::Store::finding_trends

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

pub use prext_api::results::history::{buckets, Finding, FindingEvent, FindingFilter, Interval, TrendSeries};
pub use prext_api::results::query::{Condition, ResultColumn};

/// The time of a write, Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A page of findings, in the order they were opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingQuery {
    pub filter: FindingFilter,
    /// At most this many (backends may cap it).
    pub limit: usize,
    /// Resume after the finding with this id.
    pub after: Option<i64>,
    /// Also count every match (all pages).
    pub count: bool,
}

/// A page of findings, read from one snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingPage {
    /// The store revision of the snapshot.
    pub revision: i64,
    pub items: Vec<Finding>,
    /// More match after the last one.
    pub more: bool,
    pub total: Option<u64>,
}

/// Counts of open findings over time, grouped by a column.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendQuery {
    /// Which findings (its `open` and `event` are ignored; `since`/`until` are the range).
    pub filter: FindingFilter,
    pub group_by: ResultColumn,
    pub interval: Interval,
    /// The range, Unix ms: buckets of `interval` aligned on UTC midnight (or the hour) from
    /// the one holding `since` to the one holding `until - 1`.
    pub since: i64,
    pub until: i64,
}

/// The trend of every group with a finding open in the range, by group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trends {
    pub revision: i64,
    pub series: Vec<TrendSeries>,
}

/// Builds the series from `(group, first_seen, resolved_at)` of every finding that may be
/// open in the range: at each bucket's end `e` (capped at `until`), a finding counts when
/// `first_seen < e` and it is not resolved at or before `e`'s moment (`resolved_at >= e`).
pub fn series(
    q: &TrendQuery,
    rows: impl IntoIterator<Item = (String, i64, Option<i64>)>,
) -> Vec<TrendSeries> {
    let starts = buckets(q.interval, q.since, q.until);
    let ends: Vec<i64> = starts
        .iter()
        .map(|s| (s + q.interval.millis()).min(q.until))
        .collect();
    let mut groups: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (group, first, resolved) in rows {
        let counts = groups.entry(group).or_insert_with(|| vec![0; ends.len()]);
        for (n, end) in counts.iter_mut().zip(&ends) {
            if first < *end && resolved.is_none_or(|r| r >= *end) {
                *n += 1;
            }
        }
    }
    groups
        .into_iter()
        .map(|(group, counts)| TrendSeries {
            group,
            points: starts.iter().copied().zip(counts).collect(),
        })
        .collect()
}

/// The SQL column of a finding for a [`ResultColumn`], and whether it can be NULL.
pub(crate) fn column(c: ResultColumn) -> &'static str {
    match c {
        ResultColumn::Result => "result",
        ResultColumn::Severity => "severity",
        ResultColumn::Policy => "policy",
        ResultColumn::Rule => "rule",
        ResultColumn::Category => "category",
        ResultColumn::Source => "source",
        ResultColumn::Namespace => "namespace",
        ResultColumn::Resource => "resource",
        ResultColumn::Report => "report",
        ResultColumn::SubjectApiVersion => "subject_api_version",
        ResultColumn::SubjectKind => "subject_kind",
        ResultColumn::SubjectNamespace => "subject_namespace",
        ResultColumn::SubjectName => "subject_name",
        ResultColumn::SubjectUid => "subject_uid",
    }
}

/// A parameter of a findings query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// A filter lowered to a SQL condition over `findings` and its parameters; `placeholder(n)`
/// writes the n-th (1-based) parameter (`?n` or `$n`).
pub(crate) fn lower(
    f: &FindingFilter,
    first: usize,
    placeholder: fn(usize) -> String,
) -> (String, Vec<Param>) {
    let mut sql = vec!["true".to_owned()];
    let mut params = Vec::new();
    let push = |params: &mut Vec<Param>, p: Param| {
        params.push(p);
        placeholder(first + params.len() - 1)
    };
    if let Some(ns) = &f.namespace {
        let p = push(&mut params, Param::Text(ns.clone()));
        sql.push(format!("namespace = {p}"));
    }
    for c in &f.conditions {
        let (col, values, negated) = match c {
            Condition::In(col, values) => (col, values, false),
            Condition::NotIn(col, values) => (col, values, true),
            // Refused by the API: nothing matches rather than everything.
            _ => {
                sql.push("false".into());
                continue;
            }
        };
        let list: Vec<String> = values
            .iter()
            .map(|v| push(&mut params, Param::Text(v.clone())))
            .collect();
        let expr = format!("coalesce({}, '')", column(*col));
        sql.push(match (negated, list.is_empty()) {
            (false, true) => "false".into(),
            (true, true) => "true".into(),
            (false, false) => format!("{expr} IN ({})", list.join(", ")),
            (true, false) => format!("{expr} NOT IN ({})", list.join(", ")),
        });
    }
    match f.open {
        Some(true) => sql.push("resolved_at IS NULL".into()),
        Some(false) => sql.push("resolved_at IS NOT NULL".into()),
        None => {}
    }
    let (since, until) = (f.since, f.until);
    match f.event {
        FindingEvent::Active => {
            if let Some(s) = since {
                let p = push(&mut params, Param::Int(s));
                sql.push(format!("(resolved_at IS NULL OR resolved_at >= {p})"));
            }
            if let Some(u) = until {
                let p = push(&mut params, Param::Int(u));
                sql.push(format!("first_seen < {p}"));
            }
        }
        FindingEvent::Opened | FindingEvent::Resolved => {
            let col = if f.event == FindingEvent::Opened {
                "first_seen"
            } else {
                sql.push("resolved_at IS NOT NULL".into());
                "resolved_at"
            };
            if let Some(s) = since {
                let p = push(&mut params, Param::Int(s));
                sql.push(format!("{col} >= {p}"));
            }
            if let Some(u) = until {
                let p = push(&mut params, Param::Int(u));
                sql.push(format!("{col} < {p}"));
            }
        }
    }
    (sql.join(" AND "), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_count_what_is_open_at_each_end() {
        let h = Interval::Hour.millis();
        let q = TrendQuery {
            filter: FindingFilter::default(),
            group_by: ResultColumn::Namespace,
            interval: Interval::Hour,
            since: 0,
            until: 2 * h + 10,
        };
        let rows = vec![
            ("a".to_owned(), 5, None),            // open throughout
            ("a".to_owned(), h + 1, Some(h + 9)), // opened and resolved within the second hour
            ("a".to_owned(), 1, Some(2 * h + 3)), // resolved during the third
            ("b".to_owned(), 2 * h + 10, None),   // opened at `until`: not counted
        ];
        let s = series(&q, rows);
        assert_eq!(s[0].group, "a");
        assert_eq!(s[0].points, vec![(0, 2), (h, 2), (2 * h, 1)]);
        assert_eq!(s[1].points, vec![(0, 0), (h, 0), (2 * h, 0)]);
    }
}

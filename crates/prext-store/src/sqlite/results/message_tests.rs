//! Pages of filters with a message test, which are read in report order from
//! [`MESSAGE_SORT_THRESHOLD`] matches (or the page's size) instead of [`SORT_THRESHOLD`]: every
//! page size, sorted or walked, reads the same results in the same order.

use rusqlite::Connection;

use super::tests::{db, Row};
use super::*;

/// An expected result: namespace, report, position, result, severity.
type Expected = (String, String, i64, &'static str, &'static str);

/// 60 reports of 20 results in three namespaces: one in two fails (its message says so),
/// severities cycle through four values. 600 messages hold "said fail", between the two
/// thresholds.
fn many() -> (Connection, Vec<Expected>) {
    let names: Vec<(String, String)> = (0..60)
        .map(|i| (format!("ns{}", i % 3), format!("r{i:02}")))
        .collect();
    let severities = ["critical", "high", "medium", "low"];
    let mut rows: Vec<Row<'_>> = Vec::new();
    let mut expected = Vec::new();
    for (i, (ns, name)) in names.iter().enumerate() {
        for j in 0..20_i64 {
            let n = i * 20 + usize::try_from(j).unwrap_or(0);
            let result = if n % 2 == 0 { "fail" } else { "pass" };
            let severity = severities[(n / 2) % 4];
            rows.push((ns, name, j, "p", result, Some(severity), None, None));
            expected.push((ns.clone(), name.clone(), j, result, severity));
        }
    }
    (db(&rows), expected)
}

/// Every page of `filter` in report order with page size `limit`, and the count of the first.
fn pages(conn: &mut Connection, filter: &ResultFilter, limit: usize) -> (Vec<String>, Option<u64>) {
    let mut out = Vec::new();
    let mut after = None;
    let mut total = None;
    loop {
        let q = ResultQuery {
            filter: filter.clone(),
            limit,
            count: after.is_none(),
            after: after.clone(),
            ..ResultQuery::default()
        };
        let page = query(conn, &q).expect("page");
        if after.is_none() {
            total = page.total;
        }
        out.extend(
            page.items
                .iter()
                .map(|r| format!("{}/{}/{}", r.namespace, r.report, r.index)),
        );
        match (page.more, page.items.last()) {
            (true, Some(last)) => after = Some(last.cursor(ResultOrder::Report)),
            _ => return (out, total),
        }
    }
}

#[test]
fn message_filters_read_the_same_pages_walked_or_sorted() {
    let (mut conn, rows) = many();
    let mut sorted = rows.clone();
    sorted.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    let message = || Condition::MessageContains("SAID FAIL".into());
    let critical = || Condition::In(ResultColumn::Severity, vec!["critical".into()]);
    let cases: Vec<(Vec<Condition>, usize)> = vec![
        // 600 matches: walked for pages up to 500, sorted for larger ones.
        (vec![message()], 600),
        // 150 matches among 300 candidates: sorted for every page.
        (vec![message(), critical()], 150),
        (vec![Condition::MessageContains("said nothing".into())], 0),
    ];
    for (conditions, n) in cases {
        let want: Vec<String> = sorted
            .iter()
            .filter(|r| r.3 == "fail")
            .filter(|r| conditions.len() == 1 || r.4 == "critical")
            .filter(|_| n > 0)
            .map(|r| format!("{}/{}/{}", r.0, r.1, r.2))
            .collect();
        assert_eq!(want.len(), n);
        let filter = ResultFilter {
            namespace: None,
            conditions,
        };
        for limit in [1, 7, 499, 500, 501, 10_000] {
            let (got, total) = pages(&mut conn, &filter, limit);
            assert_eq!(got, want, "{filter:?}, limit {limit}");
            assert_eq!(total, Some(n as u64), "{filter:?}, limit {limit}");
        }
    }
}

/// The threshold of a page: a message test without an anchor walks from 500 matches or the
/// page's size; an anchored one, or a filter without a message test, from 10,000.
#[test]
fn message_filters_walk_from_the_smaller_threshold() {
    let message = Condition::MessageContains("openssl".into());
    let anchored = Condition::In(ResultColumn::Report, vec!["r01".into()]);
    let of = |conditions: Vec<Condition>, limit: usize| {
        let filter = ResultFilter {
            namespace: None,
            conditions,
        };
        sort_threshold(&filter, &lower(&filter, Indexes::Use), limit)
    };
    assert_eq!(of(vec![message.clone()], 1), MESSAGE_SORT_THRESHOLD);
    assert_eq!(of(vec![message.clone()], 2_000), 2_000);
    assert_eq!(of(vec![message.clone()], MAX_PAGE), SORT_THRESHOLD);
    assert_eq!(of(vec![message.clone(), anchored], 1), SORT_THRESHOLD);
    assert_eq!(
        of(vec![Condition::MessageContains(String::new())], 1),
        SORT_THRESHOLD
    );
    assert_eq!(
        of(vec![Condition::In(ResultColumn::Result, vec!["fail".into()])], 1),
        SORT_THRESHOLD
    );
}

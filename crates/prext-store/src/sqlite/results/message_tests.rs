//! Pages of filters with a message test, which are read in report order from
//! [`MESSAGE_SORT_THRESHOLD`] matches (or the page's size) instead of [`SORT_THRESHOLD`], and
//! sorted from their numeric range when it holds at most [`SORT_THRESHOLD`] numbers
//! ([`numbers::range_within`]): every page size, sorted or walked, reads the same results in
//! the same order.

use rusqlite::Connection;

use super::tests::{db, plan, Row};
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

/// 60 reports of 20 results in three namespaces: one in two fails (its message says so) and
/// scores 9.5, the others score 3. 600 failures, all in the range `score>=9`: more than
/// [`MESSAGE_SORT_THRESHOLD`], fewer than [`SORT_THRESHOLD`].
fn scored() -> (Connection, Vec<String>) {
    let names: Vec<(String, String)> = (0..60)
        .map(|i| (format!("ns{}", i % 3), format!("r{i:02}")))
        .collect();
    let mut rows: Vec<Row<'_>> = Vec::new();
    let mut expected = Vec::new();
    for (i, (ns, name)) in names.iter().enumerate() {
        for j in 0..20_i64 {
            let n = i * 20 + usize::try_from(j).unwrap_or(0);
            let (result, score) = if n % 2 == 0 {
                ("fail", "9.5")
            } else {
                ("pass", "3")
            };
            rows.push((ns, name, j, "p", result, Some("high"), Some(score), None));
            if result == "fail" {
                expected.push((ns.clone(), name.clone(), j));
            }
        }
    }
    expected.sort();
    let expected = expected
        .into_iter()
        .map(|(ns, name, j)| format!("{ns}/{name}/{j}"))
        .collect();
    (db(&rows), expected)
}

fn message_and_range(namespace: Option<&str>) -> ResultFilter {
    ResultFilter {
        namespace: namespace.map(str::to_owned),
        conditions: vec![
            Condition::MessageContains("said fail".into()),
            Condition::Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::GreaterOrEqual, 9.0),
            },
        ],
    }
}

/// A numeric range of at most the bound's numbers bounds an unanchored filter's matches; a
/// wider range, an anchored filter (its numbers are probed) or a filter without a numeric test
/// does not.
#[test]
fn a_narrow_numeric_range_bounds_the_matches() {
    let (conn, _) = scored();
    let within = |filter: &ResultFilter, bound: usize| {
        let lowered = lower_live(&conn, filter, Indexes::Use).expect("lower");
        numbers::range_within(&conn, &lowered, bound).expect("range")
    };
    assert!(within(&message_and_range(None), 600));
    assert!(within(&message_and_range(None), SORT_THRESHOLD));
    assert!(!within(&message_and_range(None), 599));
    assert!(!within(&message_and_range(Some("ns1")), SORT_THRESHOLD));
    let message_only = ResultFilter {
        namespace: None,
        conditions: vec![Condition::MessageContains("said fail".into())],
    };
    assert!(!within(&message_only, SORT_THRESHOLD));
    // The sorted page of such a filter starts from the range and tests the message per row.
    let filter = message_and_range(None);
    let lowered = lower_live(&conn, &filter, Indexes::Use).expect("lower");
    let p = lowered.predicate(lowered.number_form());
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM results AS r JOIN objects AS o ON o.id = r.object_id{} ORDER BY {} LIMIT 501",
        p.where_sql(),
        sorted_order_by(ResultOrder::Report)
    );
    let page = plan(&conn, &sql, &p.params);
    assert!(page.contains("result_numbers_key_value"), "{page}");
    assert!(page.contains("USE TEMP B-TREE FOR ORDER BY"), "{page}");
    assert!(!page.contains("objects_order"), "{page}");
}

/// `message~` with a narrow numeric range, more matches than [`MESSAGE_SORT_THRESHOLD`]: read
/// sorted from the range (no longer walked), every page size reads the same results in report
/// order with the same count, and so does the anchored filter (walked or probed).
#[test]
fn a_message_test_with_a_narrow_range_reads_the_same_pages_sorted() {
    let (mut conn, want) = scored();
    assert_eq!(want.len(), 600);
    let filter = message_and_range(None);
    for limit in [1, 7, 499, 500, 501, 10_000] {
        let (got, total) = pages(&mut conn, &filter, limit);
        assert_eq!(got, want, "limit {limit}");
        assert_eq!(total, Some(600), "limit {limit}");
    }
    let in_ns1: Vec<String> = want.iter().filter(|k| k.starts_with("ns1/")).cloned().collect();
    assert_eq!(in_ns1.len(), 200);
    for limit in [1, 199, 200, 500] {
        let (got, total) = pages(&mut conn, &message_and_range(Some("ns1")), limit);
        assert_eq!(got, in_ns1, "ns1, limit {limit}");
        assert_eq!(total, Some(200), "ns1, limit {limit}");
    }
}

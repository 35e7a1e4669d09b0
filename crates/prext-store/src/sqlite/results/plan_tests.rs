//! Plans of combined filters once the writer has analyzed the tables: each query starts from
//! its most selective condition, whatever the order the filters were written in, and a small
//! page does not turn a sorted read into a walk of every report.

use rusqlite::Connection;

use super::tests::{db, plan, Row};
use super::*;
use crate::sqlite::statistics;

/// 40 reports of 50 results: most fail, one in fifty scores 8 or more, policies are many
/// (like CVE ids), each on a few results.
fn skewed() -> Connection {
    let names: Vec<String> = (0..40).map(|i| format!("r{i:02}")).collect();
    let policies: Vec<String> = (0..400).map(|i| format!("CVE-{i:04}")).collect();
    let mut rows: Vec<Row<'_>> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for j in 0..50 {
            let n = i * 50 + j;
            let result = if n % 5 == 0 { "pass" } else { "fail" };
            let score = if n % 50 == 7 { Some("9.1") } else { Some("3") };
            let policy = policies[(n * 7) % policies.len()].as_str();
            rows.push((
                "ns",
                name.as_str(),
                j as i64,
                policy,
                result,
                Some("high"),
                score,
                None,
            ));
        }
    }
    let conn = db(&rows);
    statistics::analyze(&conn).expect("analyze");
    conn
}

fn page_plan(conn: &Connection, conditions: Vec<Condition>) -> String {
    let filter = ResultFilter {
        namespace: None,
        conditions,
    };
    let p = lower(&filter, Indexes::Use).predicate(NumberForm::Drive);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM results AS r JOIN objects AS o ON o.id = r.object_id{} ORDER BY {} LIMIT 51",
        p.where_sql(),
        sorted_order_by(ResultOrder::Report)
    );
    plan(conn, &sql, &p.params)
}

#[test]
fn combined_filters_start_from_the_most_selective_index() {
    let conn = skewed();
    let fail = || Condition::In(ResultColumn::Result, vec!["fail".into()]);
    // property=score>=8 and result=fail: the few high scores, not every failure.
    let numeric = page_plan(
        &conn,
        vec![
            fail(),
            Condition::Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::GreaterOrEqual, 8.0),
            },
        ],
    );
    assert!(numeric.contains("result_numbers_key_value"), "{numeric}");
    assert!(!numeric.contains("results_result_severity"), "{numeric}");
    assert!(!numeric.contains("SCAN r"), "{numeric}");
    // policy=CVE-0003 and result=fail: that policy's few rows.
    let policy = page_plan(
        &conn,
        vec![
            fail(),
            Condition::In(ResultColumn::Policy, vec!["CVE-0003".into()]),
        ],
    );
    assert!(policy.contains("results_policy_rule_result_severity"), "{policy}");
    assert!(!policy.contains("SCAN r"), "{policy}");
}

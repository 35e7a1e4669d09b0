//! Result queries and summaries over the `results` table (see [`crate::results`] for the
//! semantics), lowered to SQL with every value bound as a parameter.
//!
//! Plans, checked with `EXPLAIN QUERY PLAN` in the tests below:
//! - a page in report order walks `objects_order` (namespace, name, resource) and each
//!   report's results by primary key, stopping after the page, when the filter matches many
//!   results; when it matches few (a bounded probe tells), it reads them through the most
//!   selective index and sorts them. Either way a page costs about the same whether the
//!   filter matches a hundred results or a million;
//! - numeric property tests are ranges of `result_numbers_key_value`;
//! - counts and summaries read only `results` unless the filter or the grouping needs the
//!   report's columns.

use rusqlite::types::Value;
use rusqlite::Connection;

use super::db_error;
use super::select::Predicate;
use crate::results::{
    Compare, Condition, PropertyTest, ResultColumn, ResultFilter, ResultOrder, ResultPage, ResultQuery,
    ResultRecord,
};
use crate::Result;

/// Most rows one page returns, whatever the query asks.
pub(crate) const MAX_PAGE: usize = 10_000;
/// Up to this many matches a report-order page is read through the filter's index and
/// sorted; beyond, it walks the reports in order.
const SORT_THRESHOLD: usize = 10_000;
/// Up to this many matches (or the page's size, if larger) a report-order page of a filter
/// with a message test is read through its other conditions' index and sorted; beyond, it
/// walks the reports in order ([`sort_threshold`]).
const MESSAGE_SORT_THRESHOLD: usize = 500;

/// The SQL rank of a severity (`crate::results::severity_rank`).
const RANK_SQL: &str = "(CASE lower(r.severity) WHEN 'critical' THEN 5 WHEN 'high' THEN 4 \
     WHEN 'medium' THEN 3 WHEN 'low' THEN 2 WHEN 'info' THEN 1 ELSE 0 END)";
/// The SQL timestamp key: missing timestamps sort as the oldest.
const TIME_SQL: &str = "coalesce(r.timestamp, -9223372036854775808)";
/// [`SUBJECT_UID_SQL`], as a literal for `concat!`.
macro_rules! subject_uid_sql {
    () => {
        "(CASE WHEN r.subject_uid IS NULL THEN o.scope_uid \
         WHEN typeof(r.subject_uid) = 'text' THEN r.subject_uid END)"
    };
}

/// The columns of a [`ResultRecord`], in its field order.
const RECORD_COLUMNS: &str = concat!(
    "o.namespace, o.resource, o.name, o.uid, o.revision, o.created, r.idx, r.policy, r.rule, \
     r.result, r.severity, r.category, r.source, r.scored, r.timestamp, r.message, r.properties, \
     r.resources, r.subject_api_version, r.subject_kind, r.subject_namespace, r.subject_name, ",
    subject_uid_sql!()
);

/// The subject's uid of the result row `r` of the report `o`: `results.subject_uid` is NULL
/// when it is the report's scope uid, an empty BLOB when it is absent but the scope's is not
/// (schema version 13, `result_rows::stored_uid`).
pub(super) const SUBJECT_UID_SQL: &str = subject_uid_sql!();

pub(super) use crate::rows::on_report;
use subject_uid::uid_condition;
pub(super) use subject_uid::{column, reads_report};

fn texts(values: &[String]) -> impl Iterator<Item = Value> + '_ {
    values.iter().map(|v| Value::Text(v.clone()))
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// A filter as SQL: the conditions on columns and the numeric property tests apart, and
/// which tables they need.
struct Lowered {
    predicate: Predicate,
    numbers: Vec<NumberTest>,
    needs_report: bool,
    /// Some condition reads the `results` row itself (not only `result_numbers`).
    needs_result: bool,
    /// The filter names a namespace, a report or a subject ([`anchored`]): those drive.
    anchored: bool,
    /// The sets of sources the filter asks for (`source in (…)`), which also narrow a numeric
    /// range to the reports holding such results ([`Reports`]).
    sources: Vec<Vec<String>>,
    /// The conditions on the result and the severity, which `result_numbers` holds beside each
    /// number (schema version 11): a driving range tests them inside its index.
    beside: Beside,
    /// [`Lowered::predicate`] without the conditions of [`Lowered::beside`], for a count driven
    /// by a numeric range that needs no other column of the result row.
    rest: Predicate,
    /// The numeric range is narrower than the policy's rows, and drives even though SQLite's
    /// statistics make a policy look rarer ([`numbers::range_drives`]).
    range_first: bool,
}

impl Lowered {
    /// How the numeric tests are written when the query is read through the filter's
    /// indexes: driving from their range, unless a namespace, a report or a subject anchors
    /// the filter (then a probe per anchored result: reading the whole range first cost
    /// 16,855 rows for the 4 matches of `report.name` with `property=score>=8`).
    fn number_form(&self) -> NumberForm {
        if self.anchored {
            NumberForm::Probe
        } else {
            NumberForm::Drive
        }
    }

    /// The whole filter as one predicate, numeric tests written in `form`: only the first
    /// (the narrowest, [`lower_live`]) drives; the others are probed per row of its range
    /// (two driving lists of `score>=9.9` and `score>=8` read the 83,498 rows of the wider
    /// range for the 7,938 of the narrower: 0.77 s at 1,000,000 results).
    fn predicate(&self, form: NumberForm) -> Predicate {
        let mut p = self.predicate.clone();
        for (i, n) in self.numbers.iter().enumerate() {
            let form = if i == 0 { form } else { NumberForm::Probe };
            push_number(&mut p, n, form, &self.reports(), &self.beside);
        }
        p
    }

    fn reports(&self) -> Reports<'_> {
        Reports(&self.sources)
    }
}

/// [`lower`] for a query in the read transaction `tx`: while a deleted report's result rows
/// await their purge, they are read through their reports, which leave them out (`purge.rs`).
/// Several numeric tests are put narrowest first (the one that drives).
fn lower_live(tx: &Connection, filter: &ResultFilter, indexes: Indexes) -> Result<Lowered> {
    let mut lowered = lower(filter, indexes);
    numbers::narrowest_first(tx, &mut lowered.numbers)?;
    if indexes == Indexes::Use && numbers::range_drives(tx, filter, &lowered)? {
        // The same filter, its result columns' indexes left aside, the numbers in that order.
        let numbers = std::mem::take(&mut lowered.numbers);
        lowered = lower(filter, Indexes::Range);
        lowered.numbers = numbers;
        lowered.range_first = true;
    }
    lowered.needs_report |= super::purge::pending(tx).map_err(db_error)?;
    Ok(lowered)
}

/// Whether the filter names a namespace, reports, subjects by name or subjects by uid (a set
/// of non-empty values): those few results (a report's, a pod's; a namespace's reports in
/// order) drive the query, and the indexes of its other conditions are left aside. SQLite's
/// statistics cannot see that: `sqlite_stat1` gives a policy 3 rows on average (most
/// policies are CVE ids), so `policy=<a Kyverno policy on 8,000 results>` with a report's
/// name read those 8,000 rows for none (`plan_tests.rs`).
fn anchored(filter: &ResultFilter) -> bool {
    filter.namespace.is_some()
        || filter.conditions.iter().any(|c| match c {
            Condition::In(col, values) => {
                anchor(*col) && !values.is_empty() && values.iter().all(|v| !v.is_empty())
            }
            _ => false,
        })
}

/// The columns that anchor a filter ([`anchored`]).
fn anchor(col: ResultColumn) -> bool {
    matches!(
        col,
        ResultColumn::Namespace | ResultColumn::Report | ResultColumn::SubjectName | ResultColumn::SubjectUid
    )
}

/// Whether the result row's conditions may use the result indexes. The report-order walk
/// reads each report's results by primary key: an index on a result column there would be
/// scanned once per report (`+column` turns index use off for that term). An anchored
/// filter ([`anchored`]) avoids them for its other conditions too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Indexes {
    Use,
    Avoid,
    /// A numeric range drives ([`numbers::range_drives`]): the result columns' indexes are
    /// left aside, the report's are used.
    Range,
}

fn lower(filter: &ResultFilter, indexes: Indexes) -> Lowered {
    let mut p = Predicate::default();
    let mut numbers = Vec::new();
    let mut needs_report = false;
    let mut needs_result = false;
    let mut sources = Vec::new();
    let mut beside = Beside::default();
    let mut beside_only = true;
    let anchored = anchored(filter);
    if let Some(ns) = &filter.namespace {
        p.push("o.namespace = ?", [Value::Text(ns.clone())]);
        needs_report = true;
    }
    for c in &filter.conditions {
        match c {
            Condition::In(col, values) | Condition::NotIn(col, values) if Beside::copied(*col) => {
                // Also tested on the result row (below): when the page walks the reports, or
                // when no range drives.
                beside
                    .0
                    .push((*col, values.clone(), matches!(c, Condition::NotIn(..))));
            }
            Condition::In(col, _) | Condition::NotIn(col, _) if on_report(*col) => {}
            Condition::Property {
                test: PropertyTest::Number(..),
                ..
            } => {}
            _ => beside_only = false,
        }
        match c {
            Condition::In(ResultColumn::Source, values) if !values.is_empty() => {
                needs_result = true;
                sources.push(values.clone());
                set_condition(&mut p, ResultColumn::Source, values, false, indexes);
            }
            Condition::In(ResultColumn::SubjectUid, values)
            | Condition::NotIn(ResultColumn::SubjectUid, values) => {
                needs_result = true;
                let negated = matches!(c, Condition::NotIn(..));
                needs_report |= uid_condition(&mut p, values, negated, indexes);
            }
            Condition::In(col, values) | Condition::NotIn(col, values) => {
                needs_report |= on_report(*col);
                needs_result |= !on_report(*col);
                let negated = matches!(c, Condition::NotIn(..));
                let indexes = match indexes {
                    Indexes::Use if anchored && !anchor(*col) => Indexes::Avoid,
                    Indexes::Range => Indexes::Avoid,
                    other => other,
                };
                set_condition(&mut p, *col, values, negated, indexes);
            }
            Condition::MessageContains(text) if text.is_empty() => {}
            Condition::MessageContains(text) => {
                needs_result = true;
                p.push(
                    "r.message LIKE ? ESCAPE '\\'",
                    [Value::Text(format!("%{}%", escape_like(text)))],
                );
            }
            Condition::Property {
                key,
                test: PropertyTest::Number(op, bound),
            } => numbers.push(NumberTest {
                key: key.clone(),
                op: match op {
                    Compare::Greater => ">",
                    Compare::GreaterOrEqual => ">=",
                    Compare::Less => "<",
                    Compare::LessOrEqual => "<=",
                },
                bound: *bound,
            }),
            Condition::Property { key, test } => {
                needs_result = true;
                property_condition(&mut p, key, test);
            }
            Condition::Index(i) => {
                needs_result = true;
                let column = if indexes != Indexes::Use {
                    "+r.idx"
                } else {
                    "r.idx"
                };
                p.push(format!("{column} = ?"), [Value::Integer(*i)]);
            }
        }
    }
    let message = filter
        .conditions
        .iter()
        .any(|c| matches!(c, Condition::MessageContains(text) if !text.is_empty()));
    if message && !anchored {
        // A message test has no index: without another, every result row would be read. A
        // source narrows that read to the reports holding results of that source (their
        // counts, a list read once): `message~openssl` with `source=kube-bench` read all
        // 1,000,000 messages (0.27-0.30 s of CPU in the sqlite3 shell), now the 200,000 of
        // those reports (0.13 s).
        Reports(&sources).narrow(&mut p, "r");
    }
    let rest = if beside.0.is_empty() {
        p.clone()
    } else {
        let others = ResultFilter {
            conditions: filter
                .conditions
                .iter()
                .filter(|c| !matches!(c, Condition::In(col, _) | Condition::NotIn(col, _) if Beside::copied(*col)))
                .cloned()
                .collect(),
            ..filter.clone()
        };
        lower(&others, indexes).predicate
    };
    Lowered {
        predicate: p,
        numbers,
        needs_report,
        // A driving range tests the copied columns itself.
        needs_result: needs_result && !beside_only,
        anchored,
        sources,
        beside,
        rest,
        range_first: false,
    }
}

/// `col in (values)` or `col notin (values)`, where a missing value counts as `""`.
fn set_condition(p: &mut Predicate, col: ResultColumn, values: &[String], negated: bool, indexes: Indexes) {
    let (plain, nullable) = column(col);
    let sql = if indexes == Indexes::Avoid && !on_report(col) {
        format!("+{plain}")
    } else {
        plain.to_owned()
    };
    set_test(p, &sql, nullable, values, negated);
}

/// Tests the column expression `sql` against `values` (nothing when it holds for every row).
fn set_test(p: &mut Predicate, sql: &str, nullable: bool, values: &[String], negated: bool) {
    if values.is_empty() {
        // `in ()` matches nothing, `notin ()` everything.
        if !negated {
            p.push("0", []);
        }
        return;
    }
    let list = placeholders(values.len());
    let empty_listed = values.iter().any(String::is_empty);
    let condition = match (negated, nullable, empty_listed) {
        (false, true, true) => format!("({sql} IN ({list}) OR {sql} IS NULL)"),
        (false, _, _) => format!("{sql} IN ({list})"),
        (true, true, false) => format!("({sql} IS NULL OR {sql} NOT IN ({list}))"),
        (true, true, true) => format!("({sql} IS NOT NULL AND {sql} NOT IN ({list}))"),
        (true, false, _) => format!("{sql} NOT IN ({list})"),
    };
    p.push(condition, texts(values));
}

/// Escapes `%`, `_` and the escape character itself for `LIKE … ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `FROM …` of a query that reads results and maybe their reports.
fn from(needs_report: bool) -> &'static str {
    if needs_report {
        " FROM results AS r JOIN objects AS o ON o.id = r.object_id"
    } else {
        " FROM results AS r"
    }
}

/// The `ORDER BY` of an order.
fn order_by(order: ResultOrder) -> String {
    let tail = "o.namespace, o.name, o.resource, r.idx";
    match order {
        ResultOrder::Report => tail.to_owned(),
        ResultOrder::Severity { ascending } => format!("{RANK_SQL} {}, {tail}", direction(ascending)),
        ResultOrder::Timestamp { ascending } => format!("{TIME_SQL} {}, {tail}", direction(ascending)),
    }
}

/// The `ORDER BY` of a page read through the filter's index and sorted: `+` keeps SQLite
/// from walking `objects_order` to skip the sort (which a small `LIMIT` tempts it to do, and
/// which reads every report when the filter matches few results).
fn sorted_order_by(order: ResultOrder) -> String {
    order_by(order).replacen("o.namespace", "+o.namespace", 1)
}

fn direction(ascending: bool) -> &'static str {
    if ascending {
        "ASC"
    } else {
        "DESC"
    }
}

/// Reads one page of a query in one read transaction.
pub(crate) fn query(conn: &mut Connection, q: &ResultQuery) -> Result<ResultPage> {
    let tx = conn.transaction().map_err(db_error)?;
    let revision: i64 = tx
        .query_row("SELECT revision FROM meta WHERE id = 1", [], |r| r.get(0))
        .map_err(db_error)?;
    if crate::results::matches_nothing(&q.filter) {
        return Ok(ResultPage {
            revision,
            items: Vec::new(),
            more: false,
            total: q.count.then_some(0),
        });
    }
    let lowered = lower_live(&tx, &q.filter, Indexes::Use)?;
    // Filters combining report columns, result, severity and source are counted exactly from
    // the per-report counts (a few rows per report), not by reading each matching result row
    // for the columns its index lacks; so is a source alone, which no result index has (its
    // count read every result row: 188 ms at 1,000,000 results).
    let conditions = q.filter.conditions.len() + usize::from(q.filter.namespace.is_some());
    let unindexed = matches!(
        q.filter.conditions.as_slice(),
        [Condition::In(ResultColumn::Source, _) | Condition::NotIn(ResultColumn::Source, _)]
    );
    let counted = match conditions {
        0 => None,
        // The probe below decides the page's plan faster than a pass over every count.
        1 if !(unindexed && q.count) => None,
        _ => summary::counts_total(&tx, &q.filter)?,
    };
    let total = match (q.count, counted) {
        (false, _) => None,
        (true, Some(n)) => Some(n),
        (true, None) => Some(count(&tx, &lowered, None)?),
    };
    let limit = q.limit.clamp(1, MAX_PAGE);
    let threshold = sort_threshold(&q.filter, &lowered, limit);

    // Report order: walk the reports in order when the filter matches many results (a
    // bounded probe tells, unless counted), unless a narrow numeric range bounds them
    // ([`numbers::range_within`]): then the page is read sorted, without a probe.
    let bounded = q.order == ResultOrder::Report
        && total.or(counted).is_none_or(|n| n > threshold as u64)
        && numbers::range_within(&tx, &lowered, SORT_THRESHOLD)?;
    let known = match total.or(counted) {
        Some(n) => Some(n),
        None if q.order == ResultOrder::Report && !bounded => {
            Some(count(&tx, &lowered, Some(threshold + 1))?)
        }
        None => None,
    };
    if known == Some(0) {
        // Nothing matches: the page is empty, without reading the candidates a second time
        // (`property=score>=8` with `severity in (medium,low)`: the 83,498 rows of the range
        // at 1,000,000 results, once for the count or the probe and again for the page).
        return Ok(ResultPage {
            revision,
            items: Vec::new(),
            more: false,
            total,
        });
    }
    let walk = q.order == ResultOrder::Report && !bounded && known.is_some_and(|n| n > threshold as u64);
    let mut p = if walk {
        lower(&q.filter, Indexes::Avoid).predicate(NumberForm::Probe)
    } else {
        lowered.predicate(lowered.number_form())
    };
    if let Some(cursor) = &q.after {
        after(&mut p, q.order, cursor);
    }
    let join = if walk {
        // CROSS JOIN keeps `objects` as the outer loop (SQLite never reorders it).
        " FROM objects AS o CROSS JOIN results AS r ON r.object_id = o.id"
    } else {
        " FROM results AS r JOIN objects AS o ON o.id = r.object_id"
    };
    let sql = format!(
        "SELECT {RECORD_COLUMNS}{join}{} ORDER BY {} LIMIT ?",
        p.where_sql(),
        if walk {
            order_by(q.order)
        } else {
            sorted_order_by(q.order)
        }
    );
    let mut params = p.params;
    params.push(Value::Integer(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
    let mut stmt = tx.prepare_cached(&sql).map_err(db_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(db_error)?;
    let mut items = Vec::with_capacity(limit.min(1024));
    let mut more = false;
    while let Some(row) = rows.next().map_err(db_error)? {
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(record(row).map_err(db_error)?);
    }
    Ok(ResultPage {
        revision,
        items,
        more,
        total,
    })
}

/// Up to how many matches a report-order page is read through the filter's indexes and
/// sorted ([`SORT_THRESHOLD`]). A message test has no index: every candidate of the other
/// conditions is read for its message, by the bounded probe and again by the sorted page,
/// while the walk in report order reads the reports' rows together and stops after the page.
/// `message~openssl` with `severity=critical` (7,355 of 1,000,000 results) read the 94,126
/// critical rows twice: 1.1-1.2 s of CPU, 0.09 s walked (BENCHMARKS.md, session 9). Such a
/// filter walks from [`MESSAGE_SORT_THRESHOLD`] matches (or the page's size): a few rows of
/// the probe tell, and a smaller page is never read differently from a larger one unless it
/// is cheaper. A filter whose numeric range holds at most [`SORT_THRESHOLD`] numbers is read
/// sorted whatever its message test ([`numbers::range_within`]).
fn sort_threshold(filter: &ResultFilter, lowered: &Lowered, limit: usize) -> usize {
    let message = filter
        .conditions
        .iter()
        .any(|c| matches!(c, Condition::MessageContains(text) if !text.is_empty()));
    if message && !lowered.anchored {
        limit.clamp(MESSAGE_SORT_THRESHOLD, SORT_THRESHOLD)
    } else {
        SORT_THRESHOLD
    }
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<ResultRecord> {
    Ok(ResultRecord {
        namespace: r.get(0)?,
        resource: r.get(1)?,
        report: r.get(2)?,
        report_uid: r.get(3)?,
        report_revision: r.get(4)?,
        report_created: r.get(5)?,
        index: r.get(6)?,
        policy: r.get(7)?,
        rule: r.get(8)?,
        result: r.get(9)?,
        severity: r.get(10)?,
        category: r.get(11)?,
        source: r.get(12)?,
        scored: r.get::<_, Option<i64>>(13)?.map(|v| v != 0),
        timestamp: r.get(14)?,
        message: r.get(15)?,
        properties: r.get(16)?,
        resources: r.get(17)?,
        subject_api_version: r.get(18)?,
        subject_kind: r.get(19)?,
        subject_namespace: r.get(20)?,
        subject_name: r.get(21)?,
        subject_uid: r.get(22)?,
    })
}

mod cursor;
mod numbers;
mod onepass;
mod properties;
mod subject_uid;
mod summary;
mod top;
use cursor::after;
#[cfg(test)]
use numbers::count_sql;
use numbers::{count, push_number, Beside, NumberForm, NumberTest, Reports};
pub(crate) use onepass::register as register_tally;
use properties::property_condition;
pub(crate) use summary::summarize;

#[cfg(test)]
#[path = "results_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "results/plan_tests.rs"]
mod plan_tests;

#[cfg(test)]
#[path = "results/uid_tests.rs"]
mod uid_tests;

#[cfg(test)]
#[path = "results/message_tests.rs"]
mod message_tests;

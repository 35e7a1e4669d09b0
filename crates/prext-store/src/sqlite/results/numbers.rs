//! Numeric property tests (`properties.score>=8`) over `result_numbers` (one row per result
//! and numeric property, with its result's result and severity; index `(key, value, result,
//! severity)`): how a test is written (a range that drives, or a probe per result row), which
//! of several drives, the reports a range is narrowed to, the counts driven by a range, and
//! the result and severity conditions tested beside each number ([`Beside`]).

use rusqlite::types::Value;
use rusqlite::Connection;

use super::{column, from, placeholders, set_test, texts, Lowered};
use crate::results::{Condition, ResultColumn, ResultFilter};
use crate::sqlite::db_error;
use crate::sqlite::select::Predicate;
use crate::Result;

/// Most index rows counted per numeric range to find the narrowest ([`narrowest_first`]).
const RANGE_CAP: usize = 20_000;

/// Puts several numeric tests narrowest first (the one that drives a query), by counting
/// their ranges in the index (covering, up to [`RANGE_CAP`] rows each); equal sizes keep the
/// filter's order.
pub(super) fn narrowest_first(tx: &Connection, numbers: &mut Vec<NumberTest>) -> Result<()> {
    if numbers.len() < 2 {
        return Ok(());
    }
    let mut sized = Vec::with_capacity(numbers.len());
    for n in numbers.drain(..) {
        sized.push((range_rows(tx, &n)?, n));
    }
    sized.sort_by_key(|(rows, _)| *rows);
    numbers.extend(sized.into_iter().map(|(_, n)| n));
    Ok(())
}

/// The rows of a numeric test's range in the index, counted up to [`RANGE_CAP`].
fn range_rows(tx: &Connection, n: &NumberTest) -> Result<i64> {
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM result_numbers WHERE key = ? AND value {} ? LIMIT ?)",
        n.op
    );
    let cap = i64::try_from(RANGE_CAP).unwrap_or(i64::MAX);
    tx.prepare_cached(&sql)
        .and_then(|mut s| s.query_row(rusqlite::params![n.key, n.bound, cap], |r| r.get(0)))
        .map_err(db_error)
}

/// Whether the narrowest numeric range of an unanchored filter holds at most `bound` numbers
/// (counted in its index, covering): it then bounds the filter's matches, and a page read
/// through the filter's indexes and sorted reads at most that many candidates, so no probe of
/// the matches is needed to choose it. A message test would otherwise walk the reports in
/// order from 500 matches ([`super::sort_threshold`]), reading every report's rows until the
/// page is full: `score>=9.9` (7,938 numbers) with `message~openssl` (1,338 matches) walked
/// about 370,000 result rows for the first 500 (0.6 s of CPU at 1,000,000 results), where the
/// range's 7,938 rows, read twice, cost 0.08 s (BENCHMARKS.md, session 10).
pub(super) fn range_within(tx: &Connection, lowered: &Lowered, bound: usize) -> Result<bool> {
    let Some(first) = lowered.numbers.first() else {
        return Ok(false);
    };
    if lowered.number_form() != NumberForm::Drive {
        return Ok(false);
    }
    let rows = range_rows(tx, first)?;
    Ok(usize::try_from(rows).is_ok_and(|rows| rows <= bound))
}

/// Whether the narrowest numeric range of an unanchored filter should drive it rather than
/// the filter's policies: their index entries and the range's, each counted up to
/// [`RANGE_CAP`], tell which is narrower. SQLite's statistics give a policy a few rows (most
/// are CVE ids) and start from a Kyverno policy's 40,000 rows, each read for its report and
/// position to probe its numbers, where `score>=9.9` holds 7,938 (1,000,000 results,
/// BENCHMARKS.md, session 9). The counts read indexes only.
pub(super) fn range_drives(tx: &Connection, filter: &ResultFilter, lowered: &Lowered) -> Result<bool> {
    let Some(first) = lowered.numbers.first() else {
        return Ok(false);
    };
    if lowered.anchored {
        return Ok(false);
    }
    let mut p = Predicate::default();
    for c in &filter.conditions {
        if let Condition::In(ResultColumn::Policy, values) = c {
            let (plain, nullable) = column(ResultColumn::Policy);
            set_test(&mut p, plain, nullable, values, false);
        }
    }
    if p.params.is_empty() {
        return Ok(false);
    }
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM results AS r{} LIMIT ?)",
        p.where_sql()
    );
    let mut params = p.params;
    params.push(Value::Integer(i64::try_from(RANGE_CAP).unwrap_or(i64::MAX)));
    let policy_rows: i64 = tx
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(rusqlite::params_from_iter(params.iter()), |r| r.get(0)))
        .map_err(db_error)?;
    Ok(range_rows(tx, first)? < policy_rows)
}

/// Conditions on the columns `result_numbers` copies from its result row (`result`,
/// `severity`), each as (column, values, negated).
#[derive(Debug, Clone, Default)]
pub(super) struct Beside(pub(super) Vec<(ResultColumn, Vec<String>, bool)>);

impl Beside {
    pub(super) fn copied(col: ResultColumn) -> bool {
        matches!(col, ResultColumn::Result | ResultColumn::Severity)
    }

    /// Adds the conditions as tests of `result_numbers AS {alias}` to `sql` (` AND …` each)
    /// and their values to `params`.
    pub(super) fn push(&self, sql: &mut String, params: &mut Vec<Value>, alias: &str) {
        for (col, values, negated) in &self.0 {
            // The same test as on the result row, of the copy: `r.severity` → `{alias}.severity`.
            let (plain, nullable) = column(*col);
            let copy = plain.replacen("r.", &format!("{alias}."), 1);
            let mut p = Predicate::default();
            set_test(&mut p, &copy, nullable, values, *negated);
            sql.push_str(&p.where_sql().replacen(" WHERE ", " AND ", 1));
            params.extend(p.params);
        }
    }
}

/// A numeric property test: `properties.<key> <op> <bound>`.
#[derive(Debug, Clone)]
pub(super) struct NumberTest {
    pub(super) key: String,
    pub(super) op: &'static str,
    pub(super) bound: f64,
}

/// How a numeric property test is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NumberForm {
    /// `r.rowid IN (the result rows of a range of result_numbers_key_value)`: the range drives
    /// the query (few matches, counts). Not `(object_id, idx) IN (…)`: SQLite may loop over the
    /// reports of that list and, for each, over the whole list again (quadratic: 0.6-1 s for
    /// 8,000 matches at 1,000,000 results); a list of rowids is read once.
    Drive,
    /// A primary-key probe of `result_numbers` per result row (the report-order walk, which
    /// must not be driven by the range).
    Probe,
}

/// The reports a driving numeric range is narrowed to: those whose per-report counts hold a
/// result of each asked-for source. A source is a tool, most often one per report, and no
/// result index has it: `property=score>=8` with `source=kube-bench` (no kube-bench result
/// has a score) read the 83,498 rows of the range and their result rows for none (0.5 s at
/// 1,000,000 results); the counts (a few rows per report) leave no report to read.
pub(super) struct Reports<'a>(pub(super) &'a [Vec<String>]);

impl Reports<'_> {
    /// `{alias}.object_id IN (the reports holding results of these sources)`.
    fn condition(alias: &str, sources: &[String]) -> String {
        format!(
            "{alias}.object_id IN (SELECT c.object_id FROM result_counts AS c WHERE c.source IN ({}))",
            placeholders(sources.len())
        )
    }

    /// Appends ` AND {alias}.object_id IN (…)` per source set.
    pub(super) fn push(&self, sql: &mut String, params: &mut Vec<Value>, alias: &str) {
        for sources in self.0 {
            sql.push_str(" AND ");
            sql.push_str(&Self::condition(alias, sources));
            params.extend(texts(sources));
        }
    }

    /// Adds `{alias}.object_id IN (…)` per source set to `p`.
    pub(super) fn narrow(&self, p: &mut Predicate, alias: &str) {
        for sources in self.0 {
            p.push(Self::condition(alias, sources), texts(sources));
        }
    }
}

/// Adds the numeric test `n` to `p`: a driving range also tests the result and severity
/// conditions `beside` inside its index (`result_numbers` holds them, schema version 11), so
/// only its matches reach their result rows (`property=score>=8` with `severity in
/// (medium,low)` looked up the 83,498 result rows of the range for none).
pub(super) fn push_number(
    p: &mut Predicate,
    n: &NumberTest,
    form: NumberForm,
    reports: &Reports<'_>,
    beside: &Beside,
) {
    let op = n.op;
    let mut params = vec![Value::Text(n.key.clone()), Value::Real(n.bound)];
    let sql = match form {
        NumberForm::Drive => {
            let mut sql = format!(
                "r.rowid IN (SELECT x.rowid FROM result_numbers AS n JOIN results AS x \
                 ON x.object_id = n.object_id AND x.idx = n.idx WHERE n.key = ? AND n.value {op} ?"
            );
            beside.push(&mut sql, &mut params, "n");
            reports.push(&mut sql, &mut params, "n");
            sql.push(')');
            sql
        }
        NumberForm::Probe => format!(
            "EXISTS (SELECT 1 FROM result_numbers AS n WHERE n.object_id = r.object_id \
             AND n.idx = r.idx AND n.key = ? AND n.value {op} ?)"
        ),
    };
    p.push(sql, params);
}

/// Counts the matches of a lowered filter, stopping at `cap` when given. A numeric property
/// test drives the count from its index range; the result and report rows are read only when
/// another condition needs them.
pub(super) fn count(conn: &Connection, lowered: &Lowered, cap: Option<usize>) -> Result<u64> {
    let (sql, params) = count_sql(lowered, cap);
    let n: i64 = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(rusqlite::params_from_iter(params.iter()), |r| r.get(0)))
        .map_err(db_error)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The statement of [`count`] and its parameters.
pub(super) fn count_sql(lowered: &Lowered, cap: Option<usize>) -> (String, Vec<Value>) {
    let driving = match lowered.number_form() {
        NumberForm::Drive => lowered.numbers.split_first(),
        NumberForm::Probe => None,
    };
    let (inner, params) = match driving {
        Some((first, rest)) => {
            let needs_result = lowered.needs_result || !rest.is_empty();
            // Without the result row, its result and severity are read beside the number.
            let mut p = if needs_result {
                lowered.predicate.clone()
            } else {
                lowered.rest.clone()
            };
            let mut from = String::from(" FROM result_numbers AS d");
            if needs_result {
                // CROSS JOIN keeps the range outside when it was found the narrower.
                let join = if lowered.range_first {
                    " CROSS JOIN"
                } else {
                    " JOIN"
                };
                from.push_str(join);
                from.push_str(" results AS r ON r.object_id = d.object_id AND r.idx = d.idx");
            }
            if lowered.needs_report {
                from.push_str(" JOIN objects AS o ON o.id = d.object_id");
            }
            for n in rest {
                push_number(&mut p, n, NumberForm::Probe, &lowered.reports(), &lowered.beside);
            }
            let mut params = vec![Value::Text(first.key.clone()), Value::Real(first.bound)];
            let mut range = format!("d.key = ? AND d.value {} ?", first.op);
            lowered.beside.push(&mut range, &mut params, "d");
            lowered.reports().push(&mut range, &mut params, "d");
            params.extend(p.params.iter().cloned());
            let extra = p.where_sql().replacen(" WHERE ", " AND ", 1);
            let sql = format!("SELECT 1{from} WHERE {range}{extra}");
            (sql, params)
        }
        None => {
            let p = lowered.predicate(NumberForm::Probe);
            (
                format!("SELECT 1{}{}", from(lowered.needs_report), p.where_sql()),
                p.params,
            )
        }
    };
    let mut params = params;
    let sql = match cap {
        Some(cap) => {
            params.push(Value::Integer(i64::try_from(cap).unwrap_or(i64::MAX)));
            format!("SELECT count(*) FROM ({inner} LIMIT ?)")
        }
        None => format!("SELECT count(*) FROM ({inner})"),
    };
    (sql, params)
}

//! Summaries: counts of the matching results grouped by columns. Groupings and filters over
//! the report's columns, result, severity and source read the per-report counts
//! (`result_counts`, a few rows per report, written with them); anything else groups the result
//! rows (by policy through its covering index). A grouping of few values, and the breakdown of
//! a page's groups, are counted by a tally in one pass rather than sorted ([`super::onepass`]).

use rusqlite::types::Value;
use rusqlite::Connection;

use super::{column, from, lower_live, on_report, placeholders, reads_report, texts, Indexes};
use crate::results::{Condition, ResultColumn, ResultFilter, Summary, SummaryQuery, SummaryRow};
use crate::sqlite::db_error;
use crate::sqlite::select::Predicate;
use crate::Result;

/// Counts the matching results per group, in one read transaction; a paged query ranks the
/// groups first ([`super::top`]) and counts only the page's.
pub(crate) fn summarize(conn: &mut Connection, q: &SummaryQuery) -> Result<Summary> {
    let tx = conn.transaction().map_err(db_error)?;
    let revision: i64 = tx
        .query_row("SELECT revision FROM meta WHERE id = 1", [], |r| r.get(0))
        .map_err(db_error)?;
    // A grouping of few values: counted once, ranked and broken down from those counts.
    if let Some((rows, page)) = super::onepass::summarize(&tx, q, q.page.as_ref())? {
        return Ok(Summary { revision, rows, page });
    }
    let Some(page) = &q.page else {
        return Ok(Summary {
            revision,
            rows: rows(&tx, q)?,
            page: None,
        });
    };
    let groups = super::top::rank(&tx, q, page)?;
    let rows = match (q.group_by.first(), groups.groups.is_empty()) {
        (Some(col), false) => {
            let mut only = q.clone();
            only.page = None;
            let keys = groups.groups.iter().map(|g| g.group.clone()).collect();
            only.filter.conditions.push(Condition::In(*col, keys));
            // A page of up to a thousand groups has a few thousand counts: tallied, not sorted.
            let tallied = match (counts_sql(&only), groups.groups.len() <= 1_000) {
                (None, true) => super::onepass::page_rows(&tx, &only)?,
                _ => None,
            };
            match tallied {
                Some(rows) => rows,
                None => rows(&tx, &only)?,
            }
        }
        _ => Vec::new(),
    };
    Ok(Summary {
        revision,
        rows,
        page: Some(groups),
    })
}

/// The groups of an unpaged summary.
fn rows(tx: &Connection, q: &SummaryQuery) -> Result<Vec<SummaryRow>> {
    let lowered = lower_live(tx, &q.filter, Indexes::Use)?;
    let mut predicate = lowered.predicate(lowered.number_form());
    let sql = match counts_sql(q) {
        Some((sql, p)) => {
            predicate = p;
            sql
        }
        None => summary_sql(&predicate, lowered.needs_report, &q.group_by),
    };
    let mut stmt = tx.prepare_cached(&sql).map_err(db_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(predicate.params.iter()))
        .map_err(db_error)?;
    let n = q.group_by.len();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        let keys = (0..n)
            .map(|i| row.get::<_, Option<String>>(i))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_error)?;
        let count: i64 = row.get(n).map_err(db_error)?;
        out.push(SummaryRow {
            keys,
            count: u64::try_from(count).unwrap_or(0),
        });
    }
    Ok(out)
}

pub(super) use crate::results::counts_column;

/// A summary answered from the per-report counts (`result_counts`), when it groups and
/// filters only by report columns, result, severity and source: a few rows per report instead of
/// every result. `None` when the filter or the grouping needs the result rows.
fn counts_sql(q: &SummaryQuery) -> Option<(String, Predicate)> {
    let (p, mut needs_report) = counts_filter(&q.filter)?;
    let mut keys = Vec::with_capacity(q.group_by.len());
    for c in &q.group_by {
        let sql = counts_column(*c)?;
        needs_report |= on_report(*c);
        keys.push(match c {
            ResultColumn::Result | ResultColumn::Severity | ResultColumn::Source => {
                format!("nullif({sql}, '')")
            }
            _ => sql.to_owned(),
        });
    }
    let from = counts_from(needs_report);
    let sql = if keys.is_empty() {
        format!("SELECT coalesce(sum(c.n), 0){from}{}", p.where_sql())
    } else {
        let keys = keys.join(", ");
        format!(
            "SELECT {keys}, sum(c.n){from}{} GROUP BY {keys} ORDER BY {keys}",
            p.where_sql()
        )
    };
    Some((sql, p))
}

/// The number of results `filter` keeps, from the per-report counts; `None` when the filter
/// needs the result rows.
pub(super) fn counts_total(tx: &Connection, filter: &ResultFilter) -> Result<Option<u64>> {
    let Some((p, needs_report)) = counts_filter(filter) else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT coalesce(sum(c.n), 0){}{}",
        counts_from(needs_report),
        p.where_sql()
    );
    let n: i64 = tx
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(rusqlite::params_from_iter(p.params.iter()), |r| r.get(0)))
        .map_err(db_error)?;
    Ok(Some(u64::try_from(n).unwrap_or(0)))
}

/// `FROM …` of a query over the per-report counts.
pub(super) fn counts_from(needs_report: bool) -> &'static str {
    if needs_report {
        // Reports outside, in index order: the per-report counts are read by primary key.
        " FROM objects AS o CROSS JOIN result_counts AS c ON c.object_id = o.id"
    } else {
        " FROM result_counts AS c"
    }
}

/// The filter over the per-report counts, and whether it reads the reports; `None` when it
/// needs the result rows.
pub(super) fn counts_filter(filter: &ResultFilter) -> Option<(Predicate, bool)> {
    let mut p = Predicate::default();
    let mut needs_report = false;
    if let Some(ns) = &filter.namespace {
        p.push("o.namespace = ?", [Value::Text(ns.clone())]);
        needs_report = true;
    }
    for c in &filter.conditions {
        let (col, values, negated) = match c {
            Condition::In(col, values) => (*col, values, false),
            Condition::NotIn(col, values) => (*col, values, true),
            _ => return None,
        };
        let sql = counts_column(col)?;
        needs_report |= on_report(col);
        match (values.is_empty(), negated) {
            (true, false) => p.push("0", []),
            (true, true) => {}
            (false, _) => {
                let not = if negated { "NOT " } else { "" };
                p.push(
                    format!("{sql} {not}IN ({})", placeholders(values.len())),
                    texts(values),
                );
            }
        }
    }
    Some((p, needs_report))
}

/// The SQL of a summary. Grouping by a report column first counts per report and result
/// columns (one pass over `results`, no join per row), then joins the few per-report groups
/// with their reports.
fn summary_sql(p: &Predicate, needs_report: bool, group_by: &[ResultColumn]) -> String {
    let by_report = group_by.iter().any(|c| on_report(*c));
    // A result column that reads the report's row too (the subject's uid) needs it joined.
    let needs_report = needs_report || group_by.iter().any(|c| !on_report(*c) && reads_report(*c));
    let keys: Vec<&str> = group_by.iter().map(|c| column(*c).0).collect();
    let key_list = keys.join(", ");
    let select_keys = if keys.is_empty() {
        String::new()
    } else {
        format!("{key_list}, ")
    };
    let group = if keys.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {key_list} ORDER BY {key_list}")
    };
    if !by_report {
        return format!(
            "SELECT {select_keys}count(*){}{}{group}",
            from(needs_report),
            p.where_sql()
        );
    }
    // Per report: `s.k0, s.k1 …` are the result columns; report columns come from `o`.
    let result_keys: Vec<&str> = group_by
        .iter()
        .filter(|c| !on_report(**c))
        .map(|c| column(*c).0)
        .collect();
    let inner_keys: String = result_keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!(", {k} AS k{i}"))
        .collect();
    let inner_group: String = (0..result_keys.len()).map(|i| format!(", k{i}")).collect();
    let mut next = 0;
    let outer_keys: Vec<String> = group_by
        .iter()
        .map(|c| {
            if on_report(*c) {
                column(*c).0.to_owned()
            } else {
                next += 1;
                format!("s.k{}", next - 1)
            }
        })
        .collect();
    let outer = outer_keys.join(", ");
    format!(
        "SELECT {outer}, sum(s.n) FROM (SELECT r.object_id AS object_id{inner_keys}, count(*) AS n{}{} \
         GROUP BY r.object_id{inner_group}) AS s JOIN objects AS o ON o.id = s.object_id \
         GROUP BY {outer} ORDER BY {outer}",
        from(needs_report),
        p.where_sql()
    )
}

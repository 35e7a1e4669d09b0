//! Pages of summary groups: the groups of the first grouping column ranked by a count
//! (descending, ties by value) or by value, `LIMIT`ed in SQL, so "the ten policies with
//! the most critical failures" aggregates once and sorts only the groups, and a page in
//! value order stops after its groups (`GROUP BY` walks the column's index).
//!
//! The group of missing values (`NULL` or `""`, one group named `""`) is counted apart with
//! an index lookup and merged in, so the main statement groups the raw column and keeps the
//! index order.

use rusqlite::types::Value;
use rusqlite::Connection;

use super::summary::{counts_column, counts_filter, counts_from};
use super::{column, from, lower_live, on_report, reads_report, Indexes};
use crate::results::{GroupPage, GroupRank, GroupsPage, RankedGroup, SummaryQuery};
use crate::sqlite::db_error;
use crate::sqlite::select::Predicate;
use crate::Result;

/// Where the groups are counted from: the per-report counts or the result rows.
struct Source {
    /// The group column.
    key: String,
    result: &'static str,
    severity: &'static str,
    /// What one row counts for (`c.n` or 1).
    n: &'static str,
    from: &'static str,
    predicate: Predicate,
    /// [`leaders`] may rank the page: the groups are counted from the result rows and no
    /// namespace, report or subject of the filter drives the query.
    leaders: bool,
}

fn source(tx: &Connection, q: &SummaryQuery) -> Result<Option<Source>> {
    let Some(&col) = q.group_by.first() else {
        return Ok(None);
    };
    if let (Some(key), Some((predicate, needs_report))) = (counts_column(col), counts_filter(&q.filter)) {
        return Ok(Some(Source {
            key: key.to_owned(),
            result: "c.result",
            severity: "c.severity",
            n: "c.n",
            from: counts_from(needs_report || on_report(col)),
            predicate,
            leaders: false,
        }));
    }
    let lowered = lower_live(tx, &q.filter, Indexes::Use)?;
    Ok(Some(Source {
        key: column(col).0.to_owned(),
        result: "r.result",
        severity: "r.severity",
        n: "1",
        from: from(lowered.needs_report || reads_report(col)),
        predicate: lowered.predicate(lowered.number_form()),
        leaders: !lowered.anchored,
    }))
}

/// The ranking count of a group as SQL, and its parameters.
fn measure(s: &Source, rank: &GroupRank) -> (String, Vec<Value>) {
    let n = s.n;
    match rank {
        GroupRank::Key | GroupRank::Total => (format!("sum({n})"), Vec::new()),
        GroupRank::Result(r) => (
            format!("sum(CASE WHEN {} = ? THEN {n} ELSE 0 END)", s.result),
            vec![Value::Text(r.clone())],
        ),
        GroupRank::Cell(r, sev) => (
            format!(
                "sum(CASE WHEN {} = ? AND {} = ? THEN {n} ELSE 0 END)",
                s.result, s.severity
            ),
            vec![Value::Text(r.clone()), Value::Text(sev.clone())],
        ),
    }
}

/// The groups a statement returns, `(group, value)` per row.
fn ranked(tx: &Connection, sql: &str, params: &[Value], limit: usize) -> Result<Vec<RankedGroup>> {
    let mut groups = Vec::with_capacity(limit.min(1024) + 1);
    let mut stmt = tx.prepare_cached(sql).map_err(db_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(db_error)?;
    while let Some(row) = rows.next().map_err(db_error)? {
        groups.push(RankedGroup {
            group: row.get(0).map_err(db_error)?,
            value: count(row.get(1).map_err(db_error)?),
        });
    }
    Ok(groups)
}

/// The named groups of a page ranked by a result (or a result × severity cell) over the
/// result rows, counted over the rows with that result only, when those fill the page: a group
/// without any ranks after every group with some, so the first `limit + 1` of them are the
/// page's (and show that more follow). The rows are still read in the group's index order
/// (by policy: `results_policy_rule_result_severity`, which holds the result and severity), but
/// only the groups with such results are counted and sorted: "the 10 policies with the most
/// critical failures" sorts the few thousand policies with some, not all 100,000 (0.19 → 0.06 s
/// of CPU at 1,000,000 results, `top_tests.rs`). `None` when the page needs the groups
/// without any (fewer with some than the page holds, or a page after them), or the filter has
/// its own anchor.
fn leaders(tx: &Connection, s: &Source, page: &GroupPage, limit: usize) -> Result<Option<Vec<RankedGroup>>> {
    let Some((sql, params)) = leaders_sql(s, page, limit) else {
        return Ok(None);
    };
    let groups = ranked(tx, &sql, &params, limit)?;
    Ok((groups.len() > limit).then_some(groups))
}

/// The statement of [`leaders`] and its parameters; `None` when it does not apply.
fn leaders_sql(s: &Source, page: &GroupPage, limit: usize) -> Option<(String, Vec<Value>)> {
    let (result, severity) = match &page.rank {
        GroupRank::Result(r) => (r, None),
        GroupRank::Cell(r, sev) => (r, Some(sev)),
        GroupRank::Key | GroupRank::Total => return None,
    };
    if !s.leaders || page.after.as_ref().is_some_and(|c| c.value == 0) {
        return None;
    }
    let key = &s.key;
    let mut p = s.predicate.clone();
    p.push(format!("{key} <> ''"), []);
    // `+`: tested on each row of the group's index, not searched in `results_result_severity`
    // (which does not hold the group: a table lookup per row).
    p.push("+r.result = ?", [Value::Text(result.clone())]);
    if let Some(sev) = severity {
        p.push("+r.severity = ?", [Value::Text(sev.clone())]);
    }
    let mut params: Vec<Value> = p.params.clone();
    let mut having = String::new();
    if let Some(c) = &page.after {
        let v = Value::Integer(i64::try_from(c.value).unwrap_or(i64::MAX));
        having = " HAVING (v < ? OR (v = ? AND g > ?))".to_owned();
        params.extend([v.clone(), v, Value::Text(c.group.clone())]);
    }
    params.push(Value::Integer(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {key} AS g, count(*) AS v{}{} GROUP BY {key}{having} ORDER BY v DESC, g LIMIT ?",
        s.from,
        p.where_sql(),
    );
    Some((sql, params))
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Ranks the groups of `q` and returns the page's, in order.
pub(crate) fn rank(tx: &Connection, q: &SummaryQuery, page: &GroupPage) -> Result<GroupsPage> {
    let Some(s) = source(tx, q)? else {
        return Ok(GroupsPage::default());
    };
    let limit = page.limit.clamp(1, prext_api::results::rank::MAX_GROUPS);
    let (m, m_params) = measure(&s, &page.rank);
    let key = &s.key;

    // The named groups.
    let mut p = s.predicate.clone();
    p.push(format!("{key} <> ''"), []);
    let mut having = String::new();
    let mut having_params = Vec::new();
    match (&page.rank, &page.after) {
        (GroupRank::Key, Some(c)) => p.push(format!("{key} > ?"), [Value::Text(c.group.clone())]),
        (_, Some(c)) => {
            let v = Value::Integer(i64::try_from(c.value).unwrap_or(i64::MAX));
            having = format!(" HAVING (v < ? OR (v = ? AND {key} > ?))");
            having_params = vec![v.clone(), v, Value::Text(c.group.clone())];
        }
        (_, None) => {}
    }
    let order = match page.rank {
        GroupRank::Key => key.clone(),
        _ => format!("v DESC, {key}"),
    };
    let mut groups = match leaders(tx, &s, page, limit)? {
        Some(groups) => groups,
        None => {
            let sql = format!(
                "SELECT {key}, {m} AS v{}{} GROUP BY {key}{having} ORDER BY {order} LIMIT ?",
                s.from,
                p.where_sql(),
            );
            let mut params = m_params.clone();
            params.extend(p.params.iter().cloned());
            params.extend(having_params);
            params.push(Value::Integer(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
            ranked(tx, &sql, &params, limit)?
        }
    };

    // The group of missing values, "", which sorts before every named group.
    let mut p = s.predicate.clone();
    p.push(format!("({key} IS NULL OR {key} = '')"), []);
    let sql = format!("SELECT {m}, sum({}){}{}", s.n, s.from, p.where_sql());
    let mut params = m_params;
    params.extend(p.params.iter().cloned());
    let (value, total): (Option<i64>, Option<i64>) = tx
        .prepare_cached(&sql)
        .and_then(|mut st| {
            st.query_row(rusqlite::params_from_iter(params.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .map_err(db_error)?;
    if total.unwrap_or(0) > 0 {
        let missing = RankedGroup {
            group: String::new(),
            value: count(value.unwrap_or(0)),
        };
        let wanted = page
            .after
            .as_ref()
            .is_none_or(|c| page.rank.after(missing.value, "", c));
        if wanted {
            // Before the first group it does not rank below (ties go to "").
            let at = match page.rank {
                GroupRank::Key => 0,
                _ => groups
                    .iter()
                    .position(|g| g.value <= missing.value)
                    .unwrap_or(groups.len()),
            };
            groups.insert(at, missing);
        }
    }
    let more = groups.len() > limit;
    groups.truncate(limit);
    Ok(GroupsPage { groups, more })
}

#[cfg(test)]
#[path = "top_tests.rs"]
pub(super) mod tests;

//! The ranking of policies by a result (× severity) count without hashing every policy: "the
//! ten policies with most high/critical failures" over 1,000,000 results counts ~170,000 rows
//! into ~100,000 policies. Hashed, that aggregate spills to disk (`work_mem`; the planner
//! cannot estimate the groups of an expression) and is most of the statement's time.
//!
//! `results_result_severity` is `(result, severity, cluster, policy)`: for one result, one
//! severity and the cluster, its entries come in policy order. The ranking reads one such range
//! per severity, merges them in policy order (`Merge Append`), counts each policy as it streams
//! past (`GroupAggregate`: no hash table, no sort) and keeps the page's groups with a top-N sort.
//! The planner prefers a hash over the merged ranges whatever their size (it estimates 200
//! groups over a `UNION ALL`), so the statement runs in a read-only transaction with
//! `enable_hashagg` and parallel workers off for it alone ([`SETTINGS`]).
//!
//! It serves a ranking by a result or a cell of the policies (the first grouping column) when
//! the filter names no report column and does not test the result; the severities to read are
//! the filter's list, else the result's own, looked up first ([`Merged::look_up`]) and checked
//! complete in the statement; other filter conditions are tested on each range's rows. Rows with no
//! policy (or `""`) are the group `""`, counted apart. While a deleted report's rows await
//! their purge (`purges`, see `rows_source`) the ranking is the general one, behind one-time
//! filters as there.
//!
//! The page's policies are then broken down by result and severity range by range too
//! ([`Merged::breakdown`]): the rows of the ten policies with most failures are most rows of
//! the table's failing policies (388,746 index entries over 1,000,000 results), which read
//! and sorted were as long as the ranking.

use super::super::{clean, lower_rows, Sql};
use crate::postgres::error::pg_error;
use crate::results::{Condition, GroupRank, ResultColumn, ResultFilter, SummaryQuery};
use crate::Result;

/// The settings of the transaction that runs a merged ranking (`SET LOCAL`: they end with it).
pub(super) const SETTINGS: &str =
    "SET LOCAL enable_hashagg = off; SET LOCAL max_parallel_workers_per_gather = 0";

/// A merged ranking's plan: the result it counts, the severities (one range each) and the
/// filter's other conditions.
pub(super) struct Merged {
    result: String,
    severities: Vec<String>,
    /// The severities the filter admits, when it lists them (the breakdown's ranges).
    admitted: Option<Vec<String>>,
    /// Whether `severities` are those of the result in the index (the filter lists none:
    /// [`Merged::look_up`]), so that the statement checks that no row has another.
    found: bool,
    rest: ResultFilter,
}

impl Merged {
    /// The merged ranking of `q`'s page ranked by `rank`, if it can serve it (see the module).
    pub(super) fn plan(q: &SummaryQuery, rank: &GroupRank) -> Option<Merged> {
        if q.group_by.first() != Some(&ResultColumn::Policy) || q.filter.namespace.is_some() {
            return None;
        }
        let (result, cell) = match rank {
            GroupRank::Result(r) => (r, None),
            GroupRank::Cell(r, s) if !s.is_empty() => (r, Some(clean(s))),
            _ => return None,
        };
        // The severities the filter admits, if it lists them.
        let mut severities: Option<Vec<String>> = None;
        if result.is_empty() {
            return None;
        }
        let mut rest = q.filter.clone();
        rest.conditions.clear();
        for condition in &q.filter.conditions {
            match condition {
                Condition::In(ResultColumn::Severity, values) => {
                    if values.iter().any(String::is_empty) {
                        return None; // Also the rows without a severity: no range of their own.
                    }
                    let listed: Vec<String> = values.iter().map(|v| clean(v)).collect();
                    severities = Some(match severities {
                        None => listed,
                        Some(s) => s.into_iter().filter(|v| listed.contains(v)).collect(),
                    });
                }
                Condition::NotIn(ResultColumn::Severity, values) => {
                    let s = severities.as_mut()?;
                    s.retain(|v| !values.iter().any(|n| clean(n) == *v));
                }
                Condition::In(col, _) | Condition::NotIn(col, _) if crate::rows::on_report(*col) => {
                    return None
                }
                Condition::In(ResultColumn::Result, _) | Condition::NotIn(ResultColumn::Result, _) => {
                    return None
                }
                other => rest.conditions.push(other.clone()),
            }
        }
        let admitted = severities.map(|mut s| {
            s.sort();
            s.dedup();
            s
        });
        let severities = match (&cell, &admitted) {
            (Some(c), Some(a)) => a.iter().filter(|s| *s == c).cloned().collect(),
            (Some(c), None) => vec![c.clone()],
            (None, Some(a)) => a.clone(),
            (None, None) => Vec::new(),
        };
        let found = cell.is_none() && admitted.is_none();
        if severities.is_empty() && !found {
            return None;
        }
        Some(Merged {
            result: result.clone(),
            severities,
            admitted,
            found,
            rest,
        })
    }

    /// When the filter lists no severity: the severities of the result's rows, in the index's
    /// order, found by skipping through `(result, severity, …)` (a lookup per value, every
    /// cluster). `false` when there are none (nothing to merge).
    pub(super) async fn look_up(&mut self, client: &deadpool_postgres::Object) -> Result<bool> {
        if !self.found {
            return Ok(true);
        }
        let rows = client
            .query(
                "WITH RECURSIVE sv (s) AS (SELECT min(severity) FROM results WHERE result = $1 \
                 UNION ALL SELECT (SELECT min(r.severity) FROM results AS r WHERE r.result = $1 \
                 AND r.severity > sv.s) FROM sv WHERE sv.s IS NOT NULL) SELECT s FROM sv WHERE s IS NOT NULL",
                &[&self.result],
            )
            .await
            .map_err(pg_error)?;
        self.severities = rows
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(pg_error)?;
        Ok(!self.severities.is_empty())
    }

    /// The counts `s (k, k0, k1, n)` by result and severity of the page's groups `g` (the
    /// grouping is policy, result, severity): a count of one range of
    /// `(result, severity, cluster, policy)` for each group, result and severity, instead of
    /// every row of the group's policies read and sorted. The results (`rv`), and the
    /// severities unless the filter lists them (`sv`), are found by skipping through the
    /// indexes (recursive: a few lookups each); rows without a result or a policy are read
    /// apart (a range each). `rows` is ` FROM … WHERE …` of the filter's rows
    /// (`rows_source`). Returns the recursive CTEs and `s`.
    pub(super) fn breakdown(&self, sql: &mut Sql, rows: &str) -> (String, String) {
        let count = |cond: &str| format!("(SELECT count(*){rows} AND {cond} AND r.policy = g.g)");
        let (sv_cte, sv_from, no_severity) = match &self.admitted {
            Some(a) => {
                let listed = sql.bind(a.clone(), "text[]");
                (String::new(), format!("unnest({listed}) AS sv (s)"), String::new())
            }
            None => (
                "sv (s) AS (SELECT min(severity) FROM results UNION ALL SELECT \
                 (SELECT min(r.severity) FROM results AS r WHERE r.severity > sv.s) FROM sv WHERE sv.s IS NOT NULL), "
                    .to_owned(),
                "sv".to_owned(),
                format!(
                    " UNION ALL SELECT g.g, nullif(rv.v, ''), NULL, {} FROM g, rv WHERE rv.v IS NOT NULL",
                    count("r.result = rv.v AND r.severity IS NULL")
                ),
            ),
        };
        let ctes = format!(
            "rv (v) AS (SELECT min(result) FROM results UNION ALL \
             SELECT (SELECT min(r.result) FROM results AS r WHERE r.result > rv.v) FROM rv WHERE rv.v IS NOT NULL), {sv_cte}"
        );
        let s = format!(
            "s AS (SELECT b.k, b.k0, b.k1, sum(b.n)::bigint AS n FROM (\
             SELECT g.g AS k, nullif(rv.v, '') AS k0, nullif(sv.s, '') AS k1, {} AS n \
             FROM g, rv, {sv_from} WHERE rv.v IS NOT NULL AND sv.s IS NOT NULL{no_severity} \
             UNION ALL SELECT g.g, NULL, nullif(x.severity, ''), 1 FROM g CROSS JOIN LATERAL (\
             SELECT r.severity{rows} AND r.result IS NULL AND r.policy = g.g) AS x \
             UNION ALL SELECT g.g, nullif(x.result, ''), nullif(x.severity, ''), 1 FROM g CROSS JOIN LATERAL (\
             SELECT r.result, r.severity{rows} AND r.policy IS NULL AND g.g = '') AS x\
             ) AS b WHERE b.n > 0 GROUP BY 1, 2, 3)",
            count("r.result = rv.v AND r.severity = sv.s"),
        );
        (ctes, s)
    }

    /// The ranked groups `(g, v)` of the page, best first, at most `l` (a placeholder): those
    /// with a count above 0 only. `after` is the cursor's condition on `x.g` / `x.v` (or
    /// `true`); `general` the general ranking of the same groups with a further condition,
    /// which stands for this one while a purge is pending in the cluster, or when severities
    /// were looked up and a row of the result has another (written since, or none).
    pub(super) fn ranking(
        &self,
        sql: &mut Sql,
        cluster: &str,
        after: &str,
        general: &dyn Fn(&str) -> String,
        l: &str,
    ) -> String {
        // The filter's other conditions, without the report (no report column in the question).
        let saved = std::mem::take(&mut sql.conditions);
        let c = lower_rows(sql, cluster, &self.rest, false);
        let conds = std::mem::replace(&mut sql.conditions, saved).join(" AND ");
        let r = sql.bind(self.result.clone(), "text");
        let placeholders: Vec<String> = self
            .severities
            .iter()
            .map(|s| sql.bind(s.clone(), "text"))
            .collect();
        let mut not_purging = format!("NOT EXISTS (SELECT 1 FROM purges WHERE cluster = {c})");
        if self.found {
            // No row of the result outside the severities found, in their gaps (index ranges).
            let mut gaps = vec!["r.severity IS NULL".to_owned()];
            let mut below = None;
            for s in &placeholders {
                gaps.push(match below {
                    None => format!("r.severity < {s}"),
                    Some(b) => format!("(r.severity > {b} AND r.severity < {s})"),
                });
                below = Some(s);
            }
            if let Some(b) = below {
                gaps.push(format!("r.severity > {b}"));
            }
            not_purging = format!(
                "{not_purging} AND NOT EXISTS (SELECT 1 FROM results AS r WHERE r.cluster = {c} \
                 AND r.result = {r} AND ({}))",
                gaps.join(" OR ")
            );
        }
        let ranges: Vec<String> = placeholders
            .iter()
            .map(|s| {
                format!(
                    "(SELECT r.policy FROM results AS r WHERE {conds} AND r.result = {r} AND r.severity = {s} \
                     AND r.policy > '' AND {not_purging} ORDER BY r.policy)"
                )
            })
            .collect();
        let all = sql.bind(self.severities.clone(), "text[]");
        format!(
            "SELECT x.g, x.v FROM (\
             SELECT r.policy AS g, count(*)::bigint AS v FROM ({}) AS r GROUP BY 1 \
             UNION ALL SELECT '' AS g, count(*)::bigint AS v FROM results AS r WHERE {conds} \
             AND r.result = {r} AND r.severity = ANY ({all}) AND (r.policy IS NULL OR r.policy = '') \
             AND {not_purging} HAVING count(*) > 0 \
             UNION ALL ({})) AS x WHERE {after} ORDER BY x.v DESC, x.g COLLATE \"C\" LIMIT {l}",
            ranges.join(" UNION ALL "),
            general(&format!("NOT ({not_purging})")),
        )
    }
}

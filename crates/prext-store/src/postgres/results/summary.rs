//! Summaries: counts of a cluster's matching results grouped by columns, in one statement
//! (the cluster's revision and the groups come from the same snapshot).
//!
//! As on SQLite, a nullable column's empty value is grouped with its missing value, and the
//! groups come out ordered by their keys byte-wise, missing values first.

use super::{column, counts, lower_rows, missing_counter, Sql};
use crate::postgres::error::pg_error;
use crate::results::{
    Condition, GroupPage, GroupRank, GroupsPage, RankedGroup, ResultColumn, Summary, SummaryQuery, SummaryRow,
};
use crate::rows::on_report;
use crate::Result;
use merged::Merged;

mod merged;

/// Whether the result rows matching `q`'s filter and grouping need their report's columns:
/// when they do not, statements read `results` alone (no join to `objects`), so that grouping
/// by a result-row column can be an index-only scan (docs/postgres.md).
fn needs_report(q: &SummaryQuery) -> bool {
    q.filter.namespace.is_some()
        || q.group_by.iter().any(|c| on_report(*c))
        || q.filter.conditions.iter().any(|c| match c {
            Condition::In(col, _) | Condition::NotIn(col, _) => on_report(*col),
            _ => false,
        })
}

/// ` FROM … WHERE …` of `cluster`'s result rows matching `q`'s filter, and the cluster's
/// placeholder. With no report column in the question, the rows are read without their
/// report, so that a grouping reads the result indexes alone (index-only scans): unless
/// a deleted report's rows are awaiting their purge in the cluster (`purges`, purge.rs: a
/// report's rows outlive its `objects` row only while it is listed there, both changed in the
/// same transactions). Both branches are in the statement, behind one-time filters on
/// `purges`, so the choice is made in the statement's snapshot.
fn rows_source(sql: &mut Sql, cluster: &str, q: &SummaryQuery) -> (String, String) {
    const JOIN: &str = " FROM results AS r JOIN objects AS o ON o.id = r.object_id";
    if needs_report(q) {
        let c = lower_rows(sql, cluster, &q.filter, true);
        return (c, format!("{JOIN}{}", sql.where_sql()));
    }
    let c = lower_rows(sql, cluster, &q.filter, false);
    let conds = sql.where_sql();
    let purging = format!("EXISTS (SELECT 1 FROM purges WHERE cluster = {c})");
    let from_where = format!(
        " FROM (SELECT r.* FROM results AS r{conds} AND NOT {purging} \
         UNION ALL SELECT r.* {JOIN}{conds} AND o.cluster = {c} AND {purging}) AS r WHERE true"
    );
    (c, from_where)
}

/// Whether a grouping column has few values whatever the size
/// ([`ResultColumn::has_few_values`], and the report's kind), so that counting every group by
/// result and severity in one pass is small.
fn few_values(col: ResultColumn) -> bool {
    col.has_few_values() || col == ResultColumn::Resource
}

/// Groups (by the statistics) up to which a result-row column is grouped in one pass like the
/// columns of [`few_values`]: its one-pass counts (`t` in `paged`) have at most a few dozen rows
/// per group (result × severity × the other grouping columns), small beside `work_mem`.
const ONE_PASS_GROUPS: f64 = 2_000.0;

/// The planner's estimate of the number of distinct values of the result rows' column `col`
/// (`pg_stats`, refreshed as the database grows: statistics.rs), over every cluster; `None`
/// before the table was first analyzed. A column such as the rule has few values in most
/// clusters but no bound: the statistics tell which grouping is small.
async fn distinct_values(client: &deadpool_postgres::Object, col: ResultColumn) -> Result<Option<f64>> {
    let Some(name) = column(col).0.strip_prefix("r.") else {
        return Ok(None);
    };
    let row = client
        .query_opt(
            "SELECT CASE WHEN s.n_distinct >= 0 THEN s.n_distinct::float8 \
             ELSE -s.n_distinct * greatest(c.reltuples, 0)::float8 END \
             FROM pg_stats AS s JOIN pg_class AS c ON c.oid = 'results'::regclass \
             WHERE s.schemaname = current_schema() AND s.tablename = 'results' AND s.attname = $1",
            &[&name],
        )
        .await
        .map_err(pg_error)?;
    Ok(row.and_then(|r| r.get::<_, Option<f64>>(0)))
}

/// Counts `cluster`'s matching results per group.
pub(crate) async fn summarize(
    client: &mut deadpool_postgres::Object,
    cluster: &str,
    q: &SummaryQuery,
) -> Result<Summary> {
    if let Some(page) = &q.page {
        return paged(client, cluster, q, page).await;
    }
    let mut sql = Sql::default();
    // Groupings and filters over the report's columns, result, severity and source are
    // answered from the per-report counts.
    let counted = counts::answer(&q.filter, &q.group_by);
    let (c, from_where, n_sql) = if counted {
        let c = sql.bind(cluster.to_owned(), "text");
        let from_where = counts::from_where(&mut sql, &c, &q.filter, &q.group_by);
        (c, from_where, "coalesce(sum(c.n), 0)::bigint")
    } else {
        let (c, from_where) = rows_source(&mut sql, cluster, q);
        (c, from_where, "count(*)")
    };
    let keys: Vec<String> = q
        .group_by
        .iter()
        .map(|col| match (counted, column(*col)) {
            (true, _) => counts::key(*col).unwrap_or_default(),
            (false, (c, true)) => format!("nullif({c}, '')"),
            (false, (c, false)) => c.to_owned(),
        })
        .collect();
    let n = keys.len();
    let select_keys: String = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} AS k{i}, "))
        .collect();
    let group = if keys.is_empty() {
        String::new()
    } else {
        let positions: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        format!(" GROUP BY {}", positions.join(", "))
    };
    let order: Vec<String> = (0..n)
        .map(|i| format!("s.k{i} COLLATE \"C\" ASC NULLS FIRST"))
        .collect();
    let order = if order.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", order.join(", "))
    };
    let statement = format!(
        "WITH m AS (SELECT revision FROM meta WHERE cluster = {c}), \
         s AS (SELECT {select_keys}{n_sql} AS n{from_where}{group}) \
         SELECT m.revision, s.* FROM m LEFT JOIN s ON true{order}"
    );
    let rows = client
        .query(statement.as_str(), &sql.param_refs())
        .await
        .map_err(pg_error)?;
    let first = rows.first().ok_or_else(|| missing_counter(cluster))?;
    let revision: i64 = first.try_get(0).map_err(pg_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        // The LEFT JOIN's single row when no group matched.
        let Some(count) = row.try_get::<_, Option<i64>>(n + 1).map_err(pg_error)? else {
            continue;
        };
        let keys = (0..n)
            .map(|i| row.try_get::<_, Option<String>>(i + 1))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(pg_error)?;
        out.push(SummaryRow {
            keys,
            count: u64::try_from(count).unwrap_or(0),
        });
    }
    Ok(Summary {
        revision,
        rows: out,
        page: None,
    })
}

/// Where a page's groups are counted: the per-report counts or the result rows.
struct Source {
    /// ` FROM … WHERE …` (the cluster's rows matching the filter).
    from_where: String,
    /// The group of a row (a missing value as `""`).
    key: String,
    /// The result row's column of the group (`None` over the counts).
    col: Option<&'static str>,
    /// Whether the rows are the per-report counts.
    counted: bool,
    /// What a row counts for, its result and its severity.
    n: &'static str,
    result: &'static str,
    severity: &'static str,
}

impl Source {
    /// Counts grouped by `cols` (the first is the group).
    fn counts(sql: &mut Sql, c: &str, q: &SummaryQuery, cols: &[ResultColumn]) -> Option<Source> {
        let key = counts::column(*cols.first()?)?;
        Some(Source {
            from_where: counts::from_where(sql, c, &q.filter, cols),
            key: key.to_owned(),
            col: None,
            counted: true,
            n: "c.n",
            result: "c.result",
            severity: "c.severity",
        })
    }

    /// The one-pass counts `t` (see `paged`).
    fn grouped() -> Source {
        Source {
            from_where: " FROM t WHERE true".to_owned(),
            key: "t.g".to_owned(),
            col: None,
            counted: true,
            n: "t.n",
            result: "t.res",
            severity: "t.sev",
        }
    }

    fn rows(from_where: &str, col: ResultColumn) -> Source {
        Source {
            from_where: from_where.to_owned(),
            key: format!("coalesce({}, '')", column(col).0),
            col: Some(column(col).0),
            counted: false,
            n: "1",
            result: "r.result",
            severity: "r.severity",
        }
    }

    /// The ranking count of a group.
    fn measure(&self, sql: &mut Sql, rank: &GroupRank) -> String {
        let n = self.n;
        let only = match rank {
            GroupRank::Key | GroupRank::Total => return format!("coalesce(sum({n}), 0)::bigint"),
            GroupRank::Result(r) => self.cell(sql, r, None),
            GroupRank::Cell(r, s) => self.cell(sql, r, Some(s)),
        };
        format!("coalesce(sum({n}) FILTER (WHERE {only}), 0)::bigint")
    }

    /// `result = r [AND severity = s]`.
    fn cell(&self, sql: &mut Sql, r: &str, s: Option<&String>) -> String {
        let r = sql.bind(r.to_owned(), "text");
        match s {
            None => format!("{} = {r}", self.result),
            Some(s) => {
                let s = sql.bind(s.clone(), "text");
                format!("{} = {r} AND {} = {s}", self.result, self.severity)
            }
        }
    }
}

/// A page of the groups of the first grouping column, ranked in SQL (see the SQLite
/// backend's `top` module for the order), and the rows of those groups only, in one statement.
/// Groupings and filters over the report's columns, result, severity and source are counted
/// from the per-report counts.
async fn paged(
    client: &mut deadpool_postgres::Object,
    cluster: &str,
    q: &SummaryQuery,
    page: &GroupPage,
) -> Result<Summary> {
    let Some((first, rest)) = q.group_by.split_first() else {
        return Ok(Summary::default());
    };
    let mut sql = Sql::default();
    let all_counted = counts::answer(&q.filter, &q.group_by);
    let (c, rows_from_where) = if all_counted {
        // Nothing reads the result rows: bind only what the counts use.
        (sql.bind(cluster.to_owned(), "text"), String::new())
    } else {
        rows_source(&mut sql, cluster, q)
    };
    let g_src = match counts::answer(&q.filter, &[*first]) {
        true => Source::counts(&mut sql, &c, q, &[*first]),
        false => None,
    }
    .unwrap_or_else(|| Source::rows(&rows_from_where, *first));
    let s_src = match all_counted {
        true => Source::counts(&mut sql, &c, q, &q.group_by),
        false => None,
    }
    .unwrap_or_else(|| Source::rows(&rows_from_where, *first));
    let row_rest_keys: String = rest
        .iter()
        .enumerate()
        .map(|(i, col)| match column(*col) {
            (c, true) => format!(", nullif({c}, '') AS k{i}"),
            (c, false) => format!(", {c} AS k{i}"),
        })
        .collect();
    // A grouping column of few values over the result rows: one pass counts each group by the
    // other columns, result and severity (`t`), and both the ranking and the page's breakdown
    // are read from it, instead of a pass to rank and one for the page's groups (which, for
    // a group holding most rows, reads most rows again).
    let one_pass = !g_src.counted
        && !s_src.counted
        && (few_values(*first)
            || distinct_values(client, *first)
                .await?
                .is_some_and(|n| n <= ONE_PASS_GROUPS));
    // A ranking of policies by a result (× severity) merged from index ranges (merged.rs).
    let merged = match one_pass || g_src.counted || needs_report(q) {
        true => None,
        false => Merged::plan(q, &page.rank),
    };
    let merged = match merged {
        Some(mut m) => m.look_up(client).await?.then_some(m),
        None => None,
    };
    let mut t_cte = String::new();
    let (g_src, s_src) = if one_pass {
        let group: Vec<String> = (1..=rest.len() + 3).map(|i| i.to_string()).collect();
        t_cte = format!(
            "t AS MATERIALIZED (SELECT {} AS g{row_rest_keys}, {} AS res, {} AS sev, \
             count(*)::bigint AS n{} GROUP BY {}), ",
            g_src.key,
            g_src.result,
            g_src.severity,
            g_src.from_where,
            group.join(", ")
        );
        (Source::grouped(), Source::grouped())
    } else {
        (g_src, s_src)
    };
    let key = g_src.key.clone();
    let measure = g_src.measure(&mut sql, &page.rank);
    let mut cursor = String::new();
    let mut having = String::new();
    let mut after = "true".to_owned();
    match (&page.rank, &page.after) {
        (GroupRank::Key, Some(a)) => {
            let g = sql.bind(a.group.clone(), "text");
            cursor = format!(" AND {key} COLLATE \"C\" > {g}");
        }
        (_, Some(a)) => {
            let v = sql.bind(i64::try_from(a.value).unwrap_or(i64::MAX), "bigint");
            let g = sql.bind(a.group.clone(), "text");
            having = format!(" HAVING ({measure} < {v} OR ({measure} = {v} AND {key} COLLATE \"C\" > {g}))");
            after = format!("(x.v < {v} OR (x.v = {v} AND x.g COLLATE \"C\" > {g}))");
        }
        (_, None) => {}
    }
    let limit = page.limit.clamp(1, prext_api::results::rank::MAX_GROUPS);
    let l = sql.bind(i64::try_from(limit + 1).unwrap_or(i64::MAX), "bigint");
    let (rank_order, out_order) = match page.rank {
        GroupRank::Key => (format!("{key} COLLATE \"C\""), "g.g COLLATE \"C\"".to_owned()),
        _ => (
            format!("v DESC, {key} COLLATE \"C\""),
            "g.v DESC, g.g COLLATE \"C\"".to_owned(),
        ),
    };
    let from_where = &g_src.from_where;
    let ranked = |extra: &str| {
        format!(
            "SELECT {key} AS g, {measure} AS v{from_where}{cursor}{extra} GROUP BY 1{having} \
             ORDER BY {rank_order} LIMIT {l}"
        )
    };
    // Ranked by a result (or a result × severity cell) over the result rows: the groups that
    // have such results are ranked first from those rows alone (an index range); when they
    // fill the page, the groups without (ranked last, at 0) are never counted.
    let g_cte = match (&page.rank, !g_src.counted) {
        (GroupRank::Result(r), true) | (GroupRank::Cell(r, _), true) => {
            let sev = match &page.rank {
                GroupRank::Cell(_, s) => Some(s),
                _ => None,
            };
            let cell = g_src.cell(&mut sql, r, sev);
            let gc = match &merged {
                Some(m) => m.ranking(
                    &mut sql,
                    cluster,
                    &after,
                    &|gate: &str| ranked(&format!(" AND {cell} AND {gate}")),
                    &l,
                ),
                None => ranked(&format!(" AND {cell}")),
            };
            format!(
                "gc AS ({gc}), g AS (SELECT * FROM gc WHERE (SELECT count(*) FROM gc) >= {l} \
                 UNION ALL ({}))",
                ranked(&format!(" AND (SELECT count(*) FROM gc) < {l}")),
            )
        }
        _ => format!("g AS ({})", ranked("")),
    };
    let g_cte = format!("{t_cte}{g_cte}");
    let rest_keys = if one_pass {
        (0..rest.len()).map(|i| format!(", t.k{i} AS k{i}")).collect()
    } else if !s_src.counted {
        row_rest_keys
    } else {
        rest.iter()
            .enumerate()
            .map(|(i, col)| format!(", {} AS k{i}", counts::key(*col).unwrap_or_default()))
            .collect()
    };
    let rest_select: String = (0..rest.len()).map(|i| format!(", s.k{i}")).collect();
    let rest_group: String = (0..rest.len()).map(|i| format!(", {}", i + 2)).collect();
    let (s_key, s_n, s_from_where) = (&s_src.key, s_src.n, &s_src.from_where);
    let mut rv_cte = String::new();
    let breakdown = match (&merged, s_src.col) {
        (Some(m), Some(_)) if rest == [ResultColumn::Result, ResultColumn::Severity] => {
            Some(m.breakdown(&mut sql, s_from_where))
        }
        _ => None,
    };
    let s_cte = match s_src.col {
        // A policy ranking's breakdown by result and severity (merged.rs).
        Some(_) if breakdown.is_some() => {
            let (rv, s) = breakdown.unwrap_or_default();
            rv_cte = rv;
            s
        }
        // The policies' rows group by group (a lateral subquery: a range of
        // `(policy, rule, cluster, result, severity)` each, whose few counts are aggregated
        // apart, instead of one sort of every row of the page's groups), a missing value's rows
        // only for the group `""`; a value `""` is in the first branch.
        Some(col) if *first == ResultColumn::Policy => format!(
            "s AS (SELECT g.g AS k{rest_select_x}, x.n FROM g CROSS JOIN LATERAL (\
             SELECT {rest_select_u}sum(u.n)::bigint AS n FROM (\
             SELECT {s_n} AS n{rest_keys}{s_from_where} AND {col} = g.g \
             UNION ALL SELECT {s_n} AS n{rest_keys}{s_from_where} AND {col} IS NULL AND g.g = '') AS u\
             {u_group}) AS x)",
            rest_select_x = (0..rest.len()).map(|i| format!(", x.k{i}")).collect::<String>(),
            rest_select_u = (0..rest.len()).map(|i| format!("u.k{i}, ")).collect::<String>(),
            u_group = match rest.len() {
                0 => " HAVING count(*) > 0".to_owned(),
                n => format!(
                    " GROUP BY {}",
                    (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
                ),
            },
        ),
        // The page's groups' rows through the column itself (its index, if any:
        // `coalesce(col, '')` is no indexed expression), a missing value's rows only when the
        // page has the group `""`; a value `""` is in the first branch.
        Some(col) => format!(
            "s AS (SELECT u.k{rest_select_u}, sum(u.n)::bigint AS n FROM (\
             SELECT {s_key} AS k{rest_keys}, {s_n} AS n{s_from_where} AND {col} = ANY (ARRAY(SELECT g.g FROM g)) \
             UNION ALL SELECT {s_key} AS k{rest_keys}, {s_n} AS n{s_from_where} AND {col} IS NULL \
             AND EXISTS (SELECT 1 FROM g WHERE g.g = '')) AS u GROUP BY 1{rest_group})",
            rest_select_u = (0..rest.len()).map(|i| format!(", u.k{i}")).collect::<String>(),
        ),
        None => format!(
            "s AS (SELECT {s_key} AS k{rest_keys}, sum({s_n})::bigint AS n{s_from_where} \
             AND {s_key} IN (SELECT g.g FROM g) GROUP BY 1{rest_group})"
        ),
    };
    let statement = format!(
        "WITH RECURSIVE m AS (SELECT revision FROM meta WHERE cluster = {c}), {rv_cte}{g_cte}, {s_cte} \
         SELECT m.revision, g.g, g.v, s.n{rest_select} FROM m LEFT JOIN g ON true \
         LEFT JOIN s ON s.k = g.g ORDER BY {out_order}",
    );
    let rows = match merged {
        None => client
            .query(statement.as_str(), &sql.param_refs())
            .await
            .map_err(pg_error)?,
        Some(_) => {
            let tx = client
                .build_transaction()
                .read_only(true)
                .start()
                .await
                .map_err(pg_error)?;
            tx.batch_execute(merged::SETTINGS).await.map_err(pg_error)?;
            let rows = tx
                .query(statement.as_str(), &sql.param_refs())
                .await
                .map_err(pg_error)?;
            tx.commit().await.map_err(pg_error)?;
            rows
        }
    };
    let first_row = rows.first().ok_or_else(|| missing_counter(cluster))?;
    let revision: i64 = first_row.try_get(0).map_err(pg_error)?;
    let mut groups: Vec<RankedGroup> = Vec::new();
    let mut out = Vec::new();
    for row in &rows {
        let Some(group) = row.try_get::<_, Option<String>>(1).map_err(pg_error)? else {
            continue;
        };
        let value: i64 = row.try_get(2).map_err(pg_error)?;
        if groups.last().is_none_or(|g| g.group != group) {
            groups.push(RankedGroup {
                group: group.clone(),
                value: u64::try_from(value).unwrap_or(0),
            });
        }
        if groups.len() > limit {
            continue;
        }
        let Some(n) = row.try_get::<_, Option<i64>>(3).map_err(pg_error)? else {
            continue;
        };
        let mut keys = vec![Some(group).filter(|g| !g.is_empty())];
        for i in 0..rest.len() {
            keys.push(row.try_get::<_, Option<String>>(4 + i).map_err(pg_error)?);
        }
        out.push(SummaryRow {
            keys,
            count: u64::try_from(n).unwrap_or(0),
        });
    }
    let more = groups.len() > limit;
    groups.truncate(limit);
    Ok(Summary {
        revision,
        rows: out,
        page: Some(GroupsPage { groups, more }),
    })
}

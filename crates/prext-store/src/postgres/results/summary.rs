//! Summaries: counts of a cluster's matching results grouped by columns, in one statement
//! (the cluster's revision and the groups come from the same snapshot).
//!
//! As on SQLite, a nullable column's empty value is grouped with its missing value, and the
//! groups come out ordered by their keys byte-wise, missing values first.

use super::{column, counts, lower, missing_counter, Sql};
use crate::postgres::error::pg_error;
use crate::results::{
    GroupPage, GroupRank, GroupsPage, RankedGroup, ResultColumn, Summary, SummaryQuery, SummaryRow,
};
use crate::Result;

/// Counts `cluster`'s matching results per group.
pub(crate) async fn summarize(
    client: &deadpool_postgres::Object,
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
        let c = lower(&mut sql, cluster, &q.filter);
        let from_where = format!(
            " FROM results AS r JOIN objects AS o ON o.id = r.object_id{}",
            sql.where_sql()
        );
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
            counted: true,
            n: "c.n",
            result: "c.result",
            severity: "c.severity",
        })
    }

    fn rows(filter_where: &str, col: ResultColumn) -> Source {
        Source {
            from_where: format!(" FROM results AS r JOIN objects AS o ON o.id = r.object_id{filter_where}"),
            key: format!("coalesce({}, '')", column(col).0),
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
    client: &deadpool_postgres::Object,
    cluster: &str,
    q: &SummaryQuery,
    page: &GroupPage,
) -> Result<Summary> {
    let Some((first, rest)) = q.group_by.split_first() else {
        return Ok(Summary::default());
    };
    let mut sql = Sql::default();
    let all_counted = counts::answer(&q.filter, &q.group_by);
    let (c, filter) = if all_counted {
        // Nothing reads the result rows: bind only what the counts use.
        (sql.bind(cluster.to_owned(), "text"), String::new())
    } else {
        let c = lower(&mut sql, cluster, &q.filter);
        let filter = sql.where_sql();
        (c, filter)
    };
    let g_src = match counts::answer(&q.filter, &[*first]) {
        true => Source::counts(&mut sql, &c, q, &[*first]),
        false => None,
    }
    .unwrap_or_else(|| Source::rows(&filter, *first));
    let s_src = match all_counted {
        true => Source::counts(&mut sql, &c, q, &q.group_by),
        false => None,
    }
    .unwrap_or_else(|| Source::rows(&filter, *first));
    let key = g_src.key.clone();
    let measure = g_src.measure(&mut sql, &page.rank);
    let mut cursor = String::new();
    let mut having = String::new();
    match (&page.rank, &page.after) {
        (GroupRank::Key, Some(a)) => {
            let g = sql.bind(a.group.clone(), "text");
            cursor = format!(" AND {key} COLLATE \"C\" > {g}");
        }
        (_, Some(a)) => {
            let v = sql.bind(i64::try_from(a.value).unwrap_or(i64::MAX), "bigint");
            let g = sql.bind(a.group.clone(), "text");
            having = format!(" HAVING ({measure} < {v} OR ({measure} = {v} AND {key} COLLATE \"C\" > {g}))");
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
            format!(
                "gc AS ({}), g AS (SELECT * FROM gc WHERE (SELECT count(*) FROM gc) >= {l} \
                 UNION ALL ({}))",
                ranked(&format!(" AND {cell}")),
                ranked(&format!(" AND (SELECT count(*) FROM gc) < {l}")),
            )
        }
        _ => format!("g AS ({})", ranked("")),
    };
    let rest_keys: String = rest
        .iter()
        .enumerate()
        .map(|(i, col)| match column(*col) {
            (c, true) => format!(", nullif({c}, '') AS k{i}"),
            (c, false) => format!(", {c} AS k{i}"),
        })
        .collect();
    let rest_keys = if !s_src.counted {
        rest_keys
    } else {
        rest.iter()
            .enumerate()
            .map(|(i, col)| format!(", {} AS k{i}", counts::key(*col).unwrap_or_default()))
            .collect()
    };
    let rest_select: String = (0..rest.len()).map(|i| format!(", s.k{i}")).collect();
    let rest_group: String = (0..rest.len()).map(|i| format!(", {}", i + 2)).collect();
    let statement = format!(
        "WITH m AS (SELECT revision FROM meta WHERE cluster = {c}), {g_cte}, \
         s AS (SELECT {s_key} AS k{rest_keys}, sum({s_n})::bigint AS n{s_from_where} \
               AND {s_key} IN (SELECT g.g FROM g) GROUP BY 1{rest_group}) \
         SELECT m.revision, g.g, g.v, s.n{rest_select} FROM m LEFT JOIN g ON true \
         LEFT JOIN s ON s.k = g.g ORDER BY {out_order}",
        s_key = s_src.key,
        s_n = s_src.n,
        s_from_where = s_src.from_where,
    );
    let rows = client
        .query(statement.as_str(), &sql.param_refs())
        .await
        .map_err(pg_error)?;
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

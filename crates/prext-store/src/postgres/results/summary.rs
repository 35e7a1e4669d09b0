//! Summaries: counts of a cluster's matching results grouped by columns, in one statement
//! (the cluster's revision and the groups come from the same snapshot).
//!
//! As on SQLite, a nullable column's empty value is grouped with its missing value, and the
//! groups come out ordered by their keys byte-wise, missing values first.

use super::{column, lower, missing_counter, Sql};
use crate::postgres::error::pg_error;
use crate::results::{GroupPage, GroupRank, GroupsPage, RankedGroup, Summary, SummaryQuery, SummaryRow};
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
    let c = lower(&mut sql, cluster, &q.filter);
    let keys: Vec<String> = q
        .group_by
        .iter()
        .map(|col| match column(*col) {
            (c, true) => format!("nullif({c}, '')"),
            (c, false) => c.to_owned(),
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
         s AS (SELECT {select_keys}count(*) AS n \
               FROM results AS r JOIN objects AS o ON o.id = r.object_id{}{group}) \
         SELECT m.revision, s.* FROM m LEFT JOIN s ON true{order}",
        sql.where_sql()
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

/// A page of the groups of the first grouping column, ranked in SQL (see the SQLite
/// backend's `top` module for the order), and the rows of those groups only, in one statement.
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
    let c = lower(&mut sql, cluster, &q.filter);
    let filter = sql.where_sql();
    let key = format!("coalesce({}, '')", column(*first).0);
    let measure = match &page.rank {
        GroupRank::Key | GroupRank::Total => "count(*)".to_owned(),
        GroupRank::Result(r) => {
            let r = sql.bind(r.clone(), "text");
            format!("count(*) FILTER (WHERE r.result = {r})")
        }
        GroupRank::Cell(r, s) => {
            let r = sql.bind(r.clone(), "text");
            let s = sql.bind(s.clone(), "text");
            format!("count(*) FILTER (WHERE r.result = {r} AND r.severity = {s})")
        }
    };
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
    let rest_keys: String = rest
        .iter()
        .enumerate()
        .map(|(i, col)| match column(*col) {
            (c, true) => format!(", nullif({c}, '') AS k{i}"),
            (c, false) => format!(", {c} AS k{i}"),
        })
        .collect();
    let rest_select: String = (0..rest.len()).map(|i| format!(", s.k{i}")).collect();
    let rest_group: String = (0..rest.len()).map(|i| format!(", {}", i + 2)).collect();
    let from = " FROM results AS r JOIN objects AS o ON o.id = r.object_id";
    let statement = format!(
        "WITH m AS (SELECT revision FROM meta WHERE cluster = {c}), \
         g AS (SELECT {key} AS g, {measure} AS v{from}{filter}{cursor} GROUP BY 1{having} \
               ORDER BY {rank_order} LIMIT {l}), \
         s AS (SELECT {key} AS k{rest_keys}, count(*) AS n{from}{filter} \
               AND {key} IN (SELECT g.g FROM g) GROUP BY 1{rest_group}) \
         SELECT m.revision, g.g, g.v, s.n{rest_select} FROM m LEFT JOIN g ON true \
         LEFT JOIN s ON s.k = g.g ORDER BY {out_order}"
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

//! Summaries: counts of a cluster's matching results grouped by columns, in one statement
//! (the cluster's revision and the groups come from the same snapshot).
//!
//! As on SQLite, a nullable column's empty value is grouped with its missing value, and the
//! groups come out ordered by their keys byte-wise, missing values first.

use super::{column, lower, missing_counter, Sql};
use crate::postgres::error::pg_error;
use crate::results::{Summary, SummaryQuery, SummaryRow};
use crate::Result;

/// Counts `cluster`'s matching results per group.
pub(crate) async fn summarize(
    client: &deadpool_postgres::Object,
    cluster: &str,
    q: &SummaryQuery,
) -> Result<Summary> {
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
    Ok(Summary { revision, rows: out })
}

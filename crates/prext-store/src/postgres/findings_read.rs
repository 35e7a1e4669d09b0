//! Reading findings and their trends (see [`crate::findings`]) of one cluster, each in one
//! statement (one snapshot, one round trip), and pruning old resolved ones.

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::error::pg_error;
use super::results::missing_counter;
use crate::findings::{self, Finding, FindingEvent, FindingPage, FindingQuery, Param, TrendQuery, Trends};
use crate::Result;

/// Most findings one page returns (as on SQLite).
const MAX_PAGE: usize = 10_000;

const FINDING_COLUMNS: &str = "id, namespace, resource, report, policy, rule, result, severity,
     category, source, message, subject_api_version, subject_kind, subject_namespace, subject_name,
     subject_uid, first_seen, first_seen_revision, last_seen, last_seen_revision, resolved_at,
     resolved_revision";

fn placeholder(n: usize) -> String {
    format!("${n}")
}

/// `cluster` as `$1`, then the filter's parameters.
fn bound(cluster: &str, params: Vec<Param>) -> Vec<Box<dyn ToSql + Sync + Send>> {
    let mut out: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(cluster.to_owned())];
    for p in params {
        out.push(match p {
            Param::Text(t) => Box::new(t.replace('\0', "\u{FFFD}")),
            Param::Int(i) => Box::new(i),
        });
    }
    out
}

fn refs(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect()
}

/// One page of findings, in `id` order.
pub(crate) async fn query(
    client: &deadpool_postgres::Object,
    cluster: &str,
    q: &FindingQuery,
) -> Result<FindingPage> {
    let (cond, params) = findings::lower(&q.filter, 2, placeholder);
    let mut params = bound(cluster, params);
    let limit = q.limit.clamp(1, MAX_PAGE);
    params.push(Box::new(q.after.unwrap_or(i64::MIN)));
    let after = params.len();
    params.push(Box::new(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
    let lim = params.len();
    let filter = format!(" FROM findings WHERE cluster = $1 AND {cond}");
    let total = if q.count {
        format!("(SELECT count(*){filter})")
    } else {
        "NULL::bigint".into()
    };
    let sql = format!(
        "WITH m AS (SELECT revision FROM meta WHERE cluster = $1), \
         p AS (SELECT {FINDING_COLUMNS}{filter} AND id > ${after} ORDER BY id LIMIT ${lim}) \
         SELECT m.revision, {total}, p.* FROM m LEFT JOIN p ON true ORDER BY p.id"
    );
    let rows = client
        .query(sql.as_str(), &refs(&params))
        .await
        .map_err(pg_error)?;
    let page = super::results::page_rows(
        &rows,
        cluster,
        limit,
        |r| Ok(r.try_get::<_, Option<i64>>(2)?.is_some()),
        finding,
    )?;
    Ok(FindingPage {
        revision: page.revision,
        items: page.items,
        more: page.more,
        total: page.total,
    })
}

fn finding(r: &Row) -> Result<Finding, tokio_postgres::Error> {
    Ok(Finding {
        id: r.try_get(2)?,
        namespace: r.try_get(3)?,
        resource: r.try_get(4)?,
        report: r.try_get(5)?,
        policy: r.try_get(6)?,
        rule: r.try_get(7)?,
        result: r.try_get(8)?,
        severity: r.try_get(9)?,
        category: r.try_get(10)?,
        source: r.try_get(11)?,
        message: r.try_get(12)?,
        subject: prext_api::report::Subject {
            api_version: r.try_get(13)?,
            kind: r.try_get(14)?,
            namespace: r.try_get(15)?,
            name: r.try_get(16)?,
            uid: r.try_get(17)?,
        },
        first_seen: r.try_get(18)?,
        first_seen_revision: r.try_get(19)?,
        last_seen: r.try_get(20)?,
        last_seen_revision: r.try_get(21)?,
        resolved_at: r.try_get(22)?,
        resolved_revision: r.try_get(23)?,
    })
}

/// The trend of open findings by group.
pub(crate) async fn trends(
    client: &deadpool_postgres::Object,
    cluster: &str,
    q: &TrendQuery,
) -> Result<Trends> {
    let mut filter = q.filter.clone();
    filter.open = None;
    filter.event = FindingEvent::Active;
    filter.since = Some(q.since);
    filter.until = Some(q.until);
    let (cond, params) = findings::lower(&filter, 2, placeholder);
    let params = bound(cluster, params);
    let sql = format!(
        "WITH m AS (SELECT revision FROM meta WHERE cluster = $1), \
         p AS (SELECT coalesce({}, '') AS g, first_seen, resolved_at FROM findings \
               WHERE cluster = $1 AND {cond}) \
         SELECT m.revision, p.g, p.first_seen, p.resolved_at FROM m LEFT JOIN p ON true",
        findings::column(q.group_by)
    );
    let rows = client
        .query(sql.as_str(), &refs(&params))
        .await
        .map_err(pg_error)?;
    let first = rows.first().ok_or_else(|| missing_counter(cluster))?;
    let revision: i64 = first.try_get(0).map_err(pg_error)?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(first_seen) = row.try_get::<_, Option<i64>>(2).map_err(pg_error)? else {
            continue;
        };
        found.push((
            row.try_get::<_, String>(1).map_err(pg_error)?,
            first_seen,
            row.try_get::<_, Option<i64>>(3).map_err(pg_error)?,
        ));
    }
    Ok(Trends {
        revision,
        series: findings::series(q, found),
    })
}

/// Drops the findings of `cluster` resolved before `before` (Unix ms). Returns how many.
pub(crate) async fn prune(client: &deadpool_postgres::Object, cluster: &str, before: i64) -> Result<u64> {
    client
        .execute(
            "DELETE FROM findings WHERE cluster = $1 AND resolved_at < $2",
            &[&cluster, &before],
        )
        .await
        .map_err(pg_error)
}

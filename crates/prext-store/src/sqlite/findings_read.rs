//! Reading findings and their trends (see [`crate::findings`]) from one snapshot.

use rusqlite::types::Value;
use rusqlite::Connection;

use super::db_error;
use super::results::MAX_PAGE;
use crate::findings::{self, Finding, FindingPage, FindingQuery, Param, TrendQuery, Trends};
use crate::Result;

/// The columns [`finding`] reads, in order.
pub(crate) const FINDING_COLUMNS: &str = "id, namespace, resource, report, policy, rule, result, severity,
     category, source, message, subject_api_version, subject_kind, subject_namespace, subject_name,
     subject_uid, first_seen, first_seen_revision, last_seen, last_seen_revision, resolved_at,
     resolved_revision";

fn placeholder(n: usize) -> String {
    format!("?{n}")
}

fn values(params: Vec<Param>) -> Vec<Value> {
    params
        .into_iter()
        .map(|p| match p {
            Param::Text(t) => Value::Text(t),
            Param::Int(i) => Value::Integer(i),
        })
        .collect()
}

fn revision(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT revision FROM meta WHERE id = 1", [], |r| r.get(0))
        .map_err(db_error)
}

/// One page of findings, in `id` order.
pub(crate) fn query(conn: &mut Connection, q: &FindingQuery) -> Result<FindingPage> {
    let tx = conn.transaction().map_err(db_error)?;
    let revision = revision(&tx)?;
    let (cond, params) = findings::lower(&q.filter, 1, placeholder);
    let mut params = values(params);
    let total = if q.count {
        let sql = format!("SELECT count(*) FROM findings WHERE {cond}");
        let n: i64 = tx
            .query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| r.get(0))
            .map_err(db_error)?;
        Some(u64::try_from(n).unwrap_or(0))
    } else {
        None
    };
    let limit = q.limit.clamp(1, MAX_PAGE);
    params.push(Value::Integer(q.after.unwrap_or(i64::MIN)));
    params.push(Value::Integer(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {FINDING_COLUMNS} FROM findings WHERE {cond} AND id > ?{} ORDER BY id LIMIT ?{}",
        params.len() - 1,
        params.len()
    );
    let mut stmt = tx.prepare(&sql).map_err(db_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(db_error)?;
    let mut items = Vec::new();
    let mut more = false;
    while let Some(row) = rows.next().map_err(db_error)? {
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(finding(row).map_err(db_error)?);
    }
    Ok(FindingPage {
        revision,
        items,
        more,
        total,
    })
}

fn finding(r: &rusqlite::Row<'_>) -> rusqlite::Result<Finding> {
    Ok(Finding {
        id: r.get(0)?,
        namespace: r.get(1)?,
        resource: r.get(2)?,
        report: r.get(3)?,
        policy: r.get(4)?,
        rule: r.get(5)?,
        result: r.get(6)?,
        severity: r.get(7)?,
        category: r.get(8)?,
        source: r.get(9)?,
        message: r.get(10)?,
        subject: prext_api::report::Subject {
            api_version: r.get(11)?,
            kind: r.get(12)?,
            namespace: r.get(13)?,
            name: r.get(14)?,
            uid: r.get(15)?,
        },
        first_seen: r.get(16)?,
        first_seen_revision: r.get(17)?,
        last_seen: r.get(18)?,
        last_seen_revision: r.get(19)?,
        resolved_at: r.get(20)?,
        resolved_revision: r.get(21)?,
    })
}

/// The trend of open findings by group.
pub(crate) fn trends(conn: &mut Connection, q: &TrendQuery) -> Result<Trends> {
    let tx = conn.transaction().map_err(db_error)?;
    let revision = revision(&tx)?;
    let mut filter = q.filter.clone();
    filter.open = None;
    filter.event = findings::FindingEvent::Active;
    filter.since = Some(q.since);
    filter.until = Some(q.until);
    let (cond, params) = findings::lower(&filter, 1, placeholder);
    let sql = format!(
        "SELECT coalesce({}, ''), first_seen, resolved_at FROM findings WHERE {cond}",
        findings::column(q.group_by)
    );
    let mut stmt = tx.prepare(&sql).map_err(db_error)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(values(params).iter()), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    Ok(Trends {
        revision,
        series: findings::series(q, rows),
    })
}

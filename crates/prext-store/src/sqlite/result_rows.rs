//! The rows derived from a report's results, written by the writer thread with the report:
//! `results`, `result_numbers` and `result_counts`, all computed beforehand (see
//! [`Prepared`]). Every statement is a single-row `INSERT` or a `DELETE` by report, without
//! triggers, so none needs a statement journal.
//!
//! A subject's uid is stored once per report when it is the report's scope uid (schema
//! version 13, [`stored_uid`]).

use prext_api::report::Subject;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection};

use super::prepared::{Prepared, PreparedResult};

/// Writes the result rows, numbers and counts of the report `object_id`, which has none.
pub(crate) fn insert(conn: &Connection, object_id: i64, p: &Prepared) -> rusqlite::Result<()> {
    insert_rows(conn, object_id, p.head.scope.uid.as_deref(), &p.results)?;
    insert_counts(conn, object_id, p)
}

/// How `results.subject_uid` holds a subject's uid, given the report's scope uid: NULL when
/// they are the same (both absent included), an empty BLOB when the subject has none but the
/// scope has one, else the uid. Queries read it back with `results::SUBJECT_UID_SQL`.
pub(crate) fn stored_uid<'a>(uid: Option<&'a str>, scope_uid: Option<&str>) -> ToSqlOutput<'a> {
    match uid {
        _ if uid == scope_uid => ToSqlOutput::Borrowed(ValueRef::Null),
        None => ToSqlOutput::Borrowed(ValueRef::Blob(&[])),
        Some(uid) => ToSqlOutput::Borrowed(ValueRef::Text(uid.as_bytes())),
    }
}

/// Writes `results` (a report's or a slice of them) and their numbers under `object_id`, for
/// a report whose scope uid is `scope_uid`.
pub(crate) fn insert_rows(
    conn: &Connection,
    object_id: i64,
    scope_uid: Option<&str>,
    results: &[PreparedResult],
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO results (object_id, idx, policy, rule, result, severity, category, source, scored,
             timestamp, message, properties, resources, subject_api_version, subject_kind,
             subject_namespace, subject_name, subject_uid)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?;
    let mut numbers = conn.prepare_cached(
        "INSERT INTO result_numbers (object_id, idx, key, value, result, severity) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for r in results {
        let Subject {
            api_version,
            kind,
            namespace,
            name,
            uid,
        } = &r.subject;
        stmt.execute(params![
            object_id,
            r.index,
            r.policy,
            r.rule,
            r.result,
            r.severity,
            r.category,
            r.source,
            r.scored,
            r.timestamp,
            r.message,
            r.properties,
            r.resources,
            api_version,
            kind,
            namespace,
            name,
            stored_uid(uid.as_deref(), scope_uid)
        ])?;
        for (key, value) in &r.numbers {
            numbers.execute(params![object_id, r.index, key, value, r.result, r.severity])?;
        }
    }
    Ok(())
}

/// Writes the per-report counts (`result_counts`) of the report `object_id`.
pub(crate) fn insert_counts(conn: &Connection, object_id: i64, p: &Prepared) -> rusqlite::Result<()> {
    let mut counts = conn.prepare_cached(
        "INSERT INTO result_counts (object_id, result, severity, source, n) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for ((result, severity, source), n) in &p.counts {
        counts.execute(params![object_id, result, severity, source, n])?;
    }
    Ok(())
}

/// Removes the result rows, numbers and counts of the report `object_id`.
pub(crate) fn remove(conn: &Connection, object_id: i64) -> rusqlite::Result<()> {
    for sql in [
        "DELETE FROM results WHERE object_id = ?1",
        "DELETE FROM result_numbers WHERE object_id = ?1",
        "DELETE FROM result_counts WHERE object_id = ?1",
    ] {
        conn.prepare_cached(sql)?.execute([object_id])?;
    }
    Ok(())
}

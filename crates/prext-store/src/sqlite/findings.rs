//! Findings over time, recorded by the writer in the transaction of the write that changes
//! them (schema version 4, `findings` and `finding_carriers`; semantics in
//! [`crate::findings`]).
//!
//! After a report's result rows are written (or removed), [`record`] recomputes the set of
//! findings the report carries from its rows: each is opened (or, already open, marked seen)
//! with the write's time and revision, the report becomes one of its carriers, and a finding
//! the report carried before and no report carries any more is resolved. An update that keeps
//! the result rows only marks the report's findings seen ([`seen`]).

use rusqlite::{params, Connection};

/// The report's failing result rows, one per finding key (the first by position), as
/// `(subject_key, policy, rule, idx)`.
const FAILING: &str = "SELECT CASE WHEN coalesce(subject_uid, '') <> '' THEN subject_uid
                ELSE coalesce(subject_kind, '') || '/' || coalesce(subject_namespace, '') || '/'
                     || coalesce(subject_name, '') END AS subject_key,
            coalesce(policy, '') AS policy, coalesce(rule, '') AS rule, min(idx) AS idx
     FROM results WHERE object_id = ?1 AND result IN ('fail', 'warn', 'error')
     GROUP BY 1, 2, 3";

/// Recomputes the findings carried by the report `object_id` from its result rows (none when
/// it was deleted), at `at` (Unix ms) and `revision`.
pub(crate) fn record(conn: &Connection, object_id: i64, at: i64, revision: i64) -> rusqlite::Result<()> {
    let before: Vec<i64> = conn
        .prepare_cached("SELECT finding_id FROM finding_carriers WHERE object_id = ?1")?
        .query_map([object_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    conn.prepare_cached("DELETE FROM finding_carriers WHERE object_id = ?1")?
        .execute([object_id])?;
    let upsert = format!(
        "WITH cur AS ({FAILING})
         INSERT INTO findings (subject_key, policy, rule, namespace, resource, report, result,
             severity, category, source, message, subject_api_version, subject_kind,
             subject_namespace, subject_name, subject_uid, first_seen, first_seen_revision,
             last_seen, last_seen_revision)
         SELECT c.subject_key, c.policy, c.rule, o.namespace, o.resource, o.name, r.result,
                r.severity, r.category, r.source, r.message, r.subject_api_version, r.subject_kind,
                r.subject_namespace, r.subject_name, r.subject_uid, ?2, ?3, ?2, ?3
         FROM cur c JOIN results r ON r.object_id = ?1 AND r.idx = c.idx
              JOIN objects o ON o.id = ?1
         WHERE true
         ON CONFLICT (subject_key, policy, rule) WHERE resolved_at IS NULL DO UPDATE SET
             namespace = excluded.namespace, resource = excluded.resource, report = excluded.report,
             result = excluded.result, severity = excluded.severity, category = excluded.category,
             source = excluded.source, message = excluded.message,
             subject_api_version = excluded.subject_api_version, subject_kind = excluded.subject_kind,
             subject_namespace = excluded.subject_namespace, subject_name = excluded.subject_name,
             subject_uid = excluded.subject_uid, last_seen = excluded.last_seen,
             last_seen_revision = excluded.last_seen_revision"
    );
    let inserted = conn
        .prepare_cached(&upsert)?
        .execute(params![object_id, at, revision])?;
    if inserted > 0 {
        let carriers = format!(
            "WITH cur AS ({FAILING})
             INSERT INTO finding_carriers (object_id, finding_id)
             SELECT ?1, f.id FROM cur c JOIN findings f
                 ON f.subject_key = c.subject_key AND f.policy = c.policy AND f.rule = c.rule
                AND f.resolved_at IS NULL"
        );
        conn.prepare_cached(&carriers)?.execute([object_id])?;
    }
    let mut resolve = conn.prepare_cached(
        "UPDATE findings SET resolved_at = ?2, resolved_revision = ?3
         WHERE id = ?1 AND resolved_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM finding_carriers c WHERE c.finding_id = ?1)",
    )?;
    for id in before {
        resolve.execute(params![id, at, revision])?;
    }
    Ok(())
}

/// Marks the findings the report `object_id` carries as seen at `at` and `revision` (a write
/// that left its result rows as they were).
pub(crate) fn seen(conn: &Connection, object_id: i64, at: i64, revision: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE findings SET last_seen = ?2, last_seen_revision = ?3
         WHERE id IN (SELECT finding_id FROM finding_carriers WHERE object_id = ?1)",
    )?
    .execute(params![object_id, at, revision])?;
    Ok(())
}

/// Drops the findings resolved before `before` (Unix ms), in batches, on a connection of its
/// own (the writer thread's transactions interleave with the batches). Returns how many.
pub(crate) fn prune(path: &std::path::Path, before: i64) -> crate::Result<u64> {
    let conn = super::schema::open_writer(path, std::time::Duration::from_secs(5))?;
    let mut total = 0u64;
    loop {
        let n = conn
            .execute(
                "DELETE FROM findings WHERE id IN
                     (SELECT id FROM findings WHERE resolved_at < ?1 LIMIT 5000)",
                [before],
            )
            .map_err(super::db_error)?;
        total += n as u64;
        if n < 5000 {
            return Ok(total);
        }
    }
}

//! Findings over time, recorded by the findings indexer ([`super::indexer`]) as it applies
//! the change log (schema version 7, `findings` and `finding_carriers`; semantics in
//! [`crate::findings`]).
//!
//! For a change that rewrote a report's result rows, [`record`] sets the findings the report
//! carries: each is opened (or, already open, marked seen) with the write's time and revision,
//! the report becomes one of its carriers, and a finding the report carried before and no
//! report carries any more is resolved. An update that kept the result rows only marks the
//! report's findings seen ([`seen`]). A change whose rows make no finding, of a report that
//! carried none, costs one index lookup.

use rusqlite::{params, Connection};

use crate::findings_index::Carried;
use crate::ObjectKey;

/// Sets the findings the report `key` carries to `now` (none when it was deleted or fails
/// nothing), at `at` (Unix ms) and `revision`.
pub(crate) fn record(
    conn: &Connection,
    key: &ObjectKey,
    now: &[Carried],
    at: i64,
    revision: i64,
) -> rusqlite::Result<()> {
    let before: Vec<i64> = conn
        .prepare_cached(
            "SELECT finding_id FROM finding_carriers
             WHERE resource = ?1 AND namespace = ?2 AND name = ?3",
        )?
        .query_map(params![key.resource, key.namespace, key.name], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if before.is_empty() && now.is_empty() {
        return Ok(());
    }
    if !before.is_empty() {
        conn.prepare_cached(
            "DELETE FROM finding_carriers WHERE resource = ?1 AND namespace = ?2 AND name = ?3",
        )?
        .execute(params![key.resource, key.namespace, key.name])?;
    }
    open_seen(conn, key, now, at, revision)?;
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

/// Opens (or marks seen) the findings `now`, and makes the report their carrier.
fn open_seen(
    conn: &Connection,
    key: &ObjectKey,
    now: &[Carried],
    at: i64,
    revision: i64,
) -> rusqlite::Result<()> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO findings (subject_key, policy, rule, namespace, resource, report, result,
             severity, category, source, message, subject_api_version, subject_kind,
             subject_namespace, subject_name, subject_uid, first_seen, first_seen_revision,
             last_seen, last_seen_revision)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?17, ?18)
         ON CONFLICT (subject_key, policy, rule) WHERE resolved_at IS NULL DO UPDATE SET
             namespace = excluded.namespace, resource = excluded.resource, report = excluded.report,
             result = excluded.result, severity = excluded.severity, category = excluded.category,
             source = excluded.source, message = excluded.message,
             subject_api_version = excluded.subject_api_version, subject_kind = excluded.subject_kind,
             subject_namespace = excluded.subject_namespace, subject_name = excluded.subject_name,
             subject_uid = excluded.subject_uid, last_seen = excluded.last_seen,
             last_seen_revision = excluded.last_seen_revision
         RETURNING id",
    )?;
    let mut carry = conn.prepare_cached(
        "INSERT INTO finding_carriers (resource, namespace, name, finding_id) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for c in now {
        let id: i64 = upsert.query_row(
            params![
                c.subject_key,
                c.policy,
                c.rule,
                key.namespace,
                key.resource,
                key.name,
                c.result,
                c.severity,
                c.category,
                c.source,
                c.message,
                c.subject_api_version,
                c.subject_kind,
                c.subject_namespace,
                c.subject_name,
                c.subject_uid,
                at,
                revision
            ],
            |r| r.get(0),
        )?;
        carry.execute(params![key.resource, key.namespace, key.name, id])?;
    }
    Ok(())
}

/// Marks the findings the report `key` carries as seen at `at` and `revision` (a write that
/// left its result rows as they were).
pub(crate) fn seen(conn: &Connection, key: &ObjectKey, at: i64, revision: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE findings SET last_seen = ?4, last_seen_revision = ?5
         WHERE id IN (SELECT finding_id FROM finding_carriers
                      WHERE resource = ?1 AND namespace = ?2 AND name = ?3)",
    )?
    .execute(params![key.resource, key.namespace, key.name, at, revision])?;
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

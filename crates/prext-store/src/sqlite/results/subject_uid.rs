//! The subject's uid in result queries (schema version 13): `results.subject_uid` holds it
//! relative to the report's scope uid (`result_rows::stored_uid`), so it is read as
//! [`SUBJECT_UID_SQL`], with the report's row, and a set of uids is searched in the two partial
//! indexes that hold them (`results_subject_uid`, `objects_scope_uid`).

use super::{on_report, placeholders, set_test, texts, Indexes, SUBJECT_UID_SQL};
use crate::results::ResultColumn;
use crate::sqlite::select::Predicate;

/// The SQL of a result column and whether it can be NULL: [`crate::rows::result_column`], but
/// the subject's uid reads the report's row too ([`SUBJECT_UID_SQL`], [`reads_report`]).
pub(in crate::sqlite) fn column(c: ResultColumn) -> (&'static str, bool) {
    match c {
        ResultColumn::SubjectUid => (SUBJECT_UID_SQL, true),
        other => crate::rows::result_column(other),
    }
}

/// Whether the SQL of the column ([`column`]) reads the report's row `o`: a report column, or
/// the subject's uid.
pub(in crate::sqlite) fn reads_report(c: ResultColumn) -> bool {
    on_report(c) || c == ResultColumn::SubjectUid
}

/// `subject.uid in (values)` or `notin`; returns whether it reads the report's row `o`.
///
/// A set of uids searched through the indexes is the rows storing one of them
/// (`results_subject_uid`) and the rows storing NULL of the reports whose scope has one
/// (`objects_scope_uid`): their rowids, so that the test needs neither `o` nor an `OR` across
/// tables, which no index serves. Otherwise (a negation, a missing uid listed, or the
/// report-order walk, which reads each report's rows by key) the uid is read as
/// [`SUBJECT_UID_SQL`] on each row.
pub(super) fn uid_condition(p: &mut Predicate, values: &[String], negated: bool, indexes: Indexes) -> bool {
    if !negated && indexes == Indexes::Use && !values.is_empty() && values.iter().all(|v| !v.is_empty()) {
        let list = placeholders(values.len());
        p.push(
            format!(
                "r.rowid IN (SELECT rowid FROM results WHERE subject_uid IN ({list}) \
                 UNION ALL SELECT r2.rowid FROM objects AS o2 JOIN results AS r2 ON r2.object_id = o2.id \
                 WHERE o2.scope_uid IN ({list}) AND r2.subject_uid IS NULL)"
            ),
            texts(values).chain(texts(values)),
        );
        return false;
    }
    set_test(p, SUBJECT_UID_SQL, true, values, negated);
    !values.is_empty()
}

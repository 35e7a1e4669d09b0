//! A report's results as rows of the `results` table, written with one statement.
//!
//! The rows go to the server as one array per column and come back out of `unnest`, so a
//! report with hundreds of results costs one statement, pipelined with the report's own write.

use prext_api::report::ResultRow;
use serde_json::Value;
use tokio_postgres::types::ToSql;

use super::ops::OpError;
use crate::Error;

type OpResult<T> = std::result::Result<T, OpError>;

/// The columns of `results`, in the order [`ResultColumns::params`] gives their arrays after
/// `object_id` and `cluster`.
macro_rules! result_columns {
    () => {
        "object_id, cluster, idx, policy, rule, result, severity, category, source, scored,
         \"timestamp\", message, properties, resources, subject_api_version, subject_kind,
         subject_namespace, subject_name, subject_uid"
    };
}

/// The arrays of [`ResultColumns::params`] as rows, their parameters starting at `$3`.
macro_rules! unnest_from_3 {
    () => {
        "unnest($3::integer[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::boolean[], $11::bigint[], $12::text[], $13::jsonb[],
                $14::jsonb[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[])"
    };
}

/// A report's result rows, for the object `$1` of cluster `$2`.
pub(crate) const INSERT_RESULTS: &str = concat!(
    "INSERT INTO results (",
    result_columns!(),
    ") SELECT $1, $2, u.* FROM ",
    unnest_from_3!(),
    " AS u"
);

/// A create in one statement: the object row (the parameters of `statements::UPDATE_OBJECT`, `$1` to
/// `$21`), its result rows (`$22` to `$38`), which take the object's new id without a lookup,
/// its change-log row (`ADDED`, no body and no labels: the row's, see
/// `statements::KEEP_SUPERSEDED`), with the write's time `$39` and results flag `$40`, and its counts
/// and numbers (`result_stats::INSERT_STATS`' arrays, `$41` to `$49`; until schema version 14
/// a statement of their own, which looked the new row up by its key).
pub(crate) const INSERT_OBJECT_WITH_RESULTS: &str = concat!(
    "WITH o AS (",
    "INSERT INTO objects (cluster, resource, namespace, name, uid, revision, created, labels, deleting,
         summary_pass, summary_fail, summary_warn, summary_error, summary_skip, scope_api_version,
         scope_kind, scope_namespace, scope_name, scope_uid, body, results_digest)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
             $21)
     RETURNING id, cluster, resource, namespace, name, revision), ",
    "r AS (INSERT INTO results (",
    result_columns!(),
    ") SELECT o.id, o.cluster, u.* FROM o, ",
    "unnest($22::integer[], $23::text[], $24::text[], $25::text[], $26::text[], $27::text[],
            $28::text[], $29::boolean[], $30::bigint[], $31::text[], $32::jsonb[], $33::jsonb[],
            $34::text[], $35::text[], $36::text[], $37::text[], $38::text[])",
    " AS u), ",
    "c AS (INSERT INTO result_counts (object_id, cluster, result, severity, source, n)
         SELECT o.id, o.cluster, u.* FROM o, unnest($41::text[], $42::text[], $43::text[], $44::integer[]) AS u), ",
    "n AS (INSERT INTO result_numbers (object_id, idx, key, value, result, severity)
         SELECT o.id, u.* FROM o,
             unnest($45::integer[], $46::text[], $47::float8[], $48::text[], $49::text[]) AS u) ",
    "INSERT INTO changes (cluster, revision, event, resource, namespace, name, body, labels,
         prev_labels, written_at, results_flag)
     SELECT o.cluster, o.revision, 'ADDED', o.resource, o.namespace, o.name, NULL, NULL, NULL,
            $39::bigint, $40::smallint
     FROM o"
);

/// A report's results as column arrays. PostgreSQL text cannot hold NUL characters, so they
/// become U+FFFD in these columns (the served body keeps them, escaped).
#[derive(Debug)]
pub(crate) struct ResultColumns {
    idx: Vec<i32>,
    text: [Vec<Option<String>>; 6],
    scored: Vec<Option<bool>>,
    timestamp: Vec<Option<i64>>,
    message: Vec<Option<String>>,
    properties: Vec<Value>,
    resources: Vec<Value>,
    subject: [Vec<Option<String>>; 5],
}

fn clean(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| s.replace('\0', "\u{FFFD}"))
}

fn clean_json(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace('\0', "\u{FFFD}")),
        Value::Array(a) => Value::Array(a.iter().map(clean_json).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), clean_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl ResultColumns {
    pub(crate) fn new(rows: &[ResultRow]) -> OpResult<ResultColumns> {
        let col = |f: fn(&ResultRow) -> &Option<String>| rows.iter().map(|r| clean(f(r))).collect::<Vec<_>>();
        let idx = rows
            .iter()
            .map(|r| i32::try_from(r.index))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| OpError::Rejected(Error::Internal("a result index is out of range".into())))?;
        Ok(ResultColumns {
            idx,
            text: [
                col(|r| &r.policy),
                col(|r| &r.rule),
                col(|r| &r.result),
                col(|r| &r.severity),
                col(|r| &r.category),
                col(|r| &r.source),
            ],
            scored: rows.iter().map(|r| r.scored).collect(),
            timestamp: rows.iter().map(|r| r.timestamp).collect(),
            message: col(|r| &r.message),
            properties: rows.iter().map(|r| clean_json(&r.properties)).collect(),
            resources: rows.iter().map(|r| clean_json(&r.resources)).collect(),
            subject: [
                col(|r| &r.subject.api_version),
                col(|r| &r.subject.kind),
                col(|r| &r.subject.namespace),
                col(|r| &r.subject.name),
                col(|r| &r.subject.uid),
            ],
        })
    }

    /// Whether a result makes a finding (see [`crate::findings`]).
    pub(crate) fn has_findings(&self) -> bool {
        self.text[2]
            .iter()
            .any(|r| crate::findings::is_failing(r.as_deref()))
    }

    /// Whether the report has no results.
    pub(crate) fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }

    /// How many results the report has.
    pub(crate) fn len(&self) -> usize {
        self.idx.len()
    }

    /// The rows `range` of the column arrays, for [`INSERT_RESULTS`] in several statements.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> ResultSlice<'_> {
        let r = range;
        ResultSlice {
            idx: &self.idx[r.clone()],
            text: self.text.each_ref().map(|c| &c[r.clone()]),
            scored: &self.scored[r.clone()],
            timestamp: &self.timestamp[r.clone()],
            message: &self.message[r.clone()],
            properties: &self.properties[r.clone()],
            resources: &self.resources[r.clone()],
            subject: self.subject.each_ref().map(|c| &c[r.clone()]),
        }
    }

    /// All the rows, whose [`ResultSlice::params`] are the column arrays in the order of the
    /// `unnest` of [`INSERT_RESULTS`] and [`INSERT_OBJECT_WITH_RESULTS`].
    pub(crate) fn all(&self) -> ResultSlice<'_> {
        self.slice(0..self.len())
    }
}

/// Some rows of a [`ResultColumns`] (see [`ResultColumns::slice`]).
#[derive(Debug)]
pub(crate) struct ResultSlice<'a> {
    idx: &'a [i32],
    text: [&'a [Option<String>]; 6],
    scored: &'a [Option<bool>],
    timestamp: &'a [Option<i64>],
    message: &'a [Option<String>],
    properties: &'a [Value],
    resources: &'a [Value],
    subject: [&'a [Option<String>]; 5],
}

impl ResultSlice<'_> {
    /// The column arrays, in the order of the `unnest` of [`INSERT_RESULTS`] and
    /// [`INSERT_OBJECT_WITH_RESULTS`].
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 17] {
        let [policy, rule, result, severity, category, source] = &self.text;
        let [s_api, s_kind, s_ns, s_name, s_uid] = &self.subject;
        [
            &self.idx,
            policy,
            rule,
            result,
            severity,
            category,
            source,
            &self.scored,
            &self.timestamp,
            &self.message,
            &self.properties,
            &self.resources,
            s_api,
            s_kind,
            s_ns,
            s_name,
            s_uid,
        ]
    }
}

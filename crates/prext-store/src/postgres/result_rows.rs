//! A report's results as rows of the `results` table, written with one statement.
//!
//! The rows go to the server as one array per column and come back out of `unnest`, so a
//! report with hundreds of results costs one statement, pipelined with the report's own write.

use deadpool_postgres::Transaction;
use prext_api::report::{ReportIndex, ResultRow};
use serde_json::Value;

use super::ops::OpError;
use crate::{Error, ObjectKey};

type OpResult<T> = std::result::Result<T, OpError>;

/// One result row per array element; the object is found by its key, so that the insert can be
/// pipelined right behind the object's own.
pub(crate) const INSERT_RESULTS: &str =
    "INSERT INTO results (object_id, cluster, idx, policy, rule, result, severity, category,
         source, scored, \"timestamp\", message, properties, resources, subject_api_version,
         subject_kind, subject_namespace, subject_name, subject_uid)
     SELECT o.id, o.cluster, u.*
     FROM objects o,
          unnest($5::integer[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                 $11::text[], $12::boolean[], $13::bigint[], $14::text[], $15::jsonb[],
                 $16::jsonb[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[]) AS u
     WHERE o.cluster = $1 AND o.resource = $2 AND o.namespace = $3 AND o.name = $4";

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
    pub(crate) fn new(index: &ReportIndex) -> OpResult<ResultColumns> {
        let rows = &index.results;
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

    /// Inserts the rows (nothing when there are none).
    pub(crate) async fn insert(
        &self,
        tx: &Transaction<'_>,
        stmt: &tokio_postgres::Statement,
        cluster: &str,
        key: &ObjectKey,
    ) -> Result<u64, tokio_postgres::Error> {
        if self.idx.is_empty() {
            return Ok(0);
        }
        let [policy, rule, result, severity, category, source] = &self.text;
        let [s_api, s_kind, s_ns, s_name, s_uid] = &self.subject;
        tx.execute(
            stmt,
            &[
                &cluster,
                &key.resource,
                &key.namespace,
                &key.name,
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
            ],
        )
        .await
    }
}

//! Writes prepared in the caller's task, before they reach the writer thread.
//!
//! The single writer thread is the SQLite backend's bottleneck, so everything about a write
//! that does not depend on the database is done beforehand, on the (parallel) async side:
//! the body is serialized once with room for its resourceVersion ([`Unstamped`]), the labels
//! and every result's `properties` and `resources` become the JSON text stored. The writer
//! then only binds strings and concatenates the body with its revision.

use prext_api::report::{ResultRow, Subject, Summary};

use crate::stamp::Unstamped;
use crate::{Error, ObjectKey, ObjectWrite, Result};

/// An [`ObjectWrite`] with its JSON already serialized.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) key: ObjectKey,
    pub(crate) uid: String,
    pub(crate) created: String,
    pub(crate) deleting: bool,
    /// `metadata.labels` as a JSON object.
    pub(crate) labels: String,
    pub(crate) body: Unstamped,
    pub(crate) summary: Summary,
    pub(crate) scope: Subject,
    pub(crate) results: Vec<PreparedResult>,
}

/// One result row, its JSON columns serialized.
#[derive(Debug)]
pub(crate) struct PreparedResult {
    pub(crate) index: i64,
    pub(crate) source: Option<String>,
    pub(crate) policy: Option<String>,
    pub(crate) rule: Option<String>,
    pub(crate) result: Option<String>,
    pub(crate) severity: Option<String>,
    pub(crate) category: Option<String>,
    pub(crate) scored: Option<bool>,
    pub(crate) message: Option<String>,
    pub(crate) timestamp: Option<i64>,
    /// `properties` as JSON text.
    pub(crate) properties: String,
    /// `resources` as JSON text.
    pub(crate) resources: String,
    pub(crate) subject: Subject,
}

impl Prepared {
    /// Serializes what the writer will store. Fails (writing nothing) when the body cannot be
    /// stamped (not an object, or a `metadata` that is not one).
    pub(crate) fn new(obj: ObjectWrite) -> Result<Prepared> {
        let labels = serde_json::to_string(&obj.labels)
            .map_err(|e| Error::Internal(format!("serializing labels: {e}")))?;
        let body = Unstamped::new(&obj.body).map_err(|e| Error::Internal(e.to_string()))?;
        let results = obj.index.results.into_iter().map(PreparedResult::new).collect();
        Ok(Prepared {
            key: obj.key,
            uid: obj.uid,
            created: obj.created,
            deleting: obj.deleting,
            labels,
            body,
            summary: obj.index.summary,
            scope: obj.index.scope,
            results,
        })
    }
}

impl PreparedResult {
    fn new(r: ResultRow) -> PreparedResult {
        PreparedResult {
            index: r.index,
            source: r.source,
            policy: r.policy,
            rule: r.rule,
            result: r.result,
            severity: r.severity,
            category: r.category,
            scored: r.scored,
            message: r.message,
            timestamp: r.timestamp,
            properties: r.properties.to_string(),
            resources: r.resources.to_string(),
            subject: r.subject,
        }
    }
}

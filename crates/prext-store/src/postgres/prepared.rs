//! Writes prepared in the caller's task, before they reach the writer task.
//!
//! The writer task runs one batch at a time, so whatever it computes is on every write's
//! critical path. Everything about a write that does not depend on the database is done
//! beforehand, in the request's own task: the body serialized once with room for its
//! resourceVersion ([`Unstamped`]), the labels as `jsonb`, the result rows as column arrays
//! ([`ResultColumns`]) and their digest ([`ReportIndex::results_digest`]). The writer then
//! only checks, concatenates the body with its revision and binds values.
//!
//! [`ReportIndex::results_digest`]: prext_api::report::ReportIndex::results_digest

use prext_api::report::{Subject, Summary};
use serde_json::Value;

use super::ops::OpError;
use super::result_rows::ResultColumns;
use crate::stamp::Unstamped;
use crate::{Error, ObjectKey, ObjectWrite, Result};

/// An [`ObjectWrite`] ready for the writer.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) key: ObjectKey,
    pub(crate) uid: String,
    pub(crate) created: String,
    pub(crate) deleting: bool,
    /// `metadata.labels` as a JSON object.
    pub(crate) labels: Value,
    pub(crate) body: Unstamped,
    pub(crate) summary: Summary,
    pub(crate) scope: Subject,
    pub(crate) results: ResultColumns,
    /// The digest of the result rows (`objects.results_digest`).
    pub(crate) results_digest: Vec<u8>,
}

impl Prepared {
    /// Fails (writing nothing) when the body cannot be stamped or a result cannot be stored.
    pub(crate) fn new(obj: ObjectWrite) -> Result<Prepared> {
        let body = Unstamped::new(&obj.body).map_err(|e| Error::Internal(e.to_string()))?;
        let results = ResultColumns::new(&obj.index).map_err(|e| match e {
            OpError::Rejected(e) => e,
            OpError::Storage(e) => super::error::pg_error(e),
        })?;
        let labels = Value::Object(
            obj.labels
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        );
        Ok(Prepared {
            results_digest: obj.index.results_digest().to_vec(),
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

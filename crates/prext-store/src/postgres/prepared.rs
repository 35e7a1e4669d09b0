//! Writes prepared in the caller's task, before they reach the writer task.
//!
//! The writer task runs one batch at a time, so whatever it computes is on every write's
//! critical path. Everything about a write that does not depend on the database is done
//! beforehand, in the request's own task: the shared [`ObjectHead`] (body serialized once,
//! results digest), the labels as `jsonb` and the result rows as column arrays
//! ([`ResultColumns`]). The writer then only checks, concatenates the body with its revision
//! and binds values.

use serde_json::Value;

use super::ops::OpError;
use super::result_rows::ResultColumns;
use super::result_stats::ResultStats;
use crate::prepared::ObjectHead;
use crate::{ObjectWrite, Result};

/// An [`ObjectWrite`] ready for the writer.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) head: ObjectHead,
    /// `metadata.labels` as a JSON object.
    pub(crate) labels: Value,
    pub(crate) results: ResultColumns,
    /// The report's counts and numeric properties (`result_stats.rs`).
    pub(crate) stats: ResultStats,
}

impl crate::write::Prepare for Prepared {
    fn prepare(obj: ObjectWrite) -> Result<Prepared> {
        Prepared::new(obj)
    }

    fn head(&self) -> &ObjectHead {
        &self.head
    }
}

impl Prepared {
    /// Fails (writing nothing) when the body cannot be stamped or a result cannot be stored.
    pub(crate) fn new(obj: ObjectWrite) -> Result<Prepared> {
        let (head, labels, rows) = ObjectHead::split(obj)?;
        let results = ResultColumns::new(&rows).map_err(|e| match e {
            OpError::Rejected(e) => e,
            OpError::Storage(e) => super::error::pg_error(e),
        })?;
        let stats = ResultStats::new(&rows);
        let labels = Value::Object(labels.into_iter().map(|(k, v)| (k, Value::String(v))).collect());
        Ok(Prepared {
            head,
            labels,
            results,
            stats,
        })
    }
}

//! What every backend prepares of a write in the caller's task, before its writer sees it.
//!
//! A store's writer (SQLite's thread, PostgreSQL's task) runs one batch at a time, so whatever it
//! computes is on every write's critical path. [`ObjectHead`] is the part of an
//! [`ObjectWrite`] both backends store alike: the key and metadata columns, the body serialized
//! once with room for its resourceVersion ([`Unstamped`]), the summary, scope and the results
//! digest. The labels and the result rows, which each backend encodes its own way, are handed
//! back for the backend to convert.

use std::collections::BTreeMap;

use prext_api::report::{ResultRow, Subject, Summary};

use crate::stamp::Unstamped;
use crate::{Error, ObjectKey, ObjectWrite, Result};

/// The columns of an object row that do not depend on the backend.
#[derive(Debug)]
pub(crate) struct ObjectHead {
    pub(crate) key: ObjectKey,
    pub(crate) uid: String,
    pub(crate) created: String,
    pub(crate) deleting: bool,
    pub(crate) body: Unstamped,
    pub(crate) summary: Summary,
    pub(crate) scope: Subject,
    /// [`ReportIndex::results_digest`](prext_api::report::ReportIndex::results_digest): what
    /// the result rows (and anything derived from them) are written from.
    pub(crate) results_digest: [u8; 16],
}

impl ObjectHead {
    /// Splits a write into its head and its labels and result rows. Fails (writing nothing)
    /// when the body cannot be stamped (not an object, or a `metadata` that is not one).
    pub(crate) fn split(obj: ObjectWrite) -> Result<(ObjectHead, BTreeMap<String, String>, Vec<ResultRow>)> {
        let body = Unstamped::new(&obj.body).map_err(|e| Error::internal(e.to_string()))?;
        let results_digest = obj.index.results_digest();
        let head = ObjectHead {
            key: obj.key,
            uid: obj.uid,
            created: obj.created,
            deleting: obj.deleting,
            body,
            summary: obj.index.summary,
            scope: obj.index.scope,
            results_digest,
        };
        Ok((head, obj.labels, obj.index.results))
    }
}

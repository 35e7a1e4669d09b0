//! Writes prepared in the caller's task, before they reach the writer thread.
//!
//! The single writer thread is the SQLite backend's bottleneck, so everything about a write
//! that does not depend on the database is done beforehand, on the (parallel) async side:
//! the body is serialized once with room for its resourceVersion ([`Unstamped`]), the labels
//! and every result's `properties` and `resources` become the JSON text stored, and the rows
//! derived from the results are computed once per report: the numeric properties
//! (`result_numbers`), the counts by result, severity and source (`result_counts`), and a
//! digest of all of it (`objects.results_digest`, so that an update that keeps its results
//! skips rewriting them), and the findings they make (handed to the findings indexer in
//! memory, see `hints.rs`). The writer then only binds values and concatenates the body with
//! its revision.

use std::collections::BTreeMap;

use prext_api::report::{ResultRow, Subject};
use serde_json::Value;

use crate::findings_index::Carried;
use crate::prepared::ObjectHead;
use crate::{Error, ObjectWrite, Result};

/// An [`ObjectWrite`] with its JSON already serialized.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) head: ObjectHead,
    /// `metadata.labels` as a JSON object.
    pub(crate) labels: String,
    pub(crate) results: Vec<PreparedResult>,
    /// The rows of `result_counts`: `(result, severity, source)` (a missing value as `""`)
    /// and how many results have them.
    pub(crate) counts: Vec<((String, String, String), i64)>,
    /// The findings the results make (see `hints.rs`): empty when none fails.
    pub(crate) carried: Vec<Carried>,
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
    /// The numeric properties: `(key, value)` for each property whose value is a number.
    pub(crate) numbers: Vec<(String, f64)>,
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
    /// Serializes what the writer will store. Fails (writing nothing) when the body cannot be
    /// stamped (not an object, or a `metadata` that is not one).
    pub(crate) fn new(obj: ObjectWrite) -> Result<Prepared> {
        let (head, labels, rows) = ObjectHead::split(obj)?;
        let carried = crate::findings_index::carried(&rows);
        let labels = serde_json::to_string(&labels)
            .map_err(|e| Error::internal(format!("serializing labels: {e}")))?;
        let results: Vec<PreparedResult> = rows.into_iter().map(PreparedResult::new).collect();
        let mut counts = BTreeMap::new();
        for r in &results {
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            *counts
                .entry((text(&r.result), text(&r.severity), text(&r.source)))
                .or_insert(0) += 1;
        }
        Ok(Prepared {
            head,
            labels,
            results,
            counts: counts.into_iter().collect(),
            carried,
        })
    }

    /// Whether a result makes a finding (see [`crate::findings`]).
    pub(crate) fn has_findings(&self) -> bool {
        self.results
            .iter()
            .any(|r| crate::findings::is_failing(r.result.as_deref()))
    }
}

impl PreparedResult {
    fn new(r: ResultRow) -> PreparedResult {
        let numbers = match &r.properties {
            Value::Object(props) => props
                .iter()
                .filter_map(|(k, v)| number(v).map(|n| (k.clone(), n)))
                .collect(),
            _ => Vec::new(),
        };
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
            numbers,
        }
    }
}

/// The number a property value stands for, if any: a JSON number, or a string that is one
/// JSON number (RFC 8259, surrounding JSON whitespace allowed), such as `"9.8"` or `"8"` but
/// not `"08"`, `"+1"`, `".5"` or `"NaN"`. This is exactly what schema version 2's trigger
/// kept (`json_valid(v) AND json_type(v) IN ('integer', 'real')`, then `CAST(v AS REAL)`).
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let t = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
            is_json_number(t.as_bytes())
                .then(|| t.parse::<f64>().ok())
                .flatten()
        }
        _ => None,
    }
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
fn is_json_number(b: &[u8]) -> bool {
    let digits = |i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(i),
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == b.len()
}

#[cfg(test)]
#[path = "prepared_tests.rs"]
mod tests;

//! What both backends read alike from their rows: a change-log row into a [`Change`], and the
//! SQL column (aliased `o` for `objects`, `r` for the result rows) behind each
//! [`ResultColumn`] a result query filters, sorts or groups by. Each backend keeps its
//! statements and its driver's column access.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::results::ResultColumn;
use crate::{Change, Error, EventType, ObjectKey, Result};

/// The columns of one change row, as read (labels as the backend stores them: JSON text or a
/// JSON value).
pub(crate) struct ChangeRow<'a, L> {
    pub(crate) revision: i64,
    pub(crate) event: &'a str,
    pub(crate) key: ObjectKey,
    /// The stored body, or the object's for the newest change of a key.
    pub(crate) body: Option<String>,
    pub(crate) labels: L,
    pub(crate) prev_labels: Option<L>,
}

/// Stored labels: a JSON object of strings, as text (SQLite) or a JSON value (PostgreSQL).
pub(crate) trait StoredLabels {
    fn parse(self) -> serde_json::Result<BTreeMap<String, String>>;
}

impl StoredLabels for String {
    fn parse(self) -> serde_json::Result<BTreeMap<String, String>> {
        serde_json::from_str(&self)
    }
}

impl StoredLabels for serde_json::Value {
    fn parse(self) -> serde_json::Result<BTreeMap<String, String>> {
        serde_json::from_value(self)
    }
}

impl<L: StoredLabels> ChangeRow<'_, L> {
    /// The change, or [`Error::Internal`] for a row no writer writes (an unknown event, a
    /// missing body, labels that are not an object of strings).
    pub(crate) fn parse(self) -> Result<Change> {
        let revision = self.revision;
        let event = match self.event {
            "ADDED" => EventType::Added,
            "MODIFIED" => EventType::Modified,
            "DELETED" => EventType::Deleted,
            other => {
                return Err(Error::internal(format!(
                    "change {revision} has unknown event {other:?}"
                )))
            }
        };
        let labels = |l: L| {
            l.parse().map_err(|e| {
                Error::internal(format!(
                    "labels of change {revision} are not a JSON object of strings: {e}"
                ))
            })
        };
        Ok(Change {
            revision,
            event,
            key: self.key,
            body: Bytes::from(
                self.body
                    .ok_or_else(|| Error::internal(format!("change {revision} has no body")))?,
            ),
            labels: labels(self.labels)?,
            prev_labels: self.prev_labels.map(labels).transpose()?,
        })
    }
}

/// The SQL of a result column, and whether it can be NULL.
pub(crate) fn result_column(c: ResultColumn) -> (&'static str, bool) {
    match c {
        ResultColumn::Result => ("r.result", true),
        ResultColumn::Severity => ("r.severity", true),
        ResultColumn::Policy => ("r.policy", true),
        ResultColumn::Rule => ("r.rule", true),
        ResultColumn::Category => ("r.category", true),
        ResultColumn::Source => ("r.source", true),
        ResultColumn::Namespace => ("o.namespace", false),
        ResultColumn::Resource => ("o.resource", false),
        ResultColumn::Report => ("o.name", false),
        ResultColumn::SubjectApiVersion => ("r.subject_api_version", true),
        ResultColumn::SubjectKind => ("r.subject_kind", true),
        ResultColumn::SubjectNamespace => ("r.subject_namespace", true),
        ResultColumn::SubjectName => ("r.subject_name", true),
        ResultColumn::SubjectUid => ("r.subject_uid", true),
    }
}

/// Whether the column lives on the report (`objects`) rather than the result row.
pub(crate) fn on_report(c: ResultColumn) -> bool {
    !result_column(c).0.starts_with("r.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event: &str, body: Option<&str>, labels: &str) -> ChangeRow<'static, String> {
        ChangeRow {
            revision: 7,
            event: Box::leak(event.to_owned().into_boxed_str()),
            key: ObjectKey::new("r", "ns", "n"),
            body: body.map(str::to_owned),
            labels: labels.to_owned(),
            prev_labels: None,
        }
    }

    #[test]
    fn change_rows_parse_or_fail_as_internal() {
        let c = row("MODIFIED", Some("{}"), r#"{"a":"b"}"#)
            .parse()
            .expect("change");
        assert_eq!((c.event, c.labels["a"].as_str()), (EventType::Modified, "b"));
        for bad in [
            row("RENAMED", Some("{}"), "{}"),
            row("ADDED", None, "{}"),
            row("ADDED", Some("{}"), r#"{"a":1}"#),
        ] {
            assert!(matches!(bad.parse(), Err(Error::Internal(_))));
        }
        let v = ChangeRow {
            revision: 1,
            event: "DELETED",
            key: ObjectKey::new("r", "", "n"),
            body: Some("{}".into()),
            labels: serde_json::json!({}),
            prev_labels: Some(serde_json::json!({"x": "y"})),
        };
        assert_eq!(v.parse().expect("change").prev_labels.expect("prev")["x"], "y");
    }

    #[test]
    fn report_columns_are_the_objects_ones() {
        assert!(on_report(ResultColumn::Namespace) && on_report(ResultColumn::Report));
        assert!(!on_report(ResultColumn::Severity) && !on_report(ResultColumn::SubjectUid));
        assert_eq!(result_column(ResultColumn::Resource), ("o.resource", false));
    }
}

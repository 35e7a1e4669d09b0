//! The rows derived from a report's results (schema version 9), as on SQLite: how many results
//! have each (result, severity, source) (`result_counts`), and each result's numeric
//! properties (`result_numbers`). Computed once per report in the request's task
//! ([`ResultStats::new`]), written by the create's own statement
//! (`result_rows::INSERT_OBJECT_WITH_RESULTS`) or, for updates and moves, by one statement
//! pipelined after the result rows ([`INSERT_STATS`]), and removed with them ([`CLEAR_STATS`],
//! [`PURGE_NUMBERS`]).

use std::collections::{BTreeMap, HashSet};

use prext_api::report::ResultRow;
use serde_json::Value;
use tokio_postgres::types::ToSql;

/// `$1` to `$4`: the report's key (cluster, resource, namespace, name), written earlier in the
/// same transaction; `$5` to `$8` the counts, `$9` to `$13` the numbers (with their result's
/// result and severity, schema version 13), as arrays.
pub(crate) const INSERT_STATS: &str = "WITH o AS (SELECT id, cluster FROM objects
         WHERE cluster = $1 AND resource = $2 AND namespace = $3 AND name = $4),
     c AS (INSERT INTO result_counts (object_id, cluster, result, severity, source, n)
         SELECT o.id, o.cluster, u.* FROM o, unnest($5::text[], $6::text[], $7::text[], $8::integer[]) AS u)
     INSERT INTO result_numbers (object_id, idx, key, value, result, severity)
     SELECT o.id, u.* FROM o, unnest($9::integer[], $10::text[], $11::float8[], $12::text[], $13::text[]) AS u";

/// `$1`: a report's id. Removes its counts, and its numbers of the results before position
/// `$2` (all of them when its results are rewritten; the first `purge::INLINE_ROWS` when it is
/// deleted, as its result rows).
pub(crate) const CLEAR_STATS: &str = "WITH c AS (DELETE FROM result_counts WHERE object_id = $1)
     DELETE FROM result_numbers WHERE object_id = $1 AND idx < $2";

/// `$1`: a deleted report's id. Removes the numbers of the result rows the purge removed (it
/// removes them in position order), after a chunk.
pub(crate) const PURGE_NUMBERS: &str = "DELETE FROM result_numbers WHERE object_id = $1
     AND idx < coalesce((SELECT min(idx) FROM results WHERE object_id = $1), 2147483647)";

/// A report's counts and numeric properties as column arrays.
#[derive(Debug, Default)]
pub(crate) struct ResultStats {
    result: Vec<String>,
    severity: Vec<String>,
    source: Vec<String>,
    n: Vec<i32>,
    idx: Vec<i32>,
    key: Vec<String>,
    value: Vec<f64>,
    /// The result and severity of each number's result row, as `results` holds them.
    number_result: Vec<Option<String>>,
    number_severity: Vec<Option<String>>,
}

/// Text as the result rows store it (NUL becomes U+FFFD), a missing value as `""`.
fn text(v: &Option<String>) -> String {
    v.as_deref()
        .map(|s| s.replace('\0', "\u{FFFD}"))
        .unwrap_or_default()
}

impl ResultStats {
    pub(crate) fn new(rows: &[ResultRow]) -> ResultStats {
        let mut s = ResultStats::default();
        let mut counts: BTreeMap<(String, String, String), i32> = BTreeMap::new();
        for r in rows {
            *counts
                .entry((text(&r.result), text(&r.severity), text(&r.source)))
                .or_insert(0) += 1;
            let (Value::Object(props), Ok(idx)) = (&r.properties, i32::try_from(r.index)) else {
                continue;
            };
            // Two keys differing only by NUL and U+FFFD become one: the first is kept.
            let mut seen = HashSet::new();
            for (k, v) in props {
                let Some(value) = crate::sqlite::number(v) else {
                    continue;
                };
                let key = k.replace('\0', "\u{FFFD}");
                if (k.contains('\0') || k.contains('\u{FFFD}')) && !seen.insert(key.clone()) {
                    continue;
                }
                s.idx.push(idx);
                s.key.push(key);
                s.value.push(value);
                s.number_result
                    .push(r.result.as_ref().map(|v| v.replace('\0', "\u{FFFD}")));
                s.number_severity
                    .push(r.severity.as_ref().map(|v| v.replace('\0', "\u{FFFD}")));
            }
        }
        for ((result, severity, source), n) in counts {
            s.result.push(result);
            s.severity.push(severity);
            s.source.push(source);
            s.n.push(n);
        }
        s
    }

    /// Whether there is nothing to write (a report without results).
    pub(crate) fn is_empty(&self) -> bool {
        self.n.is_empty()
    }

    /// The arrays of [`INSERT_STATS`] (`$5` on).
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.result,
            &self.severity,
            &self.source,
            &self.n,
            &self.idx,
            &self.key,
            &self.value,
            &self.number_result,
            &self.number_severity,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: i64, result: &str, properties: Value) -> ResultRow {
        ResultRow {
            index,
            result: Some(result.to_owned()),
            properties,
            ..ResultRow::default()
        }
    }

    #[test]
    fn counts_and_numbers_of_a_report() {
        let s = ResultStats::new(&[
            row(0, "fail", serde_json::json!({"score": "9.8", "x": "08", "n": 3})),
            row(1, "fail", serde_json::json!({"score": 1.5})),
            row(2, "pass", serde_json::json!({"a\u{0}": "1", "a\u{FFFD}": "2"})),
        ]);
        assert_eq!(s.result, ["fail", "pass"]);
        assert_eq!(s.n, [2, 1]);
        let mut numbers: Vec<(i32, String, f64)> = s
            .idx
            .iter()
            .zip(&s.key)
            .zip(&s.value)
            .map(|((i, k), v)| (*i, k.clone(), *v))
            .collect();
        numbers.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        assert_eq!(
            numbers,
            [
                (0, "n".to_owned(), 3.0),
                (0, "score".to_owned(), 9.8),
                (1, "score".to_owned(), 1.5),
                (2, "a\u{FFFD}".to_owned(), 1.0),
            ]
        );
    }
}

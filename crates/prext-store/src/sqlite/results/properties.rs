//! Conditions on a result's string properties (`properties.<key>` exists, is missing, in or
//! not in a set of values), read from the row's JSON; numeric tests are lowered apart
//! (`numbers.rs`).

use rusqlite::types::Value;

use super::{placeholders, texts};
use crate::results::PropertyTest;
use crate::sqlite::select::Predicate;

/// Adds the test `test` of the string property `key` to `p`.
pub(super) fn property_condition(p: &mut Predicate, key: &str, test: &PropertyTest) {
    // The property's text, or NULL when absent.
    let (value_sql, key_params): (&str, Vec<Value>) = if !plain_path_label(key) {
        // A JSON path label cannot escape a double quote (and a backslash or a control
        // character makes the path invalid): look such a key up by equality, as data.
        (
            "(SELECT je.value FROM json_each(r.properties) AS je WHERE je.key = ?)",
            vec![Value::Text(key.to_owned())],
        )
    } else {
        (
            "json_extract(r.properties, ?)",
            vec![Value::Text(format!("$.\"{key}\""))],
        )
    };
    match test {
        PropertyTest::Exists => p.push(format!("{value_sql} IS NOT NULL"), key_params),
        PropertyTest::Missing => p.push(format!("{value_sql} IS NULL"), key_params),
        PropertyTest::In(values) if values.is_empty() => p.push("0", []),
        PropertyTest::In(values) => {
            let list = placeholders(values.len());
            p.push(
                format!("{value_sql} IN ({list})"),
                key_params.into_iter().chain(texts(values)),
            );
        }
        PropertyTest::NotIn(values) if values.is_empty() => {}
        PropertyTest::NotIn(values) => {
            let list = placeholders(values.len());
            let twice = key_params.iter().cloned().chain(key_params.iter().cloned());
            p.push(
                format!("({value_sql} IS NULL OR {value_sql} NOT IN ({list}))"),
                twice.chain(texts(values)),
            );
        }
        // Numeric tests are lowered apart (`NumberTest`).
        PropertyTest::Number(..) => {}
    }
}

/// Whether `key` can be written as the quoted label of a JSON path (`$."key"`) whatever
/// SQLite's path parser makes of escapes: only printable ASCII without `"` and `\`.
fn plain_path_label(key: &str) -> bool {
    key.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

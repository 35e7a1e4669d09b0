//! The cursor of a result page as SQL: the rows strictly after it in the page's order (report
//! order, or a severity or timestamp key before it).

use rusqlite::types::Value;

use super::{RANK_SQL, TIME_SQL};
use crate::results::{ResultCursor, ResultOrder};
use crate::sqlite::select::Predicate;

/// Keeps the rows strictly after `cursor` in `order`.
pub(super) fn after(p: &mut Predicate, order: ResultOrder, cursor: &ResultCursor) {
    let key = || {
        [
            Value::Text(cursor.namespace.clone()),
            Value::Text(cursor.report.clone()),
            Value::Text(cursor.resource.clone()),
        ]
    };
    let (lead, ascending) = match order {
        ResultOrder::Report => {
            // The first term bounds the walk of `objects_order`; the second skips the rows of
            // the cursor's own report up to its position.
            p.push(
                "(o.namespace, o.name, o.resource) >= (?, ?, ?) \
                 AND ((o.namespace, o.name, o.resource) > (?, ?, ?) OR r.idx > ?)",
                key()
                    .into_iter()
                    .chain(key())
                    .chain([Value::Integer(cursor.index)]),
            );
            return;
        }
        ResultOrder::Severity { ascending } => (RANK_SQL, ascending),
        ResultOrder::Timestamp { ascending } => (TIME_SQL, ascending),
    };
    let beyond = if ascending { ">" } else { "<" };
    p.push(
        format!(
            "({lead} {beyond} ? OR ({lead} = ? AND (o.namespace, o.name, o.resource, r.idx) > (?, ?, ?, ?)))"
        ),
        [Value::Integer(cursor.key), Value::Integer(cursor.key)]
            .into_iter()
            .chain(key())
            .chain([Value::Integer(cursor.index)]),
    );
}

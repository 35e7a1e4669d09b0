//! Result queries: the backend-neutral description of "which results, in which order, which
//! page", and of the counts grouped by some of their columns, that [`Store::query_results`]
//! and [`Store::summarize_results`] answer from the result rows.
//!
//! The semantics every backend implements (the conformance suite checks them):
//! - a [`ResultFilter`] keeps the results of reports in its namespace (all namespaces when
//!   `None`; cluster-scoped reports have the namespace `""`) for which every [`Condition`]
//!   holds;
//! - a missing value (SQL `NULL`) compares as the empty string: `severity in ("")` keeps the
//!   results without a severity, `severity notin (high)` keeps them too (like a label
//!   selector's `notin`, which also matches objects without the key);
//! - property comparisons with `>`, `>=`, `<`, `<=` are numeric and never match a property
//!   whose value is not a number; `=` and `!=` compare the text as written;
//! - message matching is a case-insensitive (ASCII) substring test;
//! - pages are keyset pages: the cursor is the sort key of the last row, so a page never
//!   repeats or skips a row that did not change in between.
//!
//! [`Store::query_results`]: crate::Store::query_results
//! [`Store::summarize_results`]: crate::Store::summarize_results

pub use prext_api::results::query::{
    severity_rank, Compare, Condition, PropertyTest, ResultColumn, ResultCursor, ResultFilter, ResultOrder,
    ResultRecord,
};
pub use prext_api::results::rank::{GroupCursor, GroupPage, GroupRank};

/// A result query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultQuery {
    /// Which results.
    pub filter: ResultFilter,
    /// In which order.
    pub order: ResultOrder,
    /// At most this many rows (the page size). Backends may cap it.
    pub limit: usize,
    /// Resume strictly after this row.
    pub after: Option<ResultCursor>,
    /// Also count every result the filter matches (all pages).
    pub count: bool,
}

/// A page of results, read from one snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultPage {
    /// The store revision of the snapshot.
    pub revision: i64,
    /// The rows, in the query's order.
    pub items: Vec<ResultRecord>,
    /// More rows match after the last one.
    pub more: bool,
    /// Every matching row (all pages), when the query asked for a count.
    pub total: Option<u64>,
}

/// Counts of results grouped by some columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SummaryQuery {
    /// Which results.
    pub filter: ResultFilter,
    /// The grouping columns, in order (may be empty: one total).
    pub group_by: Vec<ResultColumn>,
    /// Only one page of the groups of the first `group_by` column (the group), in this
    /// order: the rows of those groups only. A missing value and `""` are one group, `""`.
    pub page: Option<GroupPage>,
}

/// A group of a page, with the count it is ranked by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedGroup {
    /// The group's value (`""` for a missing value).
    pub group: String,
    /// Its count under the page's order (every result of the group in key order).
    pub value: u64,
}

/// The groups of a summary page, in the page's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupsPage {
    pub groups: Vec<RankedGroup>,
    /// More groups follow the last one.
    pub more: bool,
}

/// One group of a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    /// The group's values, one per `group_by` column (`None` for a missing value).
    pub keys: Vec<Option<String>>,
    /// How many results the group holds.
    pub count: u64,
}

/// The groups of a summary, in the order of their keys, read from one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The store revision of the snapshot.
    pub revision: i64,
    /// Non-empty groups, ordered by their keys (missing values first).
    pub rows: Vec<SummaryRow>,
    /// For a paged query: the page's groups in order (`rows` holds theirs only).
    pub page: Option<GroupsPage>,
}

/// The column of a query over the per-report counts (`result_counts`, aliased `c`, joined to
/// its report `o`), if the counts have it: the same SQL on both backends. Counts keep a
/// missing result, severity or source as `""`.
pub(crate) fn counts_column(col: ResultColumn) -> Option<&'static str> {
    match col {
        ResultColumn::Namespace => Some("o.namespace"),
        ResultColumn::Resource => Some("o.resource"),
        ResultColumn::Report => Some("o.name"),
        ResultColumn::Result => Some("c.result"),
        ResultColumn::Severity => Some("c.severity"),
        ResultColumn::Source => Some("c.source"),
        _ => None,
    }
}

/// Whether no result can satisfy `filter` whatever the data: two sets of values of one column
/// (or the namespace) that do not meet once the excluded values are taken out (`severity=critical`
/// with `severity in (medium,low)`, `in ()`), numeric tests of one property whose ranges do not
/// overlap (`score>=8` with `score<5`, or a NaN bound), two positions. Backends answer such a
/// query with an empty page and a zero count before any SQL: a planner cannot see that two
/// sets do not meet and reads the rows of either (PostgreSQL: 208 ms at 1,000,000 results).
pub(crate) fn matches_nothing(filter: &ResultFilter) -> bool {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    // Per column: the values every `In` allows (None: no `In` yet), and those a `NotIn` excludes.
    let mut allowed: HashMap<ResultColumn, BTreeSet<&str>> = HashMap::new();
    let mut excluded: HashMap<ResultColumn, BTreeSet<&str>> = HashMap::new();
    fn allow<'a>(
        allowed: &mut HashMap<ResultColumn, BTreeSet<&'a str>>,
        col: ResultColumn,
        values: impl Iterator<Item = &'a str>,
    ) {
        let values: BTreeSet<&str> = values.collect();
        allowed
            .entry(col)
            .and_modify(|a| a.retain(|v| values.contains(v)))
            .or_insert(values);
    }
    if let Some(ns) = &filter.namespace {
        allow(
            &mut allowed,
            ResultColumn::Namespace,
            std::iter::once(ns.as_str()),
        );
    }
    // Per numeric property: the range every test leaves, as (bound, inclusive) ends.
    let mut ranges: BTreeMap<&str, Range> = BTreeMap::new();
    let mut index = None;
    for c in &filter.conditions {
        match c {
            Condition::In(col, values) => allow(&mut allowed, *col, values.iter().map(String::as_str)),
            Condition::NotIn(col, values) => excluded
                .entry(*col)
                .or_default()
                .extend(values.iter().map(String::as_str)),
            Condition::Property {
                key,
                test: PropertyTest::Number(op, bound),
            } => {
                if bound.is_nan() {
                    return true;
                }
                ranges.entry(key.as_str()).or_default().narrow(*op, *bound);
            }
            Condition::Index(i) => match index {
                Some(j) if j != *i => return true,
                _ => index = Some(*i),
            },
            _ => {}
        }
    }
    let no_value = allowed.iter().any(|(col, values)| {
        let out = excluded.get(col);
        values.iter().all(|v| out.is_some_and(|out| out.contains(v)))
    });
    no_value || ranges.values().any(Range::is_empty)
}

/// The numbers a property's numeric tests leave: ends as (bound, inclusive).
#[derive(Debug, Default)]
struct Range {
    low: Option<(f64, bool)>,
    high: Option<(f64, bool)>,
}

impl Range {
    fn narrow(&mut self, op: Compare, bound: f64) {
        match op {
            Compare::Greater | Compare::GreaterOrEqual => {
                let end = (bound, op == Compare::GreaterOrEqual);
                // The larger low end wins; at the same bound, the exclusive one.
                if self
                    .low
                    .is_none_or(|(b, inclusive)| bound > b || (bound == b && inclusive))
                {
                    self.low = Some(end);
                }
            }
            Compare::Less | Compare::LessOrEqual => {
                let end = (bound, op == Compare::LessOrEqual);
                if self
                    .high
                    .is_none_or(|(b, inclusive)| bound < b || (bound == b && inclusive))
                {
                    self.high = Some(end);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        match (self.low, self.high) {
            (Some((low, low_in)), Some((high, high_in))) => {
                low > high || (low == high && !(low_in && high_in))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(col: ResultColumn, values: &[&str]) -> Condition {
        Condition::In(col, values.iter().map(|v| (*v).to_owned()).collect())
    }

    fn not(col: ResultColumn, values: &[&str]) -> Condition {
        Condition::NotIn(col, values.iter().map(|v| (*v).to_owned()).collect())
    }

    fn number(op: Compare, bound: f64) -> Condition {
        Condition::Property {
            key: "score".into(),
            test: PropertyTest::Number(op, bound),
        }
    }

    fn nothing(namespace: Option<&str>, conditions: Vec<Condition>) -> bool {
        matches_nothing(&ResultFilter {
            namespace: namespace.map(str::to_owned),
            conditions,
        })
    }

    #[test]
    fn sets_of_one_column_that_do_not_meet_match_nothing() {
        use ResultColumn::{Namespace, Result, Severity};
        assert!(nothing(
            None,
            vec![set(Severity, &["critical"]), set(Severity, &["medium", "low"])]
        ));
        assert!(nothing(None, vec![set(Severity, &[])]));
        assert!(nothing(
            None,
            vec![set(Severity, &["high"]), not(Severity, &["high", "low"])]
        ));
        assert!(nothing(Some("a"), vec![set(Namespace, &["b"])]));
        assert!(nothing(None, vec![set(Severity, &[""]), set(Severity, &["low"])]));
        // Sets that meet, or on different columns, may match.
        assert!(!nothing(
            None,
            vec![set(Severity, &["high", "low"]), set(Severity, &["low"])]
        ));
        assert!(!nothing(
            None,
            vec![set(Severity, &["critical"]), set(Result, &["fail"])]
        ));
        assert!(!nothing(
            None,
            vec![set(Severity, &["high", ""]), not(Severity, &["high"])]
        ));
        assert!(!nothing(
            None,
            vec![not(Severity, &["high"]), not(Severity, &["low"])]
        ));
        assert!(!nothing(Some("a"), vec![set(Namespace, &["a", "b"])]));
        assert!(!nothing(None, vec![not(Severity, &[])]));
    }

    #[test]
    fn numeric_ranges_that_do_not_overlap_match_nothing() {
        use Compare::*;
        assert!(nothing(
            None,
            vec![number(GreaterOrEqual, 8.0), number(Less, 5.0)]
        ));
        assert!(nothing(
            None,
            vec![number(Greater, 8.0), number(LessOrEqual, 8.0)]
        ));
        assert!(nothing(
            None,
            vec![number(GreaterOrEqual, 8.0), number(Less, 8.0)]
        ));
        assert!(nothing(
            None,
            vec![
                number(Less, 9.0),
                number(GreaterOrEqual, 1.0),
                number(Greater, 9.5)
            ]
        ));
        assert!(nothing(None, vec![number(Less, f64::NAN)]));
        assert!(!nothing(
            None,
            vec![number(GreaterOrEqual, 8.0), number(LessOrEqual, 8.0)]
        ));
        assert!(!nothing(
            None,
            vec![number(GreaterOrEqual, 8.0), number(Greater, 9.0)]
        ));
        // Different properties do not narrow each other.
        let other = Condition::Property {
            key: "cvss".into(),
            test: PropertyTest::Number(Less, 1.0),
        };
        assert!(!nothing(None, vec![number(GreaterOrEqual, 8.0), other]));
    }

    #[test]
    fn two_positions_match_nothing() {
        assert!(nothing(None, vec![Condition::Index(1), Condition::Index(2)]));
        assert!(!nothing(None, vec![Condition::Index(1), Condition::Index(1)]));
    }
}

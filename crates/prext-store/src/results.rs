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

//! The vocabulary of result queries, shared by the API (which parses it from query
//! parameters) and the storage backends (which lower it to SQL): columns, conditions, orders
//! and page cursors. The semantics are documented in `docs/results-api.md`: a missing value
//! compares as `""`; `>`, `>=`, `<`, `<=` on a property are numeric and never match a
//! value that is not a number; message matching is a case-insensitive substring test.

/// A column of the result rows that filters test and summaries group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultColumn {
    /// `pass`, `fail`, `warn`, `error`, `skip` (as written).
    Result,
    /// `critical`, `high`, `medium`, `low`, `info` (as written), or missing.
    Severity,
    /// The policy that produced the result.
    Policy,
    /// The rule of the policy.
    Rule,
    /// The result's category.
    Category,
    /// The producing tool.
    Source,
    /// The report's namespace (`""` for cluster-scoped reports).
    Namespace,
    /// The report's resource, `plural.group` (`policyreports.wgpolicyk8s.io`).
    Resource,
    /// The report's name.
    Report,
    /// The subject's `apiVersion`.
    SubjectApiVersion,
    /// The subject's `kind`.
    SubjectKind,
    /// The subject's `namespace`.
    SubjectNamespace,
    /// The subject's `name`.
    SubjectName,
    /// The subject's `uid`.
    SubjectUid,
}

impl ResultColumn {
    /// Every column, for exhaustive tests.
    pub const ALL: [ResultColumn; 14] = [
        ResultColumn::Result,
        ResultColumn::Severity,
        ResultColumn::Policy,
        ResultColumn::Rule,
        ResultColumn::Category,
        ResultColumn::Source,
        ResultColumn::Namespace,
        ResultColumn::Resource,
        ResultColumn::Report,
        ResultColumn::SubjectApiVersion,
        ResultColumn::SubjectKind,
        ResultColumn::SubjectNamespace,
        ResultColumn::SubjectName,
        ResultColumn::SubjectUid,
    ];

    /// Whether the column holds a handful of values in any cluster (results, severities,
    /// sources, categories, subject kinds and API versions), so that counting every group by
    /// result and severity in one pass is small whatever the number of results. The
    /// backends' summaries add the columns whose size they know otherwise.
    pub fn has_few_values(self) -> bool {
        matches!(
            self,
            ResultColumn::Result
                | ResultColumn::Severity
                | ResultColumn::Source
                | ResultColumn::Category
                | ResultColumn::SubjectKind
                | ResultColumn::SubjectApiVersion
        )
    }
}

/// A numeric comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
}

impl Compare {
    /// The operator as written (`>=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Compare::Greater => ">",
            Compare::GreaterOrEqual => ">=",
            Compare::Less => "<",
            Compare::LessOrEqual => "<=",
        }
    }

    /// Whether `value op bound` holds.
    pub fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Compare::Greater => value > bound,
            Compare::GreaterOrEqual => value >= bound,
            Compare::Less => value < bound,
            Compare::LessOrEqual => value <= bound,
        }
    }
}

/// A test on one property (`properties.<key>`) of a result.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyTest {
    /// The property is present.
    Exists,
    /// The property is absent.
    Missing,
    /// The property is present and its text is one of these.
    In(Vec<String>),
    /// The property is absent or its text is none of these.
    NotIn(Vec<String>),
    /// The property is a number and `number op bound` holds.
    Number(Compare, f64),
}

/// One condition of a filter; a result must satisfy all of them.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The column's value (missing = `""`) is one of these.
    In(ResultColumn, Vec<String>),
    /// The column's value (missing = `""`) is none of these.
    NotIn(ResultColumn, Vec<String>),
    /// The message contains this text, ignoring ASCII case.
    MessageContains(String),
    /// A test on a property.
    Property {
        /// The property key, as written in `properties`.
        key: String,
        /// The test.
        test: PropertyTest,
    },
    /// The result is at this position of its report's `results`.
    Index(i64),
}

/// Which results: a namespace scope and conditions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultFilter {
    /// Only results of reports in this namespace (`Some("")`: cluster-scoped reports only);
    /// `None` for every namespace.
    pub namespace: Option<String>,
    /// Conditions, all of which must hold.
    pub conditions: Vec<Condition>,
}

/// The order of a result list. Every order ends with the report key and the result's
/// position, so it is total and pages are stable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResultOrder {
    /// By report `(namespace, name, resource)`, then position in the report.
    #[default]
    Report,
    /// By [`severity_rank`] (most severe first unless `ascending`), then like `Report`.
    Severity {
        /// Least severe first.
        ascending: bool,
    },
    /// By `timestamp` (newest first unless `ascending`; results without one count as the
    /// oldest), then like `Report`.
    Timestamp {
        /// Oldest first.
        ascending: bool,
    },
}

/// The severity's rank: `critical` 5, `high` 4, `medium` 3, `low` 2, `info` 1, anything
/// else (or none) 0. Case-insensitive.
pub fn severity_rank(severity: Option<&str>) -> i64 {
    match severity.map(str::to_ascii_lowercase).as_deref() {
        Some("critical") => 5,
        Some("high") => 4,
        Some("medium") => 3,
        Some("low") => 2,
        Some("info") => 1,
        _ => 0,
    }
}

/// Where a page resumes: the sort key of the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultCursor {
    /// The leading sort value for [`ResultOrder::Severity`] (the rank) and
    /// [`ResultOrder::Timestamp`] (the timestamp, `i64::MIN` when missing); 0 for
    /// [`ResultOrder::Report`].
    pub key: i64,
    /// The report's namespace.
    pub namespace: String,
    /// The report's name.
    pub report: String,
    /// The report's resource.
    pub resource: String,
    /// The result's position in its report.
    pub index: i64,
}

/// One result with its report, as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultRecord {
    /// The report's namespace (`""` for cluster-scoped reports).
    pub namespace: String,
    /// The report's resource, `plural.group`.
    pub resource: String,
    /// The report's name.
    pub report: String,
    /// The report's uid.
    pub report_uid: String,
    /// The report's resourceVersion.
    pub report_revision: i64,
    /// The report's creationTimestamp (RFC 3339).
    pub report_created: String,
    /// Position in the report's `results`.
    pub index: i64,
    pub policy: Option<String>,
    pub rule: Option<String>,
    pub result: Option<String>,
    pub severity: Option<String>,
    pub category: Option<String>,
    pub source: Option<String>,
    pub scored: Option<bool>,
    /// `timestamp.seconds`.
    pub timestamp: Option<i64>,
    pub message: Option<String>,
    /// `properties`, a JSON object.
    pub properties: String,
    /// `resources`, a JSON array.
    pub resources: String,
    pub subject_api_version: Option<String>,
    pub subject_kind: Option<String>,
    pub subject_namespace: Option<String>,
    pub subject_name: Option<String>,
    pub subject_uid: Option<String>,
}

impl ResultRecord {
    /// The cursor that resumes after this row in `order`.
    pub fn cursor(&self, order: ResultOrder) -> ResultCursor {
        let key = match order {
            ResultOrder::Report => 0,
            ResultOrder::Severity { .. } => severity_rank(self.severity.as_deref()),
            ResultOrder::Timestamp { .. } => self.timestamp.unwrap_or(i64::MIN),
        };
        ResultCursor {
            key,
            namespace: self.namespace.clone(),
            report: self.report.clone(),
            resource: self.resource.clone(),
            index: self.index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_ranks() {
        assert_eq!(severity_rank(Some("critical")), 5);
        assert_eq!(severity_rank(Some("HIGH")), 4);
        assert_eq!(severity_rank(Some("info")), 1);
        assert_eq!(severity_rank(Some("urgent")), 0);
        assert_eq!(severity_rank(None), 0);
    }

    #[test]
    fn comparisons() {
        assert!(Compare::GreaterOrEqual.holds(8.0, 8.0));
        assert!(!Compare::Greater.holds(8.0, 8.0));
        assert!(Compare::Less.holds(7.9, 8.0));
        assert!(Compare::LessOrEqual.holds(8.0, 8.0));
        assert_eq!(Compare::GreaterOrEqual.as_str(), ">=");
    }

    #[test]
    fn cursor_keys_follow_the_order() {
        let r = ResultRecord {
            severity: Some("medium".into()),
            timestamp: None,
            index: 3,
            ..ResultRecord::default()
        };
        assert_eq!(r.cursor(ResultOrder::Severity { ascending: false }).key, 3);
        assert_eq!(r.cursor(ResultOrder::Timestamp { ascending: true }).key, i64::MIN);
        assert_eq!(r.cursor(ResultOrder::Report).index, 3);
        assert_eq!(r.cursor(ResultOrder::Report).key, 0);
    }
}

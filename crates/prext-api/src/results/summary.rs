//! `ResultSummary` items: counts of results by result × severity for one group (a namespace,
//! a policy, a source, a report kind, …), built from the store's grouped counts.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::filter::FilterError;
use super::object::report_def;
use super::query::ResultColumn;
use super::{resource, API_VERSION};
use crate::resources::Computed;

/// What summaries are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Namespace,
    Policy,
    Rule,
    Category,
    Source,
    /// The report's kind (`PolicyReport`, `ClusterReport`, …).
    ReportKind,
    /// The subject's kind (`Pod`, `Deployment`, …).
    SubjectKind,
}

/// The results every summary counts, in column order.
pub const RESULTS: [&str; 5] = ["pass", "fail", "warn", "error", "skip"];
/// The severities the wide Table shows, most severe first.
pub const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

impl GroupBy {
    /// Parses `groupBy` (default `namespace`).
    pub fn parse(s: Option<&str>) -> Result<GroupBy, FilterError> {
        Ok(match s.unwrap_or("") {
            "" | "namespace" => GroupBy::Namespace,
            "policy" => GroupBy::Policy,
            "rule" => GroupBy::Rule,
            "category" => GroupBy::Category,
            "source" => GroupBy::Source,
            "report.kind" | "kind" => GroupBy::ReportKind,
            "subject.kind" => GroupBy::SubjectKind,
            other => {
                return Err(FilterError(format!(
                    "groupBy: unsupported value {other:?}: namespace, policy, rule, category, source, \
                     report.kind, subject.kind"
                )))
            }
        })
    }

    /// The name as written in `groupBy`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Namespace => "namespace",
            GroupBy::Policy => "policy",
            GroupBy::Rule => "rule",
            GroupBy::Category => "category",
            GroupBy::Source => "source",
            GroupBy::ReportKind => "report.kind",
            GroupBy::SubjectKind => "subject.kind",
        }
    }

    /// The store column grouped by (report kinds are grouped by resource, then merged).
    pub fn column(self) -> ResultColumn {
        match self {
            GroupBy::Namespace => ResultColumn::Namespace,
            GroupBy::Policy => ResultColumn::Policy,
            GroupBy::Rule => ResultColumn::Rule,
            GroupBy::Category => ResultColumn::Category,
            GroupBy::Source => ResultColumn::Source,
            GroupBy::ReportKind => ResultColumn::Resource,
            GroupBy::SubjectKind => ResultColumn::SubjectKind,
        }
    }

    /// The Table header of the group column.
    fn header(self) -> &'static str {
        match self {
            GroupBy::Namespace => "Namespace",
            GroupBy::Policy => "Policy",
            GroupBy::Rule => "Rule",
            GroupBy::Category => "Category",
            GroupBy::Source => "Source",
            GroupBy::ReportKind => "Report Kind",
            GroupBy::SubjectKind => "Subject Kind",
        }
    }
}

/// The counts of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryItem {
    /// The group's value (`""` when missing; for namespaces, `""` is cluster-scoped reports).
    pub group: String,
    /// Results by `(result, severity)`, as written (`""` for a missing value).
    pub counts: BTreeMap<(String, String), u64>,
}

impl SummaryItem {
    /// Every result of the group.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The results with this result value, any severity.
    pub fn by_result(&self, result: &str) -> u64 {
        self.counts
            .iter()
            .filter(|((r, _), _)| r == result)
            .map(|(_, n)| n)
            .sum()
    }

    /// The results with this result and severity.
    pub fn count(&self, result: &str, severity: &str) -> u64 {
        self.counts
            .get(&(result.to_owned(), severity.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// Builds the items from grouped counts whose keys are `[group, result, severity]`, merging
/// report resources of the same kind when grouping by report kind.
pub fn build<'a>(
    group_by: GroupBy,
    rows: impl IntoIterator<Item = (&'a [Option<String>], u64)>,
) -> Vec<SummaryItem> {
    let mut groups: BTreeMap<String, SummaryItem> = BTreeMap::new();
    for (keys, n) in rows {
        let key = |i: usize| keys.get(i).cloned().flatten().unwrap_or_default();
        let mut group = key(0);
        if group_by == GroupBy::ReportKind {
            if let Some(def) = report_def(&group) {
                group = def.kind.to_owned();
            }
        }
        let item = groups.entry(group.clone()).or_insert_with(|| SummaryItem {
            group,
            counts: BTreeMap::new(),
        });
        *item.counts.entry((key(1), key(2))).or_insert(0) += n;
    }
    groups.into_values().collect()
}

/// The `ResultSummary` object of one group (`namespace` is the request's, if any).
pub fn to_object(item: &SummaryItem, group_by: GroupBy, namespace: Option<&str>) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(item.group));
    if let Some(ns) = namespace {
        metadata.insert("namespace".into(), json!(ns));
    }
    let results: Map<String, Value> = RESULTS
        .iter()
        .map(|r| ((*r).to_owned(), json!(item.by_result(r))))
        .collect();
    let counts: Vec<Value> = item
        .counts
        .iter()
        .map(|((result, severity), n)| json!({"result": result, "severity": severity, "count": n}))
        .collect();
    json!({
        "apiVersion": API_VERSION,
        "kind": resource(Computed::ResultSummaries).kind,
        "metadata": metadata,
        "groupBy": group_by.as_str(),
        "group": item.group,
        "total": item.total(),
        "results": results,
        "counts": counts,
    })
}

/// Whether a summary Table shows the group as its first column. Listed across namespaces and
/// grouped by namespace, it does not: each item's `metadata.namespace` is its group, and
/// kubectl prints it as the NAMESPACE column it adds to every all-namespaces list.
pub fn group_column(group_by: GroupBy, request_namespace: Option<&str>) -> bool {
    !(group_by == GroupBy::Namespace && request_namespace.is_none())
}

/// The `metadata.namespace` of a summary: the request's namespace, else (grouped by
/// namespace) the group's own namespace; none for the cluster-scoped group and other groupings
/// listed across namespaces.
pub fn item_namespace<'a>(
    item: &'a SummaryItem,
    group_by: GroupBy,
    request_namespace: Option<&'a str>,
) -> Option<&'a str> {
    match request_namespace {
        Some(ns) => Some(ns),
        None if group_by == GroupBy::Namespace && !item.group.is_empty() => Some(&item.group),
        None => None,
    }
}

/// The `columnDefinitions` of a ResultSummary Table grouped by `group_by` (the group column
/// first when `with_group`, see [`group_column`]).
pub fn column_definitions(group_by: GroupBy, with_group: bool) -> Value {
    let mut cols = Vec::new();
    if with_group {
        cols.push(json!({"name": group_by.header(), "type": "string", "format": "",
        "description": format!("The {} the counts are of.", group_by.as_str()), "priority": 0}));
    }
    for r in RESULTS {
        cols.push(
            json!({"name": r.to_ascii_uppercase(), "type": "integer", "format": "",
            "description": format!("Results with result {r}."), "priority": 0}),
        );
    }
    cols.push(json!({"name": "Total", "type": "integer", "format": "", "description": "Every result.", "priority": 0}));
    for s in SEVERITIES {
        cols.push(
            json!({"name": format!("Fail {s}"), "type": "integer", "format": "",
            "description": format!("Failing results of severity {s}."), "priority": 1}),
        );
    }
    Value::Array(cols)
}

/// The Table cells of one group (the group first when `with_group`).
pub fn cells(item: &SummaryItem, with_group: bool) -> Vec<Value> {
    let mut cells = Vec::new();
    if with_group {
        cells.push(json!(item.group));
    }
    cells.extend(RESULTS.iter().map(|r| json!(item.by_result(r))));
    cells.push(json!(item.total()));
    cells.extend(SEVERITIES.iter().map(|s| json!(item.count("fail", s))));
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(keys: &[Option<&str>], n: u64) -> (Vec<Option<String>>, u64) {
        (keys.iter().map(|k| k.map(str::to_owned)).collect(), n)
    }

    #[test]
    fn groups_merge_and_count() {
        let rows = [
            row(
                &[Some("policyreports.wgpolicyk8s.io"), Some("fail"), Some("high")],
                2,
            ),
            row(&[Some("policyreports.prext.demo"), Some("fail"), Some("high")], 1),
            row(&[Some("policyreports.wgpolicyk8s.io"), Some("pass"), None], 5),
            row(&[Some("reports.openreports.io"), Some("warn"), Some("low")], 1),
        ];
        let items = build(GroupBy::ReportKind, rows.iter().map(|(k, n)| (k.as_slice(), *n)));
        assert_eq!(items.len(), 2);
        let polr = &items[0];
        assert_eq!(polr.group, "PolicyReport");
        assert_eq!(
            (polr.total(), polr.by_result("fail"), polr.count("fail", "high")),
            (8, 3, 3)
        );
        assert_eq!(polr.count("pass", ""), 5);
        let obj = to_object(polr, GroupBy::ReportKind, Some("ns"));
        assert_eq!(
            obj["results"],
            json!({"pass": 5, "fail": 3, "warn": 0, "error": 0, "skip": 0})
        );
        assert_eq!(
            obj["metadata"],
            json!({"name": "PolicyReport", "namespace": "ns"})
        );
        assert_eq!(
            obj["counts"][0],
            json!({"result": "fail", "severity": "high", "count": 3})
        );
        assert_eq!(
            cells(polr, true),
            vec![
                json!("PolicyReport"),
                json!(5),
                json!(3),
                json!(0),
                json!(0),
                json!(0),
                json!(8),
                json!(0),
                json!(3),
                json!(0),
                json!(0),
                json!(0)
            ]
        );
        assert_eq!(
            column_definitions(GroupBy::Policy, true).as_array().map(Vec::len),
            Some(cells(polr, true).len())
        );
    }

    #[test]
    fn namespace_summaries_across_namespaces_leave_the_group_to_kubectl() {
        let item = SummaryItem {
            group: "team-a".into(),
            counts: BTreeMap::from([(("fail".to_owned(), "high".to_owned()), 2)]),
        };
        assert!(!group_column(GroupBy::Namespace, None));
        assert!(group_column(GroupBy::Namespace, Some("team-a")));
        assert!(group_column(GroupBy::Policy, None));
        assert_eq!(item_namespace(&item, GroupBy::Namespace, None), Some("team-a"));
        assert_eq!(item_namespace(&item, GroupBy::Policy, None), None);
        assert_eq!(item_namespace(&item, GroupBy::Policy, Some("x")), Some("x"));
        let cluster = SummaryItem::default();
        assert_eq!(item_namespace(&cluster, GroupBy::Namespace, None), None);
        let defs = column_definitions(GroupBy::Namespace, false);
        assert_eq!(defs.as_array().map(Vec::len), Some(cells(&item, false).len()));
        assert_eq!(defs[0]["name"], "PASS");
        assert_eq!(cells(&item, false)[1], json!(2));
    }

    #[test]
    fn group_by_values() {
        for g in [
            "namespace",
            "policy",
            "rule",
            "category",
            "source",
            "report.kind",
            "subject.kind",
        ] {
            assert_eq!(GroupBy::parse(Some(g)).map(GroupBy::as_str), Ok(g));
        }
        assert_eq!(GroupBy::parse(None), Ok(GroupBy::Namespace));
        assert!(GroupBy::parse(Some("message")).is_err());
    }
}

//! Metrics of the report contents, named and labelled like policy-reporter's so its dashboards
//! and alerts work unchanged:
//!
//! * `policy_report_result{namespace, policy, status, severity, source, …}`: how many results
//!   of namespaced reports have these values (`status` is the result: pass, fail, …);
//! * `cluster_policy_report_result{policy, status, severity, source, …}`: the same for
//!   cluster-scoped reports.
//!
//! Every value is one `GROUP BY` over the result rows at scrape time (milliseconds, see
//! `docs/results-api.md`); nothing is kept in memory between scrapes. The label set bounds the
//! cardinality: it defaults to `namespace,policy,status,severity,source` (policy-reporter's
//! "simple" mode without category) and is set with `PREXT_METRICS_LABELS` or per scrape with
//! `?labels=`. Labels: `namespace`, `policy`, `rule`, `status`, `severity`, `category`,
//! `source`, `kind` (the subject's kind) and `report_kind`.

use std::collections::BTreeMap;

use prext_api::results::object::report_def;
use prext_api::results::query::{ResultColumn, ResultFilter};
use prext_store::results::SummaryQuery;
use prext_store::Store;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The environment variable holding the default label set.
pub const LABELS_ENV: &str = "PREXT_METRICS_LABELS";
/// The default label set.
pub const DEFAULT_LABELS: &str = "namespace,policy,status,severity,source";

/// One label of the report metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Label {
    Namespace,
    Policy,
    Rule,
    Status,
    Severity,
    Category,
    Source,
    Kind,
    ReportKind,
}

impl Label {
    const ALL: [Label; 9] = [
        Label::Namespace,
        Label::Policy,
        Label::Rule,
        Label::Status,
        Label::Severity,
        Label::Category,
        Label::Source,
        Label::Kind,
        Label::ReportKind,
    ];

    /// The label name.
    pub fn name(self) -> &'static str {
        match self {
            Label::Namespace => "namespace",
            Label::Policy => "policy",
            Label::Rule => "rule",
            Label::Status => "status",
            Label::Severity => "severity",
            Label::Category => "category",
            Label::Source => "source",
            Label::Kind => "kind",
            Label::ReportKind => "report_kind",
        }
    }

    fn column(self) -> ResultColumn {
        match self {
            Label::Namespace => ResultColumn::Namespace,
            Label::Policy => ResultColumn::Policy,
            Label::Rule => ResultColumn::Rule,
            Label::Status => ResultColumn::Result,
            Label::Severity => ResultColumn::Severity,
            Label::Category => ResultColumn::Category,
            Label::Source => ResultColumn::Source,
            Label::Kind => ResultColumn::SubjectKind,
            Label::ReportKind => ResultColumn::Resource,
        }
    }
}

/// Why a label set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metrics label {0:?}: namespace, policy, rule, status, severity, category, source, kind, report_kind")]
pub struct UnknownLabel(pub String);

/// The labels of the report metrics, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSet(Vec<Label>);

impl LabelSet {
    /// Parses a comma-separated list (blank entries ignored, duplicates merged).
    pub fn parse(text: &str) -> Result<LabelSet, UnknownLabel> {
        let mut labels = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let label = Label::ALL
                .into_iter()
                .find(|l| l.name() == name)
                .ok_or_else(|| UnknownLabel(name.to_owned()))?;
            labels.push(label);
        }
        labels.sort();
        labels.dedup();
        Ok(LabelSet(labels))
    }

    /// The set from `PREXT_METRICS_LABELS`, else the default (an invalid variable is logged
    /// and ignored).
    pub fn from_env() -> LabelSet {
        let text = std::env::var(LABELS_ENV).unwrap_or_else(|_| DEFAULT_LABELS.to_owned());
        LabelSet::parse(&text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring {LABELS_ENV}");
            LabelSet::default()
        })
    }

    /// The labels.
    pub fn labels(&self) -> &[Label] {
        &self.0
    }
}

impl Default for LabelSet {
    fn default() -> Self {
        // The default list is valid.
        LabelSet::parse(DEFAULT_LABELS).unwrap_or(LabelSet(Vec::new()))
    }
}

type Labels = Vec<(String, String)>;

/// Counts the stored results by `labels` and registers the two families into `registry`.
pub async fn register(
    store: &dyn Store,
    labels: &LabelSet,
    registry: &mut Registry,
) -> prext_store::Result<()> {
    // The namespace tells namespaced from cluster-scoped reports, so it is always read.
    let mut group_by = vec![ResultColumn::Namespace];
    group_by.extend(
        labels
            .labels()
            .iter()
            .filter(|l| **l != Label::Namespace)
            .map(|l| l.column()),
    );
    let summary = store
        .summarize_results(SummaryQuery {
            filter: ResultFilter::default(),
            group_by,
            page: None,
        })
        .await?;
    let mut namespaced: BTreeMap<Labels, i64> = BTreeMap::new();
    let mut cluster: BTreeMap<Labels, i64> = BTreeMap::new();
    for row in &summary.rows {
        let namespace = row.keys.first().cloned().flatten().unwrap_or_default();
        let mut set: Labels = Vec::with_capacity(labels.labels().len());
        let mut values = row.keys.iter().skip(1);
        for label in labels.labels() {
            if *label == Label::Namespace {
                if !namespace.is_empty() {
                    set.push(("namespace".into(), namespace.clone()));
                }
                continue;
            }
            let mut value = values.next().cloned().flatten().unwrap_or_default();
            if *label == Label::ReportKind {
                if let Some(def) = report_def(&value) {
                    value = def.kind.to_owned();
                }
            }
            set.push((label.name().to_owned(), value));
        }
        let target = if namespace.is_empty() {
            &mut cluster
        } else {
            &mut namespaced
        };
        *target.entry(set).or_insert(0) += i64::try_from(row.count).unwrap_or(i64::MAX);
    }
    for (name, help, counts) in [
        (
            "policy_report_result",
            "Results of namespaced policy reports, by the configured labels.",
            namespaced,
        ),
        (
            "cluster_policy_report_result",
            "Results of cluster-scoped policy reports, by the configured labels.",
            cluster,
        ),
    ] {
        let family = Family::<Labels, Gauge>::default();
        for (set, n) in counts {
            family.get_or_create(&set).set(n);
        }
        registry.register(name, help, family);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets() {
        let set = LabelSet::parse(" severity,namespace,,status,severity ").expect("parse");
        assert_eq!(set.labels(), [Label::Namespace, Label::Status, Label::Severity]);
        assert_eq!(LabelSet::default().labels().len(), 5);
        assert_eq!(
            LabelSet::parse("namespace,cvss"),
            Err(UnknownLabel("cvss".into()))
        );
        assert!(LabelSet::parse("").expect("empty").labels().is_empty());
    }
}

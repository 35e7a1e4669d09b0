//! The resource table: every resource prext serves, described once as data.
//!
//! Discovery, OpenAPI and routing iterate [`TABLE`]: the report kinds kept in storage
//! ([`Backing::Stored`], also listed alone as [`RESOURCES`]) and the read-only resources of
//! `results.prext.io` computed from their results ([`Backing::Computed`]). Verbs, short
//! names, categories and scope are data of each row. Validation, Table columns and the
//! storage index of the stored kinds come from their CRDs. Adding a report kind is adding a
//! row here (and its CRD file).

/// Where the results and the summary of a report live inside the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportLayout {
    /// `results` and `summary` at the top level (wgpolicyk8s.io, openreports.io).
    TopLevel,
    /// `spec.results` and `spec.summary` (reports.kyverno.io ephemeral reports).
    Spec,
}

impl ReportLayout {
    /// The JSON path (as keys) of the parent object holding `results` and `summary`.
    pub fn parent(self) -> &'static [&'static str] {
        match self {
            ReportLayout::TopLevel => &[],
            ReportLayout::Spec => &["spec"],
        }
    }
}

/// Where a resource's objects come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// Report objects stored as written, with the schema and printer columns of a CRD.
    Stored {
        /// The CRD this kind's schema and printer columns come from (YAML, embedded).
        crd: &'static str,
        /// When the CRD belongs to another group (the prext.demo compatibility group reuses
        /// the wgpolicyk8s.io schema), the version of the CRD to read.
        crd_version: &'static str,
        layout: ReportLayout,
    },
    /// Computed from the results of the stored reports (`results.prext.io`, see
    /// [`crate::results`]); never written.
    Computed(Computed),
}

/// The computed resources of `results.prext.io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Computed {
    /// `policyresults`: one item per result of a report.
    PolicyResults,
    /// `resultsummaries`: counts of results by result × severity, grouped.
    ResultSummaries,
    /// `findings`: failing results over time (first seen, last seen, resolved).
    Findings,
    /// `resulttrends`: open findings per day or hour, grouped.
    ResultTrends,
}

/// The verbs of a stored kind.
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The verbs that change objects.
const WRITE_VERBS: [&str; 5] = ["create", "delete", "deletecollection", "patch", "update"];

/// One served resource.
#[derive(Debug)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    /// The resource name in URLs (`policyreports`).
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    /// The verbs served (and advertised in discovery).
    pub verbs: &'static [&'static str],
    pub backing: Backing,
}

impl ResourceDef {
    /// `group/version`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    /// `plural.group`: the resource's identity in storage, errors and RBAC.
    pub fn group_resource(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    /// The verbs served (and advertised in discovery).
    pub fn verbs(&self) -> &'static [&'static str] {
        self.verbs
    }

    /// Whether `verb` is served.
    pub fn serves(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// Whether no verb of the resource changes objects.
    pub fn read_only(&self) -> bool {
        !WRITE_VERBS.iter().any(|v| self.serves(v))
    }

    /// The CRD (YAML) and the version of it that describes a stored kind; `None` for a
    /// computed resource.
    pub fn crd(&self) -> Option<(&'static str, &'static str)> {
        match self.backing {
            Backing::Stored { crd, crd_version, .. } => Some((crd, crd_version)),
            Backing::Computed(_) => None,
        }
    }

    /// Where a stored kind keeps its results and summary; `None` for a computed resource.
    pub fn layout(&self) -> Option<ReportLayout> {
        match self.backing {
            Backing::Stored { layout, .. } => Some(layout),
            Backing::Computed(_) => None,
        }
    }

    /// Which computed resource this is; `None` for a stored kind.
    pub fn computed(&self) -> Option<Computed> {
        match self.backing {
            Backing::Computed(c) => Some(c),
            Backing::Stored { .. } => None,
        }
    }
}

const WG_POLR: &str = include_str!("../crds/kyverno_wgpolicyk8s.io_policyreports.yaml");
const WG_CPOLR: &str = include_str!("../crds/kyverno_wgpolicyk8s.io_clusterpolicyreports.yaml");
const OR_REPS: &str = include_str!("../crds/openreports_openreports.io_reports.yaml");
const OR_CREPS: &str = include_str!("../crds/openreports_openreports.io_clusterreports.yaml");
const KY_EPHR: &str = include_str!("../crds/kyverno_reports.kyverno.io_ephemeralreports.yaml");
const KY_CEPHR: &str = include_str!("../crds/kyverno_reports.kyverno.io_clusterephemeralreports.yaml");

/// How many rows of [`TABLE`], at its start, are stored kinds.
const STORED: usize = 8;

/// The stored report kinds: the first rows of [`TABLE`].
pub static RESOURCES: &[ResourceDef] = TABLE.split_at(STORED).0;

/// Every served resource, in discovery order: the stored kinds, then the computed ones.
pub static TABLE: &[ResourceDef] = &[
    ResourceDef {
        group: "wgpolicyk8s.io",
        version: "v1alpha2",
        kind: "PolicyReport",
        list_kind: "PolicyReportList",
        plural: "policyreports",
        singular: "policyreport",
        short_names: &["polr"],
        categories: &[],
        namespaced: true,
        verbs: READ_WRITE,
        backing: Backing::Stored {
            crd: WG_POLR,
            crd_version: "v1alpha2",
            layout: ReportLayout::TopLevel,
        },
    },
    ResourceDef {
        group: "wgpolicyk8s.io",
        version: "v1alpha2",
        kind: "ClusterPolicyReport",
        list_kind: "ClusterPolicyReportList",
        plural: "clusterpolicyreports",
        singular: "clusterpolicyreport",
        short_names: &["cpolr"],
        categories: &[],
        namespaced: false,
        verbs: READ_WRITE,
        backing: Backing::Stored {
            crd: WG_CPOLR,
            crd_version: "v1alpha2",
            layout: ReportLayout::TopLevel,
        },
    },
    ResourceDef {
        group: "openreports.io",
        version: "v1alpha1",
        kind: "Report",
        list_kind: "ReportList",
        plural: "reports",
        singular: "report",
        short_names: &["reps"],
        categories: &[],
        namespaced: true,
        verbs: READ_WRITE,
        backing: Backing::Stored {
            crd: OR_REPS,
            crd_version: "v1alpha1",
            layout: ReportLayout::TopLevel,
        },
    },
    ResourceDef {
        group: "openreports.io",
        version: "v1alpha1",
        kind: "ClusterReport",
        list_kind: "ClusterReportList",
        plural: "clusterreports",
        singular: "clusterreport",
        short_names: &["creps"],
        categories: &[],
        namespaced: false,
        verbs: READ_WRITE,
        backing: Backing::Stored {
            crd: OR_CREPS,
            crd_version: "v1alpha1",
            layout: ReportLayout::TopLevel,
        },
    },
    ResourceDef {
        group: "reports.kyverno.io",
        version: "v1",
        kind: "EphemeralReport",
        list_kind: "EphemeralReportList",
        plural: "ephemeralreports",
        singular: "ephemeralreport",
        short_names: &["ephr"],
        categories: &["kyverno"],
        namespaced: true,
        verbs: READ_WRITE,
        backing: Backing::Stored {
            crd: KY_EPHR,
            crd_version: "v1",
            layout: ReportLayout::Spec,
        },
    },
    ResourceDef {
        group: "reports.kyverno.io",
        version: "v1",
        kind: "ClusterEphemeralReport",
        list_kind: "ClusterEphemeralReportList",
        plural: "clusterephemeralreports",
        singular: "clusterephemeralreport",
        short_names: &["cephr"],
        categories: &["kyverno"],
        namespaced: false,
        verbs: READ_WRITE,
        backing: Backing::Stored {
            crd: KY_CEPHR,
            crd_version: "v1",
            layout: ReportLayout::Spec,
        },
    },
    ResourceDef {
        group: "prext.demo",
        version: "v1alpha1",
        kind: "PolicyReport",
        list_kind: "PolicyReportList",
        plural: "policyreports",
        singular: "policyreport",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: READ_WRITE,
        backing: Backing::Stored {
            crd: WG_POLR,
            crd_version: "v1alpha2",
            layout: ReportLayout::TopLevel,
        },
    },
    ResourceDef {
        group: "prext.demo",
        version: "v1alpha1",
        kind: "ClusterPolicyReport",
        list_kind: "ClusterPolicyReportList",
        plural: "clusterpolicyreports",
        singular: "clusterpolicyreport",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: READ_WRITE,
        backing: Backing::Stored {
            crd: WG_CPOLR,
            crd_version: "v1alpha2",
            layout: ReportLayout::TopLevel,
        },
    },
    computed(
        "policyresults",
        "policyresult",
        "PolicyResult",
        "PolicyResultList",
        &["pres"],
        &["get", "list"],
        Computed::PolicyResults,
    ),
    computed(
        "resultsummaries",
        "resultsummary",
        "ResultSummary",
        "ResultSummaryList",
        &["rsum"],
        &["get", "list"],
        Computed::ResultSummaries,
    ),
    computed(
        "findings",
        "finding",
        "Finding",
        "FindingList",
        &["fnd"],
        &["list"],
        Computed::Findings,
    ),
    computed(
        "resulttrends",
        "resulttrend",
        "ResultTrend",
        "ResultTrendList",
        &["rtrend"],
        &["list"],
        Computed::ResultTrends,
    ),
];

/// A row of `results.prext.io` (namespaced, computed).
const fn computed(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    list_kind: &'static str,
    short_names: &'static [&'static str],
    verbs: &'static [&'static str],
    what: Computed,
) -> ResourceDef {
    ResourceDef {
        group: crate::results::GROUP,
        version: crate::results::VERSION,
        kind,
        list_kind,
        plural,
        singular,
        short_names,
        categories: &[],
        namespaced: true,
        verbs,
        backing: Backing::Computed(what),
    }
}

/// The resource served at `/apis/{group}/{version}/{plural}`, if any.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    TABLE
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The stored kind with this apiVersion and kind, if any.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The groups of the stored kinds in table order, each with its versions.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    groups_of(RESOURCES)
}

/// The groups of `rows` in table order, each with its versions (one per group today):
/// [`groups_of`]`(`[`TABLE`]`)` are the served groups.
pub fn groups_of(rows: &'static [ResourceDef]) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// The stored kinds of one group/version.
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceDef> + 'a {
    served_in(RESOURCES, group, version)
}

/// The rows of `rows` in one group/version: [`served_in`]`(`[`TABLE`]`, …)` are the
/// resources served there.
pub fn served_in<'a>(
    rows: &'static [ResourceDef],
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceDef> + 'a {
    rows.iter()
        .filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for r in RESOURCES {
            assert!(r.list_kind.starts_with(r.kind), "{}", r.kind);
            assert_eq!(find(r.group, r.version, r.plural).map(|f| f.kind), Some(r.kind));
            let (crd, _) = r.crd().expect("a stored kind has a CRD");
            assert!(
                crd.contains(&format!("kind: {}", r.kind)),
                "CRD of {} names its kind",
                r.kind
            );
        }
        let short: Vec<_> = TABLE.iter().flat_map(|r| r.short_names).collect();
        let mut dedup = short.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(short.len(), dedup.len(), "short names are unique");
    }

    #[test]
    fn stored_kinds_first_then_computed_read_only_ones() {
        assert_eq!(RESOURCES.len(), STORED);
        for (i, r) in TABLE.iter().enumerate() {
            assert_eq!(r.computed().is_none(), i < STORED, "{}", r.kind);
            assert_eq!(r.crd().is_some(), i < STORED, "{}", r.kind);
            assert_eq!(r.read_only(), r.computed().is_some(), "{}", r.kind);
            assert!(
                r.serves("list") && r.serves("watch") != r.read_only(),
                "{}",
                r.kind
            );
            assert!(r.list_kind.starts_with(r.kind), "{}", r.kind);
            assert_eq!(find(r.group, r.version, r.plural).map(|f| f.kind), Some(r.kind));
        }
        let served: Vec<_> = groups_of(TABLE).into_iter().map(|(g, _)| g).collect();
        assert_eq!(served.last(), Some(&crate::results::GROUP));
        assert_eq!(
            served_in(TABLE, crate::results::GROUP, crate::results::VERSION).count(),
            4
        );
        assert!(find_kind(crate::results::API_VERSION, "PolicyResult").is_none());
    }

    #[test]
    fn groups_in_order() {
        let g = groups();
        assert_eq!(g.len(), 4);
        assert_eq!(g[0], ("wgpolicyk8s.io", vec!["v1alpha2"]));
        assert_eq!(in_group_version("prext.demo", "v1alpha1").count(), 2);
    }
}

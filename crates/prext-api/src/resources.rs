//! The resource table: every kind prext serves, described once as data.
//!
//! Discovery, OpenAPI, routing, validation, Table columns and the storage index are all
//! derived from these entries; adding a kind is adding a row here (and its CRD file).

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

/// One served kind.
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
    /// The CRD this kind's schema and printer columns come from (YAML, embedded).
    pub crd: &'static str,
    /// When the CRD belongs to another group (the prext.demo compatibility group reuses the
    /// wgpolicyk8s.io schema), the version of the CRD to read.
    pub crd_version: &'static str,
    pub layout: ReportLayout,
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

    /// The verbs every kind supports.
    pub fn verbs(&self) -> &'static [&'static str] {
        &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

const WG_POLR: &str = include_str!("../crds/kyverno_wgpolicyk8s.io_policyreports.yaml");
const WG_CPOLR: &str = include_str!("../crds/kyverno_wgpolicyk8s.io_clusterpolicyreports.yaml");
const OR_REPS: &str = include_str!("../crds/openreports_openreports.io_reports.yaml");
const OR_CREPS: &str = include_str!("../crds/openreports_openreports.io_clusterreports.yaml");
const KY_EPHR: &str = include_str!("../crds/kyverno_reports.kyverno.io_ephemeralreports.yaml");
const KY_CEPHR: &str = include_str!("../crds/kyverno_reports.kyverno.io_clusterephemeralreports.yaml");

/// Every served kind.
pub static RESOURCES: &[ResourceDef] = &[
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
        crd: WG_POLR,
        crd_version: "v1alpha2",
        layout: ReportLayout::TopLevel,
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
        crd: WG_CPOLR,
        crd_version: "v1alpha2",
        layout: ReportLayout::TopLevel,
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
        crd: OR_REPS,
        crd_version: "v1alpha1",
        layout: ReportLayout::TopLevel,
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
        crd: OR_CREPS,
        crd_version: "v1alpha1",
        layout: ReportLayout::TopLevel,
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
        crd: KY_EPHR,
        crd_version: "v1",
        layout: ReportLayout::Spec,
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
        crd: KY_CEPHR,
        crd_version: "v1",
        layout: ReportLayout::Spec,
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
        crd: WG_POLR,
        crd_version: "v1alpha2",
        layout: ReportLayout::TopLevel,
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
        crd: WG_CPOLR,
        crd_version: "v1alpha2",
        layout: ReportLayout::TopLevel,
    },
];

/// The kind served at `/apis/{group}/{version}/{plural}`, if any.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The kind with this apiVersion and kind, if any.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The served groups in table order, each with its versions (one per group today).
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES {
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

/// The kinds served in one group/version.
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceDef> + 'a {
    RESOURCES
        .iter()
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
            assert!(
                r.crd.contains(&format!("kind: {}", r.kind)),
                "CRD of {} names its kind",
                r.kind
            );
        }
        let short: Vec<_> = RESOURCES.iter().flat_map(|r| r.short_names).collect();
        let mut dedup = short.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(short.len(), dedup.len(), "short names are unique");
    }

    #[test]
    fn groups_in_order() {
        let g = groups();
        assert_eq!(g.len(), 4);
        assert_eq!(g[0], ("wgpolicyk8s.io", vec!["v1alpha2"]));
        assert_eq!(in_group_version("prext.demo", "v1alpha1").count(), 2);
    }
}

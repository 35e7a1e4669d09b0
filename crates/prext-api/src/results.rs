//! The result query API, `results.prext.io/v1alpha1`: two namespaced, read-only, virtual
//! resources computed from the result rows of every stored report (see
//! `docs/results-api.md`).
//!
//! The resources are rows of the one resource table ([`crate::resources::TABLE`], backed by
//! [`Computed`]), so discovery, OpenAPI and routing serve them like the report kinds:
//!
//! * `policyresults` (kind `PolicyResult`, verbs `get`, `list`): one item per result of a
//!   report, filtered by field and label selectors over the result's fields, by properties
//!   (numerically with `>`, `>=`, `<`, `<=`) and by message text; sortable, paginated, with
//!   an optional count;
//! * `resultsummaries` (kind `ResultSummary`, verbs `get`, `list`): counts of the same results by
//!   result × severity, grouped by namespace, policy, source, report kind, ….
//!
//! Paths follow the report kinds': `/apis/results.prext.io/v1alpha1/namespaces/{ns}/{plural}`
//! lists the results of the reports in `{ns}`, `/apis/results.prext.io/v1alpha1/{plural}`
//! those of every report (cluster-scoped ones included), so RBAC grants them per namespace
//! like any namespaced resource.
//!
//! Submodules: [`query`] (the query vocabulary the store shares), [`filter`] (query
//! parameters → a filter), [`object`] (items, names, Table rows), [`summary`] (summary
//! items), [`token`] (continue tokens).

pub mod filter;
pub mod findings;
pub mod history;
pub mod object;
pub mod query;
pub mod rank;
pub mod summary;
pub mod token;

use crate::resources::{Computed, ResourceDef};

/// The API group.
pub const GROUP: &str = "results.prext.io";
/// The served version.
pub const VERSION: &str = "v1alpha1";
/// `group/version`.
pub const API_VERSION: &str = "results.prext.io/v1alpha1";

/// The row of [`crate::resources::TABLE`] of a computed resource.
pub fn resource(what: Computed) -> &'static ResourceDef {
    crate::resources::TABLE
        .iter()
        .find(|r| r.computed() == Some(what))
        .unwrap_or_else(|| panic!("{what:?} is a row of the resource table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_computed_resource_has_its_row() {
        for what in [
            Computed::PolicyResults,
            Computed::ResultSummaries,
            Computed::Findings,
            Computed::ResultTrends,
        ] {
            let r = resource(what);
            assert_eq!((r.group, r.version), (GROUP, VERSION));
            assert_eq!(r.api_version(), API_VERSION);
            assert!(r.read_only() && r.namespaced, "{}", r.kind);
        }
        assert_eq!(resource(Computed::PolicyResults).plural, "policyresults");
    }
}

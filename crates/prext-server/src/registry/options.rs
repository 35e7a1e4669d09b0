//! The typed options of the registry's verbs (`CreateOptions`, `UpdateOptions`,
//! `PatchOptions`, `DeleteOptions`, `ListOptions` as the registry needs them).

use prext_api::fields::FieldSelector;
use prext_api::labels::LabelSelector;
use prext_store::Preconditions;
use serde_json::Value;

/// `fieldValidation`: what to do with fields the schema does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// `resourceVersionMatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionMatch {
    NotOlderThan,
    Exact,
}

/// Options of create, update, patch and apply.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// `dryRun=All`: decide and answer, write nothing.
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    /// `fieldManager` as the client sent it.
    pub field_manager: Option<String>,
    /// The manager when the client named none: its program, from the `User-Agent`.
    pub default_manager: String,
    /// `force` (apply only).
    pub force: Option<bool>,
    /// The `duplicate field "…"` messages the strict decoding of the body found: refused
    /// under `fieldValidation=Strict`, warned about under `Warn`.
    pub duplicates: Vec<String>,
}

impl WriteOptions {
    /// The field manager of a non-apply write.
    pub fn manager(&self) -> &str {
        self.field_manager.as_deref().unwrap_or(&self.default_manager)
    }
}

/// A patch to apply to the live object.
#[derive(Debug, Clone)]
pub enum Patch {
    /// `application/json-patch+json`.
    Json(json_patch::Patch),
    /// `application/merge-patch+json`.
    Merge(Value),
}

/// `DeleteOptions` as prext uses them.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub preconditions: Preconditions,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// `None`: across all namespaces.
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    /// The `continue` token of the previous page.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub revision: Option<i64>,
    pub version_match: Option<VersionMatch>,
}

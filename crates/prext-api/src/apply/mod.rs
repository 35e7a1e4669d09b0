//! Server-side apply (`PATCH` with `application/apply-patch+yaml`) and the field ownership
//! every write records in `metadata.managedFields`: a narrow structured-merge-diff for the
//! report kinds, whose shapes are fixed (the `merge` submodule spells them out).
//!
//! * [`apply`] merges an applied configuration into the live object, removes what the manager
//!   applied before and no longer applies (unless someone else owns it), detects conflicts with
//!   other managers (409 unless `force`) and records the manager's `Apply` entry.
//! * [`record_update`] records the fields a create, update or non-apply patch changed as owned
//!   by the writer's `Update` entry, taking them from every other entry.
//!
//! Both are pure: the caller reads the live object, runs the result through the normal update
//! or create path, and writes it.

mod fieldset;
mod managed;
mod merge;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use fieldset::{FieldSet, FieldsV1Error, Path, PathElement};
pub use managed::{APPLY, UPDATE};
pub use merge::NEVER_OWNED;

use crate::resources::ResourceDef;
use crate::status::{reason, Status, StatusCause, StatusDetails};
use managed::{Entry, Managed};

/// The manager kube gives the existing fields of an object that had no `managedFields`
/// when it was first applied to.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// One field an apply would take from another manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// The other manager as kube prints it: `"name"`, plus ` using <apiVersion>` when its
    /// entry is an `Update` one (and ` with subresource "s"` for subresource entries).
    pub owner: String,
    /// The field in kube's notation: `.results`, `.metadata.labels.app`.
    pub field: String,
}

/// An apply that changes fields other managers own, without `force`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct ApplyConflict {
    /// The conflicts, by owner then field.
    pub conflicts: Vec<Conflict>,
}

impl ApplyConflict {
    /// kube's message (`getConflictMessage`): `Apply failed with 1 conflict: conflict with
    /// "mgr" using wgpolicyk8s.io/v1alpha2: .results`, or one block per owner when there
    /// are several conflicts.
    pub fn message(&self) -> String {
        if let [one] = self.conflicts.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                one.owner, one.field
            );
        }
        let mut owners: Vec<&str> = self.conflicts.iter().map(|c| c.owner.as_str()).collect();
        owners.sort_unstable();
        owners.dedup();
        let mut lines = Vec::new();
        for owner in owners {
            lines.push(format!("conflicts with {owner}:"));
            let fields = self.conflicts.iter().filter(|c| c.owner == owner);
            lines.extend(fields.map(|c| format!("- {}", c.field)));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.conflicts.len(),
            lines.join("\n")
        )
    }

    /// The 409 `Conflict` Status (`errors.NewApplyConflict`), one `FieldManagerConflict`
    /// cause per field.
    pub fn to_status(&self) -> Status {
        let causes = self
            .conflicts
            .iter()
            .map(|c| {
                StatusCause::new(
                    "FieldManagerConflict",
                    format!("conflict with {}", c.owner),
                    &c.field,
                )
            })
            .collect();
        Status::failure(409, reason::CONFLICT, self.message()).with_details(StatusDetails {
            causes,
            ..Default::default()
        })
    }
}

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The body is not an object.
    #[error("the apply patch must be an object")]
    NotAnObject,
    /// No `apiVersion`.
    #[error("Object 'apiVersion' is missing in the apply patch")]
    MissingApiVersion,
    /// No `kind`.
    #[error("Object 'Kind' is missing in the apply patch")]
    MissingKind,
    /// An `apiVersion` other than the resource's.
    #[error(
        "Incorrect version specified in apply patch. Specified patch version: {found}, expected: {expected}"
    )]
    WrongVersion { found: String, expected: String },
    /// A `kind` other than the resource's.
    #[error("the kind of the apply patch ({found}) does not match the resource's kind ({expected})")]
    WrongKind { found: String, expected: String },
    /// No `metadata.name`.
    #[error("metadata.name is required in an apply patch")]
    MissingName,
    /// `metadata.managedFields` is set: appliers may not write it.
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsSet,
    /// The apply changes fields other managers own, without `force`.
    #[error(transparent)]
    Conflict(#[from] ApplyConflict),
}

impl ApplyError {
    /// The Status to answer with: 409 for a conflict, 400 for the rest.
    pub fn to_status(&self) -> Status {
        match self {
            ApplyError::Conflict(c) => c.to_status(),
            other => Status::bad_request(other.to_string()),
        }
    }
}

impl From<ApplyError> for Status {
    fn from(e: ApplyError) -> Self {
        e.to_status()
    }
}

/// Server-side apply of `applied` by `manager` to `live` (`None`: the object does not exist
/// and this apply creates it). Returns the merged object with its `managedFields`; it still
/// has to go through the create or update path (metadata rules, validation).
///
/// The manager's `Apply` entry gets `now` as its time when the object's content changes and
/// keeps its time otherwise, so that applying the same configuration twice yields the very
/// same object.
pub fn apply(
    def: &ResourceDef,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    check_applied(def, applied)?;
    let api_version = def.api_version();
    let empty = Value::Object(Map::new());
    let mut managed = live.map(Managed::decode).unwrap_or_default();
    let mut base = live.cloned().unwrap_or_else(|| empty.clone());
    if let Some(meta) = base.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    if live.is_some() && managed.is_empty() {
        // An object nobody tracked: kube hands its fields to a placeholder manager first.
        let fields = merge::compare(def, &empty, &base).changed();
        if !fields.is_empty() {
            managed.push(Entry::new(BEFORE_FIRST_APPLY, UPDATE, &api_version, fields, now));
        }
    }

    let mut merged = base.clone();
    merge::merge(def, &mut merged, applied);
    let applied_set = FieldSet::from_object(def, applied);
    let previous = match managed.find_mut(manager, APPLY, &api_version) {
        Some(entry) => {
            let previous = entry.fields.clone();
            entry.set_fields(applied_set);
            previous
        }
        None => {
            managed.push(Entry::new(manager, APPLY, &api_version, applied_set, now));
            None
        }
    };
    if let Some(previous) = previous {
        merge::prune(&mut merged, &previous, &managed.owned());
    }

    let diff = merge::compare(def, &base, &merged);
    let changed = diff.changed();
    let is_other = |e: &Entry| !e.is(manager, APPLY, &api_version);
    let mut taken: Vec<(String, Path, String)> = Vec::new();
    for entry in managed.entries().filter(|e| is_other(e)) {
        let Some(fields) = &entry.fields else { continue };
        for path in fields.intersection(&changed).iter() {
            taken.push((entry.owner(), path.clone(), entry.manager.clone()));
        }
    }
    if !force && !taken.is_empty() {
        taken.sort();
        let conflicts = taken
            .into_iter()
            .map(|(owner, path, manager)| Conflict {
                manager,
                owner,
                field: path.to_string(),
            })
            .collect();
        return Err(ApplyConflict { conflicts }.into());
    }

    let lost = changed.union(&diff.removed);
    managed
        .entries_mut()
        .filter(|e| is_other(e))
        .for_each(|e| e.release(&lost));
    managed.drop_empty();
    if merged != base {
        if let Some(entry) = managed.find_mut(manager, APPLY, &api_version) {
            entry.touch(now);
        }
    }
    managed.write(&mut merged);
    Ok(merged)
}

/// Records a create, update or non-apply patch by `manager` (`old` is `None` for a create):
/// the fields `new` adds or changes become owned by the manager's `Update` entry (timed
/// `now`) and are taken from every other entry; removed fields are released by everyone.
///
/// The entries come from `new` when it carries readable `managedFields` (clients may edit
/// them), from `old` otherwise. `managedFields: [{}]` in `new` clears them all.
pub fn record_update(def: &ResourceDef, old: Option<&Value>, new: &mut Value, manager: &str, now: &str) {
    let reset = new
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|list| matches!(list.as_slice(), [Value::Object(entry)] if entry.is_empty()));
    if reset {
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.shift_remove("managedFields");
        }
        return;
    }
    let api_version = def.api_version();
    let mut managed = Managed::decode(new);
    if managed.is_empty() || managed.entries().any(|e| e.fields.is_none()) {
        managed = old.map(Managed::decode).unwrap_or_default();
    }
    let empty = Value::Object(Map::new());
    let merge::Comparison {
        added,
        modified,
        removed,
    } = merge::compare(def, old.unwrap_or(&empty), new);
    // A create only adds, and most objects have one manager: no set is copied needlessly.
    let changed = if modified.is_empty() {
        added
    } else {
        added.union(&modified)
    };
    if !managed.is_empty() {
        let lost = if removed.is_empty() {
            std::borrow::Cow::Borrowed(&changed)
        } else {
            std::borrow::Cow::Owned(changed.union(&removed))
        };
        managed.entries_mut().for_each(|e| e.release(&lost));
    }
    if !changed.is_empty() {
        match managed.find_mut(manager, UPDATE, &api_version) {
            Some(entry) => {
                entry.own(changed);
                entry.touch(now);
            }
            None => managed.push(Entry::new(manager, UPDATE, &api_version, changed, now)),
        }
    }
    managed.drop_empty();
    managed.write(new);
}

/// The input rules of an apply patch (`FieldManager.Apply`).
fn check_applied(def: &ResourceDef, applied: &Value) -> Result<(), ApplyError> {
    let obj = applied.as_object().ok_or(ApplyError::NotAnObject)?;
    let text = |key: &str| obj.get(key).and_then(Value::as_str).unwrap_or_default();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if api_version.is_empty() {
        return Err(ApplyError::MissingApiVersion);
    }
    if kind.is_empty() {
        return Err(ApplyError::MissingKind);
    }
    let expected = def.api_version();
    if api_version != expected {
        return Err(ApplyError::WrongVersion {
            found: api_version.into(),
            expected,
        });
    }
    if kind != def.kind {
        return Err(ApplyError::WrongKind {
            found: kind.into(),
            expected: def.kind.into(),
        });
    }
    let meta = obj.get("metadata").and_then(Value::as_object);
    if meta
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::ManagedFieldsSet);
    }
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        return Err(ApplyError::MissingName);
    }
    Ok(())
}

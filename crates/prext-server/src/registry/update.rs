//! update (PUT) and patch (JSON patch, merge patch): the new object is checked against the
//! current one (identity, immutable metadata, validation, finalizers), its changed fields
//! recorded in managedFields, and written compare-and-swap through
//! [`guaranteed_update`](Registry::guaranteed_update). An update that changes nothing writes
//! nothing; one that removes the last finalizer of an object being deleted deletes it.

use prext_api::status::{Status, StatusCause};
use prext_api::{apply, meta};
use prext_store::StoredObject;
use serde_json::Value;

use super::guaranteed_update::{Action, Loop, OnConflict, Outcome};
use super::strategy::{admit, check_finalizers, check_identity, object_write, parse_stored};
use super::{Error, ObjectRef, Patch, Registry, Result, WriteOptions, Written};

/// What replacing `current` (whose body, parsed once by the caller, is `old`) with `new`
/// comes to. `record` names the manager of a non-apply write, whose changed fields it then
/// owns (apply has set `managedFields` itself).
pub(crate) fn replacement(
    target: &ObjectRef,
    current: &StoredObject,
    old: &Value,
    mut new: Value,
    opts: &WriteOptions,
    record: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Action> {
    let def = target.def;
    check_identity(def, &mut new, target.namespace.as_deref(), &target.name)?;
    meta::prepare_update(old, &mut new).map_err(|e| match e {
        meta::UpdateError::UidMismatch { new, stored } => Error::Precondition {
            def,
            name: target.name.clone(),
            failed: prext_store::Conflict::Uid {
                expected: new,
                actual: stored,
            },
        },
        meta::UpdateError::Invalid(status) => Error::Rejected(status),
    })?;
    *warnings = admit(def, &mut new, opts.field_validation, &opts.duplicates)?;
    if let Some(manager) = record {
        apply::record_update(
            def,
            Some(old),
            &mut new,
            manager,
            &meta::format_time(jiff::Timestamp::now()),
        );
    }
    check_finalizers(def, old, &new)?;
    meta::metadata_mut(&mut new)?.insert(
        "resourceVersion".into(),
        Value::String(current.revision.to_string()),
    );
    if prext_api::equal::equal(&new, old) {
        // A no-op update writes nothing and keeps the resourceVersion.
        return Ok(Action::Keep);
    }
    let deleting = meta::meta_str(&new, "deletionTimestamp").is_some();
    if deleting && meta::finalizers(&new).is_empty() && !opts.dry_run {
        // The last finalizer is gone from an object being deleted: it goes now.
        return Ok(Action::Delete);
    }
    Ok(Action::Update(object_write(def, &current.key, new)))
}

/// The answer of an update-like write.
pub(crate) fn written(outcome: Outcome, warnings: Vec<String>) -> Written {
    let (body, created) = match outcome {
        Outcome::Kept(o) | Outcome::Updated(o) | Outcome::Deleted(o) => (o.body, false),
        Outcome::Created(o) => (o.body, true),
        Outcome::Answered { body, created } => (body, created),
    };
    Written {
        body,
        created,
        warnings,
    }
}

impl Registry {
    /// PUT: replaces the object with `new`, which must carry the resourceVersion it was based on.
    pub async fn update(&self, target: &ObjectRef, new: Value, opts: &WriteOptions) -> Result<Written> {
        let rv = meta::meta_str(&new, "resourceVersion").unwrap_or("").to_string();
        let how = Loop {
            create_missing: false,
            on_conflict: OnConflict::Modified,
            dry_run: opts.dry_run,
        };
        let mut warnings = Vec::new();
        // The loop decides at most once: a pinned resourceVersion makes a lost race
        // `Modified`, never another try, so the body is moved in rather than copied.
        let mut new = Some(new);
        let outcome = self
            .guaranteed_update(target, how, |current| {
                // A missing object is 404 before anything else: the CRD store does not create
                // on update (`AllowCreateOnUpdate` is false in apiextensions-apiserver's
                // customresource strategy).
                let current = current.ok_or_else(|| Error::not_found(target))?;
                if rv.is_empty() {
                    return Err(Status::invalid(
                        target.def,
                        &target.name,
                        vec![StatusCause::new(
                            "FieldValueInvalid",
                            "Invalid value: 0x0: must be specified for an update",
                            "metadata.resourceVersion",
                        )],
                    )
                    .into());
                }
                if rv != current.revision.to_string() {
                    return Err(Error::modified(target));
                }
                let new = new
                    .take()
                    .ok_or_else(|| Status::internal("an update was decided twice"))?;
                let old = parse_stored(current)?;
                replacement(
                    target,
                    current,
                    &old,
                    new,
                    opts,
                    Some(opts.manager()),
                    &mut warnings,
                )
            })
            .await?;
        Ok(written(outcome, warnings))
    }

    /// PATCH with a JSON patch or a merge patch: applied to the current object, then the
    /// update path; tried again on a lost race unless the patch pins a resourceVersion.
    pub async fn patch(&self, target: &ObjectRef, patch: &Patch, opts: &WriteOptions) -> Result<Written> {
        if opts.force.is_some() {
            return Err(Status::invalid_kind(
                "PatchOptions",
                "meta.k8s.io",
                "",
                vec![StatusCause::new(
                    "FieldValueForbidden",
                    "Forbidden: may not be specified for non-apply patch",
                    "force",
                )],
            )
            .into());
        }
        let pinned_by_client = match patch {
            Patch::Merge(p) => p.pointer("/metadata/resourceVersion").is_some(),
            Patch::Json(_) => false,
        };
        let how = Loop {
            create_missing: false,
            on_conflict: if pinned_by_client {
                OnConflict::Modified
            } else {
                OnConflict::Retry
            },
            dry_run: opts.dry_run,
        };
        let mut warnings = Vec::new();
        let outcome = self
            .guaranteed_update(target, how, |current| {
                let current = current.ok_or_else(|| Error::not_found(target))?;
                // Parsed once: the patch applies to a copy, the original is what it replaces.
                let old = parse_stored(current)?;
                let mut obj = old.clone();
                match patch {
                    Patch::Json(p) => {
                        prext_api::limits::patch::apply_json_patch(&mut obj, p, meta::MAX_BODY_BYTES)?
                    }
                    Patch::Merge(p) => json_patch::merge(&mut obj, p),
                }
                if !obj.is_object() {
                    return Err(Status::bad_request("the patched object is not an object").into());
                }
                let pinned = meta::meta_str(&obj, "resourceVersion");
                if pinned.is_some_and(|rv| rv != current.revision.to_string()) {
                    return Err(Error::modified(target));
                }
                replacement(
                    target,
                    current,
                    &old,
                    obj,
                    opts,
                    Some(opts.manager()),
                    &mut warnings,
                )
            })
            .await?;
        Ok(written(outcome, warnings))
    }
}

//! Server-side apply: the applied configuration is merged into the live object by field
//! ownership (`prext_api::apply`), creating the object when it does not exist, then written
//! through the same admission and [`guaranteed_update`](Registry::guaranteed_update) as every
//! other write.

use prext_api::status::{Status, StatusCause};
use prext_api::{apply, meta, schema};
use serde_json::Value;

use super::guaranteed_update::{Action, Loop, OnConflict};
use super::strategy::{admit, check_identity, object_write, parse_stored, strict_decoding_error};
use super::update::{replacement, written};
use super::{Error, FieldValidation, ObjectRef, Registry, Result, WriteOptions, Written};

impl Registry {
    /// Applies the configuration `applied` for `opts.field_manager` (required).
    pub async fn apply(
        &self,
        target: &ObjectRef,
        mut applied: Value,
        opts: &WriteOptions,
    ) -> Result<Written> {
        let def = target.def;
        let Some(manager) = opts.field_manager.clone() else {
            return Err(Status::invalid_kind(
                "PatchOptions",
                "meta.k8s.io",
                "",
                vec![StatusCause::new(
                    "FieldValueRequired",
                    "Required value: is required for apply patch",
                    "fieldManager",
                )],
            )
            .into());
        };
        let force = opts.force.unwrap_or(false);
        check_identity(def, &mut applied, target.namespace.as_deref(), &target.name)?;
        // Prune unknown fields first, so the manager never owns a field validation would drop;
        // the merged object is validated as a whole below.
        let unknown = schema::for_resource(def)
            .validate(&mut applied.clone())
            .unknown_fields;
        if !unknown.is_empty() && opts.field_validation == FieldValidation::Strict {
            return Err(strict_decoding_error(&unknown).into());
        }
        let _ = schema::for_resource(def).validate(&mut applied);
        let how = Loop {
            create_missing: true,
            on_conflict: OnConflict::Retry,
            dry_run: opts.dry_run,
        };
        let mut warnings = Vec::new();
        let outcome = self
            .guaranteed_update(target, how, |current| {
                let now = jiff::Timestamp::now();
                let stamp = meta::format_time(now);
                let Some(current) = current else {
                    let mut obj =
                        apply::apply(def, None, &applied, &manager, force, &stamp).map_err(Status::from)?;
                    meta::prepare_create(&mut obj, now)?;
                    warnings = admit(def, &mut obj, opts.field_validation, &[])?;
                    return Ok(Action::Create(object_write(def, &target.key(), obj)));
                };
                let live = parse_stored(current)?;
                let merged = apply::apply(def, Some(&live), &applied, &manager, force, &stamp)
                    .map_err(Status::from)?;
                if meta::meta_str(&merged, "resourceVersion")
                    .is_some_and(|rv| rv != current.revision.to_string())
                {
                    return Err(Error::modified(target));
                }
                replacement(target, current, &live, merged, opts, None, &mut warnings)
            })
            .await?;
        Ok(written(outcome, warnings))
    }
}

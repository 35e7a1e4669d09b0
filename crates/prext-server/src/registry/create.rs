//! create: defaulting (`uid`, `creationTimestamp`, `generation`, a generated name),
//! validation, managedFields, create admission, then the store's create. A generated name
//! that happens to be taken is generated again; a body carrying a resourceVersion is refused.

use prext_api::status::Status;
use prext_api::{apply, meta, ResourceDef};
use serde_json::Value;

use super::strategy::{admit, dry_run_body, object_write, resource_version_set};
use super::{Error, Registry, Result, WriteOptions, Written, RETRIES};

impl Registry {
    /// Creates `obj` of kind `def` in `namespace` (the path's; `None` for cluster-scoped kinds).
    pub async fn create(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<Written> {
        let version_set = resource_version_set(&obj);
        meta::check_type(def, &obj)?;
        meta::ensure_namespace(def, &mut obj, namespace)?;
        self.admit_create(namespace).await?;
        let key = prext_store::ObjectKey::new(def.group_resource(), namespace.unwrap_or_default(), "");
        let generated = meta::meta_str(&obj, "name").is_none_or(str::is_empty);
        // Only a generated name can collide and be tried again: only then is a copy kept.
        let original = generated.then(|| obj.clone());
        let mut first = Some(obj);
        for _attempt in 0..RETRIES {
            let Some(mut obj) = first.take().or_else(|| original.clone()) else {
                break;
            };
            let warnings = prepare(def, &mut obj, opts, jiff::Timestamp::now())?;
            let name = meta::meta_str(&obj, "name").unwrap_or("").to_string();
            if opts.dry_run {
                return Ok(Written {
                    body: dry_run_body(&obj),
                    created: true,
                    warnings,
                });
            }
            if version_set {
                return Err(Status::resource_version_set_on_create().into());
            }
            match self.store.create(object_write(def, &key, obj)).await {
                Ok(stored) => {
                    return Ok(Written {
                        body: stored.body,
                        created: true,
                        warnings,
                    })
                }
                Err(prext_store::Error::AlreadyExists { .. }) if generated => continue,
                Err(source) => return Err(Error::Store { def, name, source }),
            }
        }
        Err(Error::NameGeneration { def })
    }
}

/// What one attempt of a create does to the object before the store sees it, pure: defaulting
/// at `now`, validation with pruning and `fieldValidation` ([`admit`]), then managedFields.
/// Returns the warnings to send.
pub fn prepare(
    def: &'static ResourceDef,
    obj: &mut Value,
    opts: &WriteOptions,
    now: jiff::Timestamp,
) -> Result<Vec<String>, Status> {
    meta::prepare_create(obj, now)?;
    let warnings = admit(def, obj, opts.field_validation, &opts.duplicates)?;
    apply::record_update(def, None, obj, opts.manager(), &meta::format_time(now));
    Ok(warnings)
}

//! delete and deletecollection: preconditions, finalizers (a delete of an object with
//! finalizers only marks it with a `deletionTimestamp`) and dry runs, through
//! [`guaranteed_update`](Registry::guaranteed_update).

use futures::StreamExt;
use prext_api::fields::FieldSelector;
use prext_api::labels::LabelSelector;
use prext_api::{meta, ResourceDef};
use prext_store::{ListItem, ListOptions, StoredObject};
use serde_json::Value;

use super::guaranteed_update::{Action, Loop, OnConflict, Outcome};
use super::strategy::{object_write, parse_stored};
use super::{DeleteOptions, Error, ObjectRef, Registry, Result};

/// What a delete did.
#[derive(Debug)]
pub enum Deleted {
    /// Removed (or would be, for a dry run): the last state.
    Gone(StoredObject),
    /// Marked for deletion (finalizers pending): the object as it is now.
    Marked(bytes::Bytes),
}

/// What a deletecollection deletes.
#[derive(Debug, Clone, Default)]
pub struct CollectionRequest {
    /// `None`: across all namespaces.
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

/// What a deletecollection deleted: the objects as listed before deleting them.
#[derive(Debug)]
pub struct DeletedCollection {
    /// The revision of the list.
    pub revision: i64,
    /// The objects' bodies.
    pub items: Vec<bytes::Bytes>,
}

/// How many deletes of a deletecollection run at once.
const COLLECTION_CONCURRENCY: usize = 64;

impl Registry {
    /// Deletes one object, honouring preconditions and finalizers, trying again after a lost
    /// race when the client pinned no resourceVersion.
    pub async fn delete(&self, target: &ObjectRef, opts: &DeleteOptions) -> Result<Deleted> {
        let how = Loop {
            create_missing: false,
            on_conflict: if opts.preconditions.resource_version.is_none() {
                OnConflict::Retry
            } else {
                OnConflict::Report
            },
            dry_run: opts.dry_run,
        };
        let outcome = self
            .guaranteed_update(target, how, |current| {
                let current = current.ok_or_else(|| Error::not_found(target))?;
                opts.preconditions
                    .check(&current.uid, current.revision)
                    .map_err(|failed| Error::Precondition {
                        def: target.def,
                        name: target.name.clone(),
                        failed,
                    })?;
                let obj = parse_stored(current)?;
                if meta::finalizers(&obj).is_empty() {
                    return Ok(Action::Delete);
                }
                if meta::meta_str(&obj, "deletionTimestamp").is_some() || opts.dry_run {
                    return Ok(Action::Keep);
                }
                let mut marked = obj;
                let m = meta::metadata_mut(&mut marked)?;
                m.insert(
                    "deletionTimestamp".into(),
                    Value::String(meta::format_time(jiff::Timestamp::now())),
                );
                m.insert("deletionGracePeriodSeconds".into(), Value::from(0));
                m.remove("resourceVersion");
                Ok(Action::Update(object_write(target.def, &current.key, marked)))
            })
            .await?;
        Ok(match outcome {
            Outcome::Deleted(gone) => Deleted::Gone(gone),
            Outcome::Kept(o) | Outcome::Updated(o) | Outcome::Created(o) => Deleted::Marked(o.body),
            Outcome::Answered { body, .. } => Deleted::Marked(body),
        })
    }

    /// Deletes every object of `def` the request selects, synchronously, as the namespace
    /// controller expects (it lists again right after and needs nothing left). Objects
    /// deleted meanwhile by someone else are no error. Answers what was deleted, as listed
    /// before deleting (`DeleteCollection` of k8s.io/apiserver/pkg/registry/generic/registry/store.go).
    pub async fn delete_collection(
        &self,
        def: &'static ResourceDef,
        request: CollectionRequest,
        opts: &DeleteOptions,
    ) -> Result<DeletedCollection> {
        let mut stream = self
            .store
            .list(ListOptions {
                resource: def.group_resource(),
                namespace: request.namespace,
                labels: request.labels,
                fields: request.fields,
                limit: None,
                after: None,
            })
            .await
            .map_err(Error::Storage)?;
        let revision = stream.revision;
        let mut targets = Vec::new();
        let mut items = Vec::new();
        while let Some(item) = stream.items.recv().await {
            if let ListItem::Object(o) = item.map_err(Error::Storage)? {
                items.push(o.body);
                targets.push(ObjectRef {
                    def,
                    namespace: (!o.key.namespace.is_empty()).then_some(o.key.namespace),
                    name: o.key.name,
                });
            }
        }
        let results: Vec<Result<Deleted>> = futures::stream::iter(targets)
            .map(|target| async move { self.delete(&target, opts).await })
            .buffer_unordered(COLLECTION_CONCURRENCY)
            .collect()
            .await;
        for r in results {
            match r {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(DeletedCollection { revision, items })
    }
}

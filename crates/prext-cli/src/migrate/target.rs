//! Where `prext migrate` writes: prext's store, through the [`Store`] trait, with the same
//! compare-and-swap discipline as the server's write handlers.
//!
//! Each prepared object is created when its key is free, left alone when the stored copy
//! already has the same content, and updated (`prepare_update`: uid and creationTimestamp of
//! the copy kept, generation bumped) when it differs. A write that loses a race with another
//! writer is retried from a fresh read.

use std::sync::Arc;

use prext_api::{meta, ResourceDef};
use prext_store::{ObjectKey, Store};
use serde_json::Value;

use super::convert::{object_write, same_content, served_kind, Prepared, Rejection};

/// How many times a write that lost a race is retried.
const RETRIES: usize = 5;

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    /// Not copied, for this reason.
    Skipped(Rejection),
}

/// Failures that stop the run (the store is unusable or keeps losing races).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("store: {0}")]
    Store(#[from] prext_store::Error),
    #[error("the stored copy of {0:?} is not valid JSON: {1}")]
    Corrupt(ObjectKey, serde_json::Error),
    #[error("{0:?} kept changing under the migration; is something else writing it?")]
    Contended(ObjectKey),
}

/// The store being filled; in a dry run it is only read (and may not exist at all).
pub struct Target {
    store: Option<Arc<dyn Store>>,
    dry_run: bool,
}

impl Target {
    /// Writes into `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store: Some(store),
            dry_run: false,
        }
    }

    /// Reads `store` (if any) to tell what a real run would do, and writes nothing.
    pub fn dry_run(store: Option<Arc<dyn Store>>) -> Self {
        Self { store, dry_run: true }
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<(Value, i64, String)>, TargetError> {
        let Some(store) = &self.store else { return Ok(None) };
        let Some(stored) = store.get(key).await? else {
            return Ok(None);
        };
        let body = serde_json::from_slice(&stored.body).map_err(|e| TargetError::Corrupt(key.clone(), e))?;
        Ok(Some((body, stored.revision, stored.uid)))
    }

    /// Points `ownerReferences` that name another report at that report's copy in prext
    /// (copies get new uids, and the garbage collector deletes dependents whose owner uid
    /// does not match). Returns how many such references have no copy yet: a later run
    /// fixes them once their owners are migrated.
    pub async fn remap_owner_uids(&self, obj: &mut Value) -> Result<usize, TargetError> {
        let namespace = meta::meta_str(obj, "namespace").unwrap_or("").to_string();
        let Some(refs) = obj
            .get_mut("metadata")
            .and_then(|m| m.get_mut("ownerReferences"))
            .and_then(Value::as_array_mut)
        else {
            return Ok(0);
        };
        let mut unresolved = 0;
        for owner in refs.iter_mut() {
            let field = |f: &str| owner.get(f).and_then(Value::as_str).unwrap_or("").to_string();
            let Some(def) = served_kind(&field("apiVersion"), &field("kind")) else {
                continue;
            };
            let ns = if def.namespaced { namespace.as_str() } else { "" };
            let key = ObjectKey::new(def.group_resource(), ns, field("name"));
            match self.get(&key).await? {
                Some((_, _, uid)) => {
                    if let Some(o) = owner.as_object_mut() {
                        o.insert("uid".into(), Value::String(uid));
                    }
                }
                None => unresolved += 1,
            }
        }
        Ok(unresolved)
    }

    /// Brings the store's copy of `prepared` up to date.
    pub async fn apply(
        &self,
        def: &'static ResourceDef,
        prepared: &Prepared,
    ) -> Result<Outcome, TargetError> {
        let key = &prepared.key;
        for _attempt in 0..RETRIES {
            match self.get(key).await? {
                None => {
                    let Some(store) = self.store.as_ref().filter(|_| !self.dry_run) else {
                        return Ok(Outcome::Created);
                    };
                    match store
                        .create(object_write(def, key, prepared.object.clone()))
                        .await
                    {
                        Ok(_) => return Ok(Outcome::Created),
                        Err(prext_store::Error::AlreadyExists { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Some((current, revision, _)) => {
                    if same_content(&current, &prepared.object) {
                        return Ok(Outcome::Unchanged);
                    }
                    if meta::meta_str(&current, "deletionTimestamp").is_some() {
                        return Ok(Outcome::Skipped(Rejection::TargetDeleting));
                    }
                    let mut new = prepared.object.clone();
                    // The copy keeps its own uid; `prepare_update` carries it over.
                    if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("uid");
                    }
                    if let Err(e) = meta::prepare_update(&current, &mut new) {
                        return Ok(Outcome::Skipped(Rejection::Invalid(vec![e.to_string()])));
                    }
                    let Some(store) = self.store.as_ref().filter(|_| !self.dry_run) else {
                        return Ok(Outcome::Updated);
                    };
                    match store.update(object_write(def, key, new), revision).await {
                        Ok(_) => return Ok(Outcome::Updated),
                        Err(prext_store::Error::Conflict(_) | prext_store::Error::NotFound) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Err(TargetError::Contended(key.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::convert::prepare;
    use super::*;
    use prext_api::RESOURCES;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000).expect("valid timestamp")
    }

    fn open(dir: &std::path::Path) -> Arc<dyn Store> {
        let store = prext_store::sqlite::SqliteStore::open(&dir.join("prext.db"), Default::default())
            .expect("open store");
        Arc::new(store)
    }

    fn report(name: &str, pass: i64, owner: Option<(&str, &str)>) -> Value {
        let mut obj = json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": name, "namespace": "ns", "uid": "source-uid"},
            "summary": {"pass": pass}
        });
        if let Some((kind, owner)) = owner {
            obj["metadata"]["ownerReferences"] = json!([
                {"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": kind, "name": owner, "uid": "old-uid"},
                {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "pod-uid"}
            ]);
        }
        obj
    }

    #[tokio::test]
    async fn creates_then_skips_unchanged_then_updates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let target = Target::new(store.clone());
        let def = &RESOURCES[0];
        let first = prepare(def, &report("a", 1, None), now()).expect("valid");
        assert_eq!(target.apply(def, &first).await.expect("apply"), Outcome::Created);
        let again = prepare(def, &report("a", 1, None), now()).expect("valid");
        assert_eq!(
            target.apply(def, &again).await.expect("apply"),
            Outcome::Unchanged
        );
        let before = store.get(&first.key).await.expect("get").expect("stored");

        let changed = prepare(def, &report("a", 2, None), now()).expect("valid");
        assert_eq!(
            Target::dry_run(Some(store.clone()))
                .apply(def, &changed)
                .await
                .expect("apply"),
            Outcome::Updated
        );
        assert_eq!(
            store
                .get(&first.key)
                .await
                .expect("get")
                .expect("stored")
                .revision,
            before.revision
        );

        assert_eq!(
            target.apply(def, &changed).await.expect("apply"),
            Outcome::Updated
        );
        let after = store.get(&first.key).await.expect("get").expect("stored");
        let body: Value = serde_json::from_slice(&after.body).expect("json");
        assert_eq!(body["summary"]["pass"], 2);
        assert_eq!(after.uid, before.uid, "an update keeps the copy's uid");
        assert_eq!(body["metadata"]["generation"], 2);
        assert!(after.revision > before.revision);
    }

    #[tokio::test]
    async fn dry_run_without_a_store_would_create_everything() {
        let def = &RESOURCES[0];
        let p = prepare(def, &report("a", 1, None), now()).expect("valid");
        assert_eq!(
            Target::dry_run(None).apply(def, &p).await.expect("apply"),
            Outcome::Created
        );
    }

    #[tokio::test]
    async fn owner_references_to_reports_follow_the_copies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let target = Target::new(store.clone());
        let def = &RESOURCES[0];
        let mut child = report("child", 1, Some(("PolicyReport", "parent")));
        assert_eq!(target.remap_owner_uids(&mut child).await.expect("remap"), 1);
        assert_eq!(child["metadata"]["ownerReferences"][0]["uid"], "old-uid");

        let parent = prepare(def, &report("parent", 1, None), now()).expect("valid");
        target.apply(def, &parent).await.expect("apply");
        let parent_uid = store.get(&parent.key).await.expect("get").expect("stored").uid;
        assert_eq!(target.remap_owner_uids(&mut child).await.expect("remap"), 0);
        assert_eq!(
            child["metadata"]["ownerReferences"][0]["uid"],
            parent_uid.as_str()
        );
        assert_eq!(
            child["metadata"]["ownerReferences"][1]["uid"], "pod-uid",
            "other owners are untouched"
        );
    }
}

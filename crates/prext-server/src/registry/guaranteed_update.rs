//! The one read-modify-write loop (the generic apiserver's `GuaranteedUpdate`): read the
//! current object, let the verb decide what to write, write it compare-and-swap, and on a
//! lost race read again, at most [`RETRIES`] times.

use prext_store::{ObjectWrite, Preconditions, StoredObject};

use super::{Error, ObjectRef, Registry, Result, RETRIES};

/// What a verb decided, given the current object.
pub(crate) enum Action {
    /// Nothing to write: the current object is the answer.
    Keep,
    /// Create the object (only when there is none).
    Create(ObjectWrite),
    /// Replace the current object, if it is still the revision read.
    Update(ObjectWrite),
    /// Remove the current object, if it is still the revision read.
    Delete,
}

/// What the loop did.
pub(crate) enum Outcome {
    Kept(StoredObject),
    /// Nothing written; `created` when a create was decided (a dry run).
    Answered {
        body: bytes::Bytes,
        created: bool,
    },
    Created(StoredObject),
    Updated(StoredObject),
    Deleted(StoredObject),
}

/// What a write refused for a stale revision becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnConflict {
    /// Read again and decide again (the client pinned no resourceVersion).
    Retry,
    /// [`Error::Modified`] (an update with a pinned resourceVersion).
    Modified,
    /// The store's conflict itself (a delete with a resourceVersion precondition).
    Report,
}

/// How the loop runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loop {
    /// A missing object is handed to the verb (after create admission) instead of 404.
    pub create_missing: bool,
    pub on_conflict: OnConflict,
    /// Decide, write nothing: a create or update answers its object, a delete the current one.
    pub dry_run: bool,
}

impl Registry {
    /// Reads `target`, asks `try_update` what to do with it, and does it compare-and-swap,
    /// again from a fresh read when another writer got there first.
    pub(crate) async fn guaranteed_update<F>(
        &self,
        target: &ObjectRef,
        how: Loop,
        mut try_update: F,
    ) -> Result<Outcome>
    where
        F: FnMut(Option<&StoredObject>) -> Result<Action>,
    {
        let key = target.key();
        for _attempt in 0..RETRIES {
            let current = self.store.get(&key).await.map_err(|e| Error::store(target, e))?;
            match &current {
                None if !how.create_missing => return Err(Error::not_found(target)),
                None => self.admit_create(target.namespace.as_deref()).await?,
                Some(_) => {}
            }
            let action = try_update(current.as_ref())?;
            let written = match (action, current) {
                (Action::Keep, Some(current)) => return Ok(Outcome::Kept(current)),
                (Action::Keep, None) => return Err(Error::not_found(target)),
                (Action::Create(w), _) if how.dry_run => {
                    let body = super::strategy::dry_run_body(&w.body);
                    return Ok(Outcome::Answered { body, created: true });
                }
                (Action::Update(w), _) if how.dry_run => {
                    let body = super::strategy::dry_run_body(&w.body);
                    return Ok(Outcome::Answered { body, created: false });
                }
                (Action::Delete, Some(current)) if how.dry_run => return Ok(Outcome::Deleted(current)),
                (Action::Create(w), _) => self.store.create(w).await.map(Outcome::Created),
                (Action::Update(w), Some(current)) => {
                    self.store.update(w, current.revision).await.map(Outcome::Updated)
                }
                (Action::Delete, Some(current)) => {
                    let pre = Preconditions {
                        uid: Some(current.uid.clone()),
                        resource_version: Some(current.revision),
                    };
                    self.store.delete(&key, pre).await.map(Outcome::Deleted)
                }
                (Action::Update(_) | Action::Delete, None) => return Err(Error::not_found(target)),
            };
            match written {
                Ok(outcome) => return Ok(outcome),
                Err(prext_store::Error::Conflict(_) | prext_store::Error::AlreadyExists { .. })
                    if how.on_conflict == OnConflict::Retry =>
                {
                    continue
                }
                Err(prext_store::Error::Conflict(_)) if how.on_conflict == OnConflict::Modified => {
                    return Err(Error::modified(target))
                }
                Err(e) => return Err(Error::store(target, e)),
            }
        }
        Err(Error::modified(target))
    }
}

//! The copy loop of `prext migrate`: kind after kind, page after page, each page admitted
//! and written before the checkpoint moves past it.
//!
//! Failure policy: one bad object is skipped and reported; a kind the source does not serve
//! (404) is noted and passed; a kind the source refuses to list (403, …) is marked failed
//! and the run goes on with the others; an expired continue token (410) goes on from the
//! newer snapshot Kubernetes offers, or restarts the kind (what was copied is found
//! unchanged); transient errors are retried with backoff; an unusable store or an
//! unreachable source ends the run with the checkpoint in place.

use std::time::Duration;

use futures::StreamExt as _;
use prext_api::{meta, ResourceDef};
use serde_json::Value;

use super::checkpoint::{Checkpoint, CheckpointFile};
use super::convert::{prepare, Prepared, Rejection};
use super::source::{Page, Source, SourceError};
use super::summary::{KindState, Skip, Summary};
use super::target::{Outcome, Target, TargetError};

/// Objects of one page written concurrently (the store groups concurrent commits).
const CONCURRENCY: usize = 8;
/// Attempts at a page that fails transiently.
const FETCH_ATTEMPTS: u32 = 5;
/// Restarts of a kind after expired continue tokens before giving up on it.
const EXPIRED_RESTARTS: u32 = 3;

/// What to copy and how.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kinds: Vec<&'static ResourceDef>,
    pub page_size: u32,
    /// Stop after this many objects (checkpointed), if set.
    pub max_objects: Option<u64>,
}

/// One run of the copy loop.
pub struct Engine<'a, S> {
    pub source: &'a S,
    pub target: &'a Target,
    pub plan: &'a Plan,
    /// Where the checkpoint is saved; `None` in a dry run.
    pub checkpoint_file: Option<&'a CheckpointFile>,
    /// Receives one line per page and per notable event.
    pub progress: &'a mut dyn FnMut(&str),
}

/// A failure that ends the run.
#[derive(Debug, thiserror::Error)]
enum Fatal {
    #[error("{resource}: {source}")]
    Source { resource: String, source: SourceError },
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] super::checkpoint::CheckpointError),
}

/// How a kind ended.
enum KindEnd {
    Done,
    Stopped,
}

impl<S: Source> Engine<'_, S> {
    /// Runs from `checkpoint` (a fresh one for a new run) to the end, to `--max-objects` or
    /// to a fatal error (recorded in the summary).
    pub async fn run(mut self, mut checkpoint: Checkpoint, dry_run: bool) -> Summary {
        let mut summary = Summary {
            dry_run,
            ..Default::default()
        };
        for def in &self.plan.kinds {
            // Listed from the start, so that a run that stops early shows what it did not reach.
            summary.kind(&def.group_resource());
        }
        let mut processed = 0u64;
        for def in &self.plan.kinds {
            let resource = def.group_resource();
            if checkpoint.is_completed(&resource) {
                summary.kind(&resource).state = KindState::DoneEarlier;
                continue;
            }
            match self
                .copy_kind(def, &mut checkpoint, &mut summary, &mut processed)
                .await
            {
                Ok(KindEnd::Done) => {}
                Ok(KindEnd::Stopped) => {
                    summary.stopped = true;
                    return summary;
                }
                Err(fatal) => {
                    summary.fatal = Some(fatal.to_string());
                    return summary;
                }
            }
        }
        let failed = summary
            .kinds
            .iter()
            .any(|k| matches!(k.state, KindState::Failed(_)));
        if let (Some(file), false) = (self.checkpoint_file, failed) {
            if let Err(e) = file.remove() {
                summary.fatal = Some(format!("checkpoint: {e}"));
            }
        }
        summary
    }

    fn save(&self, checkpoint: &Checkpoint) -> Result<(), Fatal> {
        match self.checkpoint_file {
            Some(file) => Ok(file.save(checkpoint)?),
            None => Ok(()),
        }
    }

    async fn copy_kind(
        &mut self,
        def: &'static ResourceDef,
        checkpoint: &mut Checkpoint,
        summary: &mut Summary,
        processed: &mut u64,
    ) -> Result<KindEnd, Fatal> {
        let resource = def.group_resource();
        let mut token = checkpoint.start_of(&resource);
        if token.is_some() {
            (self.progress)(&format!("{resource}: resuming from the checkpoint"));
        }
        let (mut pages, mut restarts) = (0u64, 0u32);
        loop {
            let remaining = self.plan.max_objects.map(|max| max.saturating_sub(*processed));
            if remaining == Some(0) {
                checkpoint.set_resume(&resource, token);
                self.save(checkpoint)?;
                return Ok(KindEnd::Stopped);
            }
            let mut page = match self.fetch(def, token.as_deref()).await {
                Ok(page) => page,
                Err(SourceError::NotServed) => {
                    summary.kind(&resource).state = KindState::NotServed;
                    (self.progress)(&format!(
                        "{resource}: not served by the source (no CRD); nothing to copy"
                    ));
                    checkpoint.complete(&resource);
                    self.save(checkpoint)?;
                    return Ok(KindEnd::Done);
                }
                Err(SourceError::Expired { fresh }) if restarts < EXPIRED_RESTARTS => {
                    restarts += 1;
                    let how = match &fresh {
                        Some(_) => "going on from a newer snapshot",
                        None => "restarting the kind (copied objects will be found unchanged)",
                    };
                    (self.progress)(&format!("{resource}: the continue token expired; {how}"));
                    token = fresh;
                    continue;
                }
                Err(e) if !e.is_transient() => {
                    (self.progress)(&format!("{resource}: FAILED: {e}"));
                    summary.kind(&resource).state = KindState::Failed(e.to_string());
                    return Ok(KindEnd::Done);
                }
                Err(source) => return Err(Fatal::Source { resource, source }),
            };
            summary.kind(&resource).state = KindState::Copied;
            pages += 1;
            let truncated = remaining.is_some_and(|r| (page.items.len() as u64) > r);
            if let Some(r) = remaining.filter(|_| truncated) {
                page.items.truncate(usize::try_from(r).unwrap_or(usize::MAX));
            }
            *processed += page.items.len() as u64;
            self.copy_page(def, page.items, summary).await?;
            let c = summary.kind(&resource).counts;
            (self.progress)(&format!(
                "{resource}: page {pages}: {} listed so far ({})",
                c.listed,
                c.describe()
            ));
            if truncated {
                // Resume with this page again: what was written is found unchanged.
                checkpoint.set_resume(&resource, token);
                self.save(checkpoint)?;
                return Ok(KindEnd::Stopped);
            }
            match page.next {
                Some(next) => {
                    checkpoint.set_resume(&resource, Some(next.clone()));
                    self.save(checkpoint)?;
                    token = Some(next);
                }
                None => {
                    checkpoint.complete(&resource);
                    self.save(checkpoint)?;
                    return Ok(KindEnd::Done);
                }
            }
        }
    }

    /// One page, retrying transient failures with exponential backoff.
    async fn fetch(&mut self, def: &'static ResourceDef, token: Option<&str>) -> Result<Page, SourceError> {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match self.source.page(def, self.plan.page_size, token).await {
                Err(e) if e.is_transient() && attempt < FETCH_ATTEMPTS => {
                    (self.progress)(&format!("{}: {e}; retrying in {delay:?}", def.group_resource()));
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn copy_page(
        &mut self,
        def: &'static ResourceDef,
        items: Vec<Value>,
        summary: &mut Summary,
    ) -> Result<(), Fatal> {
        let target = self.target;
        let now = jiff::Timestamp::now();
        let results: Vec<_> = futures::stream::iter(items)
            .map(|item| async move {
                let id = identity(&item);
                let prepared = prepare(def, &item, now);
                (id, copy_one(target, def, prepared).await)
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let resource = def.group_resource();
        for ((namespace, name), result) in results {
            let (outcome, unresolved, pruned) = result?;
            summary.unresolved_owners += unresolved as u64;
            summary.pruned += u64::from(pruned);
            let counts = &mut summary.kind(&resource).counts;
            counts.listed += 1;
            match outcome {
                Outcome::Created => counts.created += 1,
                Outcome::Updated => counts.updated += 1,
                Outcome::Unchanged => counts.unchanged += 1,
                Outcome::Skipped(reason) => {
                    counts.skipped += 1;
                    summary.skipped.push(Skip {
                        resource: resource.clone(),
                        namespace,
                        name,
                        reason,
                    });
                }
            }
        }
        Ok(())
    }
}

/// `(namespace, name)` of a source object, for reports about it.
fn identity(obj: &Value) -> (String, String) {
    let field = |f| meta::meta_str(obj, f).unwrap_or("").to_string();
    (field("namespace"), field("name"))
}

/// Copies one admitted object: returns the outcome, the unresolved owner references and
/// whether fields were pruned.
async fn copy_one(
    target: &Target,
    def: &'static ResourceDef,
    prepared: Result<Prepared, Rejection>,
) -> Result<(Outcome, usize, bool), TargetError> {
    let mut prepared = match prepared {
        Ok(p) => p,
        Err(reason) => return Ok((Outcome::Skipped(reason), 0, false)),
    };
    let unresolved = target.remap_owner_uids(&mut prepared.object).await?;
    let outcome = target.apply(def, &prepared).await?;
    Ok((outcome, unresolved, !prepared.pruned.is_empty()))
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;

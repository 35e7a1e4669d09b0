//! watch: the changes of one kind as a stream of typed events, read from the store's change
//! log (the generic apiserver's `cacher`/`watch` rules; the HTTP handler only encodes them).
//!
//! Every watcher follows the persisted change log by revision, so a resumed watch replays
//! exactly the changes after its resourceVersion, in commit order, across restarts; a
//! revision older than the retained history ends the watch with [`Error::Storage`] of
//! `Compacted` (410 Expired). Without a resourceVersion (or with `sendInitialEvents=true`) the
//! watch starts with the current objects as ADDED events, followed, when bookmarks are
//! allowed and the client asked for initial events, by a BOOKMARK marking their end. Selector
//! watches turn objects entering or leaving the selector into ADDED and DELETED. Idle watches
//! with bookmarks get one every minute and one at their timeout. On shutdown a watch sends the
//! changes committed before the drain began, then ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prext_api::fields::FieldSelector;
use prext_api::labels::LabelSelector;
use prext_api::status::Status;
use prext_api::ResourceDef;
use prext_store::{Change, EventType, ListItem, ListOptions, Store};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Error, Registry, Result, VersionMatch};
use crate::fanout::Fanout;

/// How often an idle watch with bookmarks allowed gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// Changes read from the log per round trip.
const BATCH: usize = 512;
/// Events buffered ahead of the consumer.
const BUFFER: usize = 16;
/// How long a watch spends sending the changes committed before a shutdown.
const DRAIN: Duration = Duration::from_secs(2);
/// The longest `timeoutSeconds` honoured (a year): longer ones are clamped to it.
const MAX_TIMEOUT_SECONDS: u64 = 365 * 24 * 3600;

/// What a watch asks for.
#[derive(Debug, Clone, Default)]
pub struct WatchRequest {
    /// `None`: across all namespaces.
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `resourceVersion`: the changes after it (`None`: from now, after the initial events).
    pub revision: Option<i64>,
    pub version_match: Option<VersionMatch>,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// `sendInitialEvents` (`None`: initial events exactly when no resourceVersion is given).
    pub send_initial_events: Option<bool>,
    /// `timeoutSeconds` (`None`: 30 to 60 minutes, at random, as kube-apiserver's default).
    pub timeout_seconds: Option<u64>,
}

/// One event of a watch. Objects are the stored bodies (JSON), stamped with their revision.
#[derive(Debug)]
pub enum WatchEvent {
    /// The object was created, or entered the selectors.
    Added(Bytes),
    Modified(Bytes),
    /// The object was deleted (its last state), or left the selectors.
    Deleted(Bytes),
    /// Every change up to `revision` was sent; `initial_events_end` marks the end of the
    /// initial events (`k8s.io/initial-events-end`).
    Bookmark {
        revision: i64,
        initial_events_end: bool,
    },
    /// The watch ends with this error.
    Error(Error),
}

/// A running watch: its events, in order, until the stream ends. Dropping it stops the watch.
pub struct Watch {
    events: mpsc::Receiver<WatchEvent>,
}

impl Watch {
    /// The next event; `None` once the watch has ended (timeout, shutdown, error sent).
    pub async fn next(&mut self) -> Option<WatchEvent> {
        self.events.recv().await
    }
}

/// Where a watch reads live changes from, and when it must stop.
#[derive(Clone)]
pub struct WatchSource {
    pub fanout: Arc<Fanout>,
    pub shutdown: CancellationToken,
}

impl Registry {
    /// Starts a watch of `def` after checking its resourceVersion (one the server has not
    /// reached is waited for, then refused with [`Error::TooLargeRevision`]).
    pub async fn watch(
        &self,
        def: &'static ResourceDef,
        request: WatchRequest,
        source: WatchSource,
    ) -> Result<Watch> {
        let current = self.store.revision().await.map_err(Error::Storage)?;
        if let Some(n) = request.revision {
            if n > current && request.version_match != Some(VersionMatch::NotOlderThan) {
                self.wait_until_fresh(n).await?;
            }
        }
        let timeout = match request.timeout_seconds {
            // Clamped: an `Instant` cannot hold `now + u64::MAX` seconds (it panics).
            Some(s) => Duration::from_secs(s.min(MAX_TIMEOUT_SECONDS)),
            None => Duration::from_secs(1800 + rand_secs(1800)),
        };
        let (tx, events) = mpsc::channel(BUFFER);
        let watcher = Watcher {
            def,
            request,
            store: self.store.clone(),
            source,
            tx,
        };
        tokio::spawn(watcher.run(timeout));
        Ok(Watch { events })
    }
}

fn rand_secs(max: u64) -> u64 {
    use rand::Rng;
    rand::rng().random_range(0..max)
}

struct Watcher {
    def: &'static ResourceDef,
    request: WatchRequest,
    store: Arc<dyn Store>,
    source: WatchSource,
    tx: mpsc::Sender<WatchEvent>,
}

/// Why a watch loop stopped early.
enum Stop {
    ConsumerGone,
    Error(Error),
}

impl From<prext_store::Error> for Stop {
    fn from(e: prext_store::Error) -> Self {
        Stop::Error(Error::Storage(e))
    }
}

impl Watcher {
    async fn run(self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        match self.stream(deadline).await {
            Ok(()) | Err(Stop::ConsumerGone) => {}
            Err(Stop::Error(e)) => {
                let _ = self.tx.send(WatchEvent::Error(e)).await;
            }
        }
    }

    async fn stream(&self, deadline: tokio::time::Instant) -> Result<(), Stop> {
        let requested = self.request.revision;
        let initial = self.request.send_initial_events.unwrap_or(requested.is_none());
        // Subscribe before reading the log, so that nothing committed meanwhile is missed.
        let mut live = self.source.fanout.subscribe();
        let mut cursor = match (initial, requested) {
            (true, _) => self.initial_events().await?,
            (false, Some(n)) => n,
            (false, None) => self.store.revision().await?,
        };
        if initial && self.request.send_initial_events == Some(true) && self.request.allow_bookmarks {
            self.bookmark(cursor, true).await?;
        }
        cursor = self.catch_up(cursor).await?;
        let mut next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
        loop {
            tokio::select! {
                _ = self.tx.closed() => return Err(Stop::ConsumerGone),
                _ = self.source.shutdown.cancelled() => {
                    // Deliver what was committed before the drain began: a client that saw
                    // a write acknowledged also sees its event before the stream ends.
                    let _ = tokio::time::timeout(DRAIN, self.catch_up(cursor)).await;
                    return Ok(());
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if self.request.allow_bookmarks {
                        self.bookmark(cursor, false).await?;
                    }
                    return Ok(());
                }
                _ = tokio::time::sleep_until(next_bookmark) => {
                    if self.request.allow_bookmarks {
                        self.bookmark(cursor, false).await?;
                    }
                    next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
                }
                received = live.recv() => match received {
                    Ok(change) => {
                        if change.revision > cursor {
                            cursor = change.revision;
                            self.emit(&change).await?;
                        }
                    }
                    // Fell behind the broadcast buffer: the log has everything.
                    Err(broadcast::error::RecvError::Lagged(_)) => cursor = self.catch_up(cursor).await?,
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(Stop::Error(Status::unavailable("the server is shutting down").into()));
                    }
                },
            }
        }
    }

    /// Sends every logged change after `cursor`; returns the new cursor.
    async fn catch_up(&self, mut cursor: i64) -> Result<i64, Stop> {
        loop {
            let changes = self.store.changes(cursor, BATCH).await?;
            let n = changes.len();
            for c in changes {
                cursor = c.revision;
                self.emit(&c).await?;
            }
            if n < BATCH {
                return Ok(cursor);
            }
        }
    }

    /// Sends the current state as ADDED events; returns the snapshot revision.
    async fn initial_events(&self) -> Result<i64, Stop> {
        let mut stream = self
            .store
            .list(ListOptions {
                resource: self.def.group_resource(),
                namespace: self.request.namespace.clone(),
                labels: self.request.labels.clone(),
                fields: self.request.fields.clone(),
                limit: None,
                after: None,
            })
            .await?;
        if let Some(n) = self.request.revision {
            if n > stream.revision {
                return Err(Stop::Error(Error::TooLargeRevision { requested: n }));
            }
        }
        while let Some(item) = stream.items.recv().await {
            if let ListItem::Object(o) = item? {
                self.send(WatchEvent::Added(o.body)).await?;
            }
        }
        Ok(stream.revision)
    }

    fn selected(&self, c: &Change, labels: &BTreeMap<String, String>) -> bool {
        self.request.labels.matches(labels) && self.request.fields.matches(&c.key.namespace, &c.key.name)
    }

    /// Sends a change as the event the watcher sees: selector transitions become ADDED or
    /// DELETED; changes of other kinds, namespaces or unselected objects are skipped.
    async fn emit(&self, c: &Change) -> Result<(), Stop> {
        if c.key.resource != self.def.group_resource() {
            return Ok(());
        }
        if let Some(ns) = &self.request.namespace {
            if *ns != c.key.namespace {
                return Ok(());
            }
        }
        let now = self.selected(c, &c.labels);
        let before = c.prev_labels.as_ref().is_some_and(|p| self.selected(c, p));
        let body = c.body.clone();
        let event = match (c.event, before, now) {
            (EventType::Added, _, true) => WatchEvent::Added(body),
            (EventType::Modified, true, true) => WatchEvent::Modified(body),
            (EventType::Modified, false, true) => WatchEvent::Added(body),
            (EventType::Modified, true, false) => WatchEvent::Deleted(body),
            (EventType::Deleted, _, true) => WatchEvent::Deleted(body),
            _ => return Ok(()),
        };
        self.send(event).await
    }

    async fn bookmark(&self, revision: i64, initial_events_end: bool) -> Result<(), Stop> {
        self.send(WatchEvent::Bookmark {
            revision,
            initial_events_end,
        })
        .await
    }

    async fn send(&self, event: WatchEvent) -> Result<(), Stop> {
        self.tx.send(event).await.map_err(|_| Stop::ConsumerGone)
    }
}

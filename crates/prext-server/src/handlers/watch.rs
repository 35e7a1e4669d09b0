//! watch: a newline-delimited JSON event stream read from the store's change log.
//!
//! Every watcher follows the persisted change log by revision, so a resumed watch replays
//! exactly the changes after its resourceVersion, in commit order, across restarts; a
//! revision older than the retained history gets one ERROR event with 410 Expired.
//! Selector watches turn objects entering or leaving the selector into ADDED and DELETED.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, StatusCode};
use prext_api::status::Status;
use prext_api::ResourceDef;
use prext_store::{Change, EventType, ListItem, ListOptions};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::error::{ApiError, ApiResult};
use crate::negotiate::{negotiate, Output, Target};
use crate::render;
use crate::request::{Ctx, ListParams, VersionMatch};

/// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// Changes read from the log per round trip.
const BATCH: usize = 512;
/// Encoded events buffered per watcher before it waits for the client.
const BUFFER: usize = 64;
/// How long a watcher waits for a client that does not read before ending its watch.
const STALL: Duration = Duration::from_secs(30);

/// How long a watch spends sending the changes committed before a shutdown.
const DRAIN: Duration = Duration::from_secs(2);

/// The longest `timeoutSeconds` honoured (a year): longer ones are clamped to it.
const MAX_TIMEOUT_SECONDS: u64 = 365 * 24 * 3600;

/// Serves a watch request.
pub async fn watch(ctx: Ctx, params: ListParams) -> ApiResult<Response> {
    let def = ctx.path.def;
    let output = negotiate(
        ctx.header(header::ACCEPT),
        Target::Watch,
        ctx.query.get("includeObject"),
    )?;
    let store = ctx.state.store.clone();
    let requested = params.revision()?;
    let initial = match params.send_initial_events {
        Some(v) => v,
        None => requested.is_none(),
    };
    let timeout = match params.timeout_seconds {
        // Clamped: an `Instant` cannot hold `now + u64::MAX` seconds (it panics).
        Some(s) => Duration::from_secs(s.min(MAX_TIMEOUT_SECONDS)),
        None => Duration::from_secs(1800 + rand_secs(1800)),
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(BUFFER);
    let w = Watcher {
        def,
        output,
        namespace: ctx.path.namespace.clone(),
        params,
        store,
        shutdown: ctx.state.shutdown.clone(),
        fanout: ctx.state.fanout.clone(),
        tx,
    };
    let current = w.store.revision().await.map_err(ApiError::storage)?;
    if let Some(n) = requested {
        if n > current && w.params.version_match != Some(VersionMatch::NotOlderThan) {
            ctx.state.registry.wait_until_fresh(n).await?;
        }
    }
    let guard = ctx.state.metrics.watch_started(def.group, def.plural);
    tokio::spawn(async move {
        w.run(requested, initial, timeout).await;
        drop(guard);
    });
    let mut resp = render::json_bytes(
        StatusCode::OK,
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

fn rand_secs(max: u64) -> u64 {
    use rand::Rng;
    rand::rng().random_range(0..max)
}

struct Watcher {
    def: &'static ResourceDef,
    output: Output,
    namespace: Option<String>,
    params: ListParams,
    store: std::sync::Arc<dyn prext_store::Store>,
    shutdown: tokio_util::sync::CancellationToken,
    fanout: std::sync::Arc<crate::fanout::Fanout>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

/// Why a watch loop stopped early.
enum Stop {
    ClientGone,
    Error(Box<Status>),
}

impl Watcher {
    async fn run(self, requested: Option<i64>, initial: bool, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        match self.stream(requested, initial, deadline).await {
            Ok(()) | Err(Stop::ClientGone) => {}
            Err(Stop::Error(status)) => {
                let _ = self
                    .send_event("ERROR", serde_json::to_vec(&*status).unwrap_or_default())
                    .await;
            }
        }
    }

    async fn stream(
        &self,
        requested: Option<i64>,
        initial: bool,
        deadline: tokio::time::Instant,
    ) -> Result<(), Stop> {
        // Subscribe before reading the log, so that nothing committed meanwhile is missed.
        let mut live = self.fanout.subscribe();
        let mut cursor = match (initial, requested) {
            (true, _) => self.initial_events().await?,
            (false, Some(n)) => n,
            (false, None) => self.store.revision().await.map_err(storage)?,
        };
        if initial && self.params.send_initial_events == Some(true) && self.params.allow_bookmarks {
            self.bookmark(cursor, true).await?;
        }
        cursor = self.catch_up(cursor).await?;
        let mut next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
        loop {
            tokio::select! {
                _ = self.tx.closed() => return Err(Stop::ClientGone),
                _ = self.shutdown.cancelled() => {
                    // Deliver what was committed before the drain began: a client that saw
                    // a write acknowledged also sees its event before the stream ends.
                    let _ = tokio::time::timeout(DRAIN, self.catch_up(cursor)).await;
                    return Ok(());
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if self.params.allow_bookmarks {
                        self.bookmark(cursor, false).await?;
                    }
                    return Ok(());
                }
                _ = tokio::time::sleep_until(next_bookmark) => {
                    if self.params.allow_bookmarks {
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
                        return Err(Stop::Error(Box::new(Status::unavailable("the server is shutting down"))));
                    }
                },
            }
        }
    }

    /// Sends every logged change after `cursor`; returns the new cursor.
    async fn catch_up(&self, mut cursor: i64) -> Result<i64, Stop> {
        loop {
            let changes = self.store.changes(cursor, BATCH).await.map_err(storage)?;
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
                namespace: self.namespace.clone(),
                labels: self.params.labels.clone(),
                fields: self.params.fields.clone(),
                limit: None,
                after: None,
            })
            .await
            .map_err(storage)?;
        if let Some(n) = self.params.revision().ok().flatten() {
            if n > stream.revision {
                return Err(Stop::Error(Box::new(crate::error::too_large_revision(n))));
            }
        }
        while let Some(item) = stream.items.recv().await {
            if let ListItem::Object(o) = item.map_err(storage)? {
                self.send_object("ADDED", &o.body).await?;
            }
        }
        Ok(stream.revision)
    }

    fn selected(&self, c: &Change, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.params.labels.matches(labels) && self.params.fields.matches(&c.key.namespace, &c.key.name)
    }

    async fn emit(&self, c: &Change) -> Result<(), Stop> {
        if c.key.resource != self.def.group_resource() {
            return Ok(());
        }
        if let Some(ns) = &self.namespace {
            if *ns != c.key.namespace {
                return Ok(());
            }
        }
        let now = self.selected(c, &c.labels);
        let before = c.prev_labels.as_ref().is_some_and(|p| self.selected(c, p));
        let kind = match (c.event, before, now) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, false) => "DELETED",
            (EventType::Deleted, _, true) => "DELETED",
            _ => return Ok(()),
        };
        self.send_object(kind, &c.body).await
    }

    async fn send_object(&self, kind: &str, body: &Bytes) -> Result<(), Stop> {
        let rendered =
            render::event_object(self.def, self.output, body).map_err(|s| Stop::Error(Box::new(s)))?;
        self.send_event(kind, rendered).await
    }

    async fn bookmark(&self, revision: i64, initial_end: bool) -> Result<(), Stop> {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (api_version, kind) = match self.output {
            Output::Json => (self.def.api_version(), self.def.kind.to_string()),
            Output::Metadata { .. } => (
                self.output.meta_api_version().to_string(),
                "PartialObjectMetadata".into(),
            ),
            Output::Table { .. } => (self.output.meta_api_version().to_string(), "Table".into()),
        };
        let obj = if let Output::Table { .. } = self.output {
            json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "columnDefinitions": [], "rows": []})
        } else {
            json!({"kind": kind, "apiVersion": api_version, "metadata": metadata})
        };
        self.send_event("BOOKMARK", serde_json::to_vec(&obj).unwrap_or_default())
            .await
    }

    async fn send_event(&self, kind: &str, object: impl AsRef<[u8]>) -> Result<(), Stop> {
        let object = object.as_ref();
        let mut buf = BytesMut::with_capacity(object.len() + 32);
        buf.put_slice(b"{\"type\":\"");
        buf.put_slice(kind.as_bytes());
        buf.put_slice(b"\",\"object\":");
        buf.put_slice(object);
        buf.put_slice(b"}\n");
        // A client that reads nothing for this long is cut off; it resumes from its last
        // resourceVersion like after any disconnect.
        match tokio::time::timeout(STALL, self.tx.send(Ok(buf.freeze()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::ClientGone),
            Err(_) => {
                tracing::info!(
                    resource = self.def.plural,
                    "ending a watch whose client stopped reading"
                );
                Err(Stop::ClientGone)
            }
        }
    }
}

fn storage(e: prext_store::Error) -> Stop {
    Stop::Error(ApiError::storage(e).0)
}

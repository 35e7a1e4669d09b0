//! watch: the registry's typed watch ([`crate::registry::watch`]) encoded as a
//! newline-delimited JSON event stream (`{"type":…,"object":…}`), each object rendered in the
//! negotiated form (JSON, PartialObjectMetadata or Table rows).

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, StatusCode};
use prext_api::status::Status;
use prext_api::ResourceDef;
use serde_json::json;
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::negotiate::{negotiate, Output, Target};
use crate::registry::watch::{Watch, WatchEvent, WatchRequest, WatchSource};
use crate::render;
use crate::request::{Ctx, ListParams};

/// Encoded events buffered per watcher before it waits for the client.
const BUFFER: usize = 64;
/// How long a watcher waits for a client that does not read before ending its watch.
const STALL: Duration = Duration::from_secs(30);

/// Serves a watch request.
pub async fn watch(ctx: Ctx, params: ListParams) -> ApiResult<Response> {
    let def = ctx.path.def;
    let output = negotiate(
        ctx.header(header::ACCEPT),
        Target::Watch,
        ctx.query.get("includeObject"),
    )?;
    let request = WatchRequest {
        namespace: ctx.path.namespace.clone(),
        labels: params.labels.clone(),
        fields: params.fields.clone(),
        revision: params.revision()?,
        version_match: params.version_match,
        allow_bookmarks: params.allow_bookmarks,
        send_initial_events: params.send_initial_events,
        timeout_seconds: params.timeout_seconds,
    };
    let source = WatchSource {
        fanout: ctx.state.fanout.clone(),
        shutdown: ctx.state.shutdown.clone(),
    };
    let events = ctx.state.registry.watch(def, request, source).await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(BUFFER);
    let guard = ctx.state.metrics.watch_started(def.group, def.plural);
    tokio::spawn(async move {
        Encoder { def, output, tx }.run(events).await;
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

/// Writes a watch's events to the response body.
struct Encoder {
    def: &'static ResourceDef,
    output: Output,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

/// The client is gone (or stopped reading): the watch ends.
struct ClientGone;

impl Encoder {
    /// Encodes events until the watch ends or the client goes; dropping `events` then stops
    /// the registry's watch.
    async fn run(self, mut events: Watch) {
        loop {
            let event = tokio::select! {
                _ = self.tx.closed() => return,
                event = events.next() => event,
            };
            let Some(event) = event else { return };
            if self.encode(event).await.is_err() {
                return;
            }
        }
    }

    async fn encode(&self, event: WatchEvent) -> Result<(), ClientGone> {
        match event {
            WatchEvent::Added(body) => self.send_object("ADDED", &body).await,
            WatchEvent::Modified(body) => self.send_object("MODIFIED", &body).await,
            WatchEvent::Deleted(body) => self.send_object("DELETED", &body).await,
            WatchEvent::Bookmark {
                revision,
                initial_events_end,
            } => self.bookmark(revision, initial_events_end).await,
            WatchEvent::Error(e) => {
                self.send_error(*ApiError::from(e).0).await?;
                Err(ClientGone)
            }
        }
    }

    async fn send_error(&self, status: Status) -> Result<(), ClientGone> {
        self.send_event("ERROR", serde_json::to_vec(&status).unwrap_or_default())
            .await
    }

    /// An object the negotiated form cannot render ends the watch with an ERROR event.
    async fn send_object(&self, kind: &str, body: &Bytes) -> Result<(), ClientGone> {
        match render::event_object(self.def, self.output, body) {
            Ok(rendered) => self.send_event(kind, rendered).await,
            Err(status) => {
                self.send_error(status).await?;
                Err(ClientGone)
            }
        }
    }

    async fn bookmark(&self, revision: i64, initial_end: bool) -> Result<(), ClientGone> {
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

    async fn send_event(&self, kind: &str, object: impl AsRef<[u8]>) -> Result<(), ClientGone> {
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
            Ok(Err(_)) => Err(ClientGone),
            Err(_) => {
                tracing::info!(
                    resource = self.def.plural,
                    "ending a watch whose client stopped reading"
                );
                Err(ClientGone)
            }
        }
    }
}

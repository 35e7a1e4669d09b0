//! Response bodies: single objects, streamed lists, Tables and PartialObjectMetadata.
//!
//! Lists are streamed: stored bodies are copied into the response as they come out of the
//! database, never re-encoded for plain JSON, and batched into chunks of about 64 KiB. List
//! `metadata` comes after `items` so that the continue token (known only at the end) needs no
//! buffering; JSON objects are unordered, and every Kubernetes client accepts it.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderValue, StatusCode};
use prext_api::continue_token::ContinueToken;
use prext_api::status::Status;
use prext_api::{table, ResourceDef};
use prext_store::{ListItem, ListStream};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::negotiate::{IncludeObject, Output};

const CHUNK: usize = 64 * 1024;

/// A JSON response with a status code.
pub fn json_bytes(code: StatusCode, body: impl Into<Body>) -> Response {
    let mut resp = (code, body.into()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The `metadata` of a stored body, borrowed.
fn raw_metadata(body: &[u8]) -> Result<Box<RawValue>, Status> {
    #[derive(serde::Deserialize)]
    struct Meta {
        metadata: Box<RawValue>,
    }
    serde_json::from_slice::<Meta>(body)
        .map(|m| m.metadata)
        .map_err(|e| Status::internal(format!("stored object is corrupt: {e}")))
}

fn partial_metadata(api_version: &str, body: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
    let meta = raw_metadata(body)?;
    out.extend_from_slice(b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"");
    out.extend_from_slice(api_version.as_bytes());
    out.extend_from_slice(b"\",\"metadata\":");
    out.extend_from_slice(meta.get().as_bytes());
    out.push(b'}');
    Ok(())
}

fn table_row(
    def: &'static ResourceDef,
    output: Output,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<Value, Status> {
    let obj: Value = serde_json::from_slice(body)
        .map_err(|e| Status::internal(format!("stored object is corrupt: {e}")))?;
    let cells = table::cells(def, &obj, now);
    let mut row = json!({ "cells": cells });
    if let Output::Table { include, .. } = output {
        match include {
            IncludeObject::None => {}
            IncludeObject::Object => row["object"] = obj,
            IncludeObject::Metadata => {
                row["object"] = json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": output.meta_api_version(),
                    "metadata": obj.get("metadata").cloned().unwrap_or(Value::Null),
                });
            }
        }
    }
    Ok(row)
}

/// Renders one stored object in the negotiated representation.
pub fn object(
    def: &'static ResourceDef,
    output: Output,
    body: Bytes,
    code: StatusCode,
) -> Result<Response, Status> {
    match output {
        Output::Json => Ok(json_bytes(code, body)),
        Output::Metadata { .. } => {
            let mut out = Vec::with_capacity(1024);
            partial_metadata(output.meta_api_version(), &body, &mut out)?;
            Ok(json_bytes(code, out))
        }
        Output::Table { .. } => {
            let row = table_row(def, output, &body, jiff::Timestamp::now())?;
            let resource_version = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["metadata"]["resourceVersion"].as_str().map(str::to_string))
                .unwrap_or_default();
            let t = json!({
                "kind": "Table",
                "apiVersion": output.meta_api_version(),
                "metadata": {"resourceVersion": resource_version},
                "columnDefinitions": table::column_definitions(def),
                "rows": [row],
            });
            Ok(json_bytes(code, serde_json::to_vec(&t).unwrap_or_default()))
        }
    }
}

/// The `object` of a watch event in the negotiated representation.
pub fn event_object(def: &'static ResourceDef, output: Output, body: &Bytes) -> Result<Bytes, Status> {
    match output {
        // The stored bytes themselves: shared by every watcher, never copied.
        Output::Json => Ok(body.clone()),
        Output::Metadata { .. } => {
            let mut out = Vec::with_capacity(1024);
            partial_metadata(output.meta_api_version(), body, &mut out)?;
            Ok(out.into())
        }
        Output::Table { .. } => {
            let row = table_row(def, output, body, jiff::Timestamp::now())?;
            let t = json!({
                "kind": "Table",
                "apiVersion": output.meta_api_version(),
                "metadata": {},
                "columnDefinitions": table::column_definitions(def),
                "rows": [row],
            });
            Ok(serde_json::to_vec(&t).unwrap_or_default().into())
        }
    }
}

/// Where the continue token of the next page starts.
pub struct Paging {
    /// The revision every page of this list reports (the first page's snapshot).
    pub revision: i64,
    /// Whether a limit was given (only then is a continue token produced).
    pub limited: bool,
}

/// Streams a list in the negotiated representation.
pub fn list(def: &'static ResourceDef, output: Output, stream: ListStream, paging: Paging) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(produce_list(def, output, stream, paging, tx));
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    json_bytes(StatusCode::OK, body)
}

fn header_bytes(def: &'static ResourceDef, output: Output) -> Vec<u8> {
    match output {
        Output::Json => format!(
            "{{\"apiVersion\":\"{}\",\"kind\":\"{}\",\"items\":[",
            def.api_version(),
            def.list_kind
        )
        .into_bytes(),
        Output::Metadata { .. } => format!(
            "{{\"apiVersion\":\"{}\",\"kind\":\"PartialObjectMetadataList\",\"items\":[",
            output.meta_api_version()
        )
        .into_bytes(),
        Output::Table { .. } => format!(
            "{{\"apiVersion\":\"{}\",\"kind\":\"Table\",\"columnDefinitions\":{},\"rows\":[",
            output.meta_api_version(),
            table::column_definitions(def)
        )
        .into_bytes(),
    }
}

async fn produce_list(
    def: &'static ResourceDef,
    output: Output,
    mut stream: ListStream,
    paging: Paging,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let now = jiff::Timestamp::now();
    let mut buf = BytesMut::with_capacity(CHUNK * 2);
    buf.put_slice(&header_bytes(def, output));
    let mut first = true;
    let mut last_key: Option<(String, String)> = None;
    let mut more = false;
    let mut item_buf = Vec::new();
    while let Some(item) = stream.items.recv().await {
        let fail = |e: String| std::io::Error::other(e);
        match item {
            Ok(ListItem::Object(obj)) => {
                if !first {
                    buf.put_u8(b',');
                }
                first = false;
                match output {
                    Output::Json => buf.put_slice(&obj.body),
                    Output::Metadata { .. } => {
                        item_buf.clear();
                        if let Err(e) = partial_metadata(output.meta_api_version(), &obj.body, &mut item_buf)
                        {
                            let _ = tx.send(Err(fail(e.message))).await;
                            return;
                        }
                        buf.put_slice(&item_buf);
                    }
                    Output::Table { .. } => match table_row(def, output, &obj.body, now) {
                        Ok(row) => buf.put_slice(&serde_json::to_vec(&row).unwrap_or_default()),
                        Err(e) => {
                            let _ = tx.send(Err(fail(e.message))).await;
                            return;
                        }
                    },
                }
                last_key = Some((obj.key.namespace, obj.key.name));
            }
            Ok(ListItem::More) => more = true,
            Err(e) => {
                tracing::warn!(error = %e, "list aborted by a storage error");
                let _ = tx.send(Err(fail(e.to_string()))).await;
                return;
            }
        }
        if buf.len() >= CHUNK && tx.send(Ok(buf.split().freeze())).await.is_err() {
            return; // client went away
        }
    }
    let mut meta = serde_json::Map::new();
    meta.insert(
        "resourceVersion".into(),
        Value::String(paging.revision.to_string()),
    );
    if paging.limited && more {
        if let Some((namespace, name)) = last_key {
            let token = ContinueToken {
                revision: paging.revision,
                namespace,
                name,
            };
            meta.insert("continue".into(), Value::String(token.encode()));
        }
    }
    buf.put_slice(b"],\"metadata\":");
    buf.put_slice(&serde_json::to_vec(&meta).unwrap_or_default());
    buf.put_u8(b'}');
    let _ = tx.send(Ok(buf.freeze())).await;
}

/// The list a deletecollection answers: the deleted objects as they were listed, with the
/// list's resourceVersion.
pub fn deleted_list(def: &'static ResourceDef, revision: i64, items: &[Bytes]) -> Bytes {
    let mut buf = BytesMut::with_capacity(items.iter().map(Bytes::len).sum::<usize>() + 256);
    buf.put_slice(&header_bytes(def, Output::Json));
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(item);
    }
    buf.put_slice(b"],\"metadata\":{\"resourceVersion\":\"");
    buf.put_slice(revision.to_string().as_bytes());
    buf.put_slice(b"\"}}");
    buf.freeze()
}

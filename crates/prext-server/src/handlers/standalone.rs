//! What kube-apiserver would answer when prext is served directly (standalone mode, no
//! aggregation layer in front): `/version`, the namespaces that hold reports, empty event
//! lists, and the self-reviews of `kubectl auth can-i` and `kubectl auth whoami` for the client
//! certificate's identity, with the discovery of their groups (`/apis/{group}[/v1]`; `/apis`
//! and `/api/v1` keep their earlier documents, which clients and tests rely on). Behind
//! kube-apiserver these paths are answered by kube-apiserver itself, so in delegated mode
//! prext answers the extras 404.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use http_body_util::BodyExt as _;
use prext_api::status::Status;
use prext_api::{standalone, RESOURCES};
use prext_store::{ListItem, ListOptions};
use serde_json::Value;

use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{negotiate, Output, Target};
use crate::state::AppState;

/// Standalone mode: no cluster to delegate to (the namespace lifecycle admission exists
/// exactly when prext is delegated).
fn is_standalone(state: &AppState) -> bool {
    state.namespaces.is_none()
}

fn json(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

fn not_found(path: &str) -> Response {
    ApiError::from(Status::path_not_found(path)).into_response()
}

fn accept(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
}

/// `GET /version`.
pub async fn version(headers: HeaderMap) -> Response {
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    json(StatusCode::OK, &standalone::version_info(agent))
}

/// The group of `/apis/{group}[/v1]`.
fn group_of(uri: &Uri) -> &str {
    uri.path()
        .trim_start_matches("/apis/")
        .split('/')
        .next()
        .unwrap_or_default()
}

/// `GET /apis/{group}` of a standalone group.
pub async fn group(State(state): State<AppState>, uri: Uri) -> Response {
    match standalone::api_group_doc(group_of(&uri)).filter(|_| is_standalone(&state)) {
        Some(doc) => json(StatusCode::OK, &doc),
        None => not_found(uri.path()),
    }
}

/// `GET /apis/{group}/v1` of a standalone group.
pub async fn group_version(State(state): State<AppState>, uri: Uri) -> Response {
    match standalone::api_resource_list(group_of(&uri), "v1").filter(|_| is_standalone(&state)) {
        Some(doc) => json(StatusCode::OK, &doc),
        None => not_found(uri.path()),
    }
}

/// The namespaces holding at least one report, in order: one keyset step per namespace and
/// namespaced kind (the first object after the last name a namespace can have).
async fn report_namespaces(state: &AppState) -> ApiResult<(Vec<String>, i64)> {
    let mut all = std::collections::BTreeSet::new();
    let mut revision = 0;
    for def in RESOURCES.iter().filter(|d| d.namespaced) {
        let mut after: Option<(String, String)> = None;
        loop {
            let mut stream = state
                .store
                .list(ListOptions {
                    resource: def.group_resource(),
                    namespace: None,
                    labels: Default::default(),
                    fields: Default::default(),
                    limit: Some(1),
                    after: after.clone(),
                })
                .await
                .map_err(ApiError::storage)?;
            revision = revision.max(stream.revision);
            let mut next = None;
            while let Some(item) = stream.items.recv().await {
                if let ListItem::Object(o) = item.map_err(ApiError::storage)? {
                    next = Some(o.key);
                }
            }
            let Some(key) = next else { break };
            // Past every name of this namespace; should a collation sort differently, the
            // object's own key still moves the scan forward.
            let skip = (key.namespace.clone(), "\u{10FFFF}".to_string());
            after = Some(if after.as_ref().is_some_and(|a| a.0 == key.namespace) {
                (key.namespace.clone(), key.name)
            } else {
                skip
            });
            all.insert(key.namespace);
        }
    }
    Ok((all.into_iter().collect(), revision))
}

/// `GET /api/v1/namespaces`: the namespaces that hold reports (standalone prext has no other
/// namespaces to show), as a list or kubectl's Table.
pub async fn namespaces(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !is_standalone(&state) {
        return not_found("/api/v1/namespaces");
    }
    let result: ApiResult<Response> = async {
        let output = negotiate(accept(&headers), Target::Collection, None)?;
        let (names, revision) = report_namespaces(&state).await?;
        Ok(match output {
            Output::Table { .. } => json(
                StatusCode::OK,
                &standalone::namespace_table(&names, &revision.to_string(), output.meta_api_version()),
            ),
            _ => json(StatusCode::OK, &standalone::namespace_list(&names, revision)),
        })
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Events: prext records none, so every events list is empty (`kubectl describe` asks for
/// the described object's events in `v1`; `kubectl events` in `v1` or `events.k8s.io/v1`).
async fn events(state: &AppState, api_version: &str, path: &str) -> Response {
    if !is_standalone(state) {
        return not_found(path);
    }
    match state.store.revision().await {
        Ok(revision) => json(StatusCode::OK, &standalone::event_list(api_version, revision)),
        Err(e) => ApiError::storage(e).into_response(),
    }
}

/// `GET /api/v1/events` and `/api/v1/namespaces/{ns}/events`.
pub async fn core_events(State(state): State<AppState>, req: Request) -> Response {
    events(&state, "v1", req.uri().path()).await
}

/// `GET /apis/events.k8s.io/v1/[namespaces/{ns}/]events`.
pub async fn events_v1(State(state): State<AppState>, req: Request) -> Response {
    events(&state, "events.k8s.io/v1", req.uri().path()).await
}

/// Reads a review's body: its spec is echoed when it is JSON; kubectl's typed clients send
/// protobuf, whose spec is not needed to answer (every request is allowed), so any other
/// body counts as an empty spec.
async fn review_body(req: Request) -> Result<(Option<UserInfo>, Value), Response> {
    let user = req.extensions().get::<UserInfo>().cloned();
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let body: Bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Err(ApiError::from(Status::bad_request(format!(
                "failed to read the request body: {e}"
            )))
            .into_response())
        }
    };
    let value = if !is_json || body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        prext_api::meta::decode_body(&body, prext_api::meta::BodyFormat::Json)
            .map_err(|s| ApiError::from(s).into_response())?
    };
    Ok((user, value))
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (`kubectl auth can-i`).
pub async fn access_review(State(state): State<AppState>, req: Request) -> Response {
    if !is_standalone(&state) {
        return not_found(req.uri().path());
    }
    match review_body(req).await {
        Ok((_, body)) => json(StatusCode::CREATED, &standalone::access_review(&body)),
        Err(resp) => resp,
    }
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews` (`kubectl auth can-i --list`).
pub async fn rules_review(State(state): State<AppState>, req: Request) -> Response {
    if !is_standalone(&state) {
        return not_found(req.uri().path());
    }
    match review_body(req).await {
        Ok((_, body)) => json(StatusCode::CREATED, &standalone::rules_review(&body)),
        Err(resp) => resp,
    }
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (`kubectl auth whoami`).
pub async fn subject_review(State(state): State<AppState>, req: Request) -> Response {
    if !is_standalone(&state) {
        return not_found(req.uri().path());
    }
    match review_body(req).await {
        Ok((user, _)) => {
            let user = user.unwrap_or_default();
            let caller = standalone::Caller {
                name: &user.name,
                uid: &user.uid,
                groups: &user.groups,
            };
            json(StatusCode::CREATED, &standalone::subject_review(&caller))
        }
        Err(resp) => resp,
    }
}

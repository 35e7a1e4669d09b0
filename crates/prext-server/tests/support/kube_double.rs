//! A kube-apiserver test double: an HTTPS server on 127.0.0.1 speaking the real JSON of the
//! endpoints prext calls, with scripted answers and request counters.
//!
//! * `POST /apis/authentication.k8s.io/v1/tokenreviews`: tokens registered with
//!   [`KubeDouble::add_token`] authenticate as their user; others are refused.
//! * `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: answered by the policy set with
//!   [`KubeDouble::set_policy`]; every spec received is recorded.
//! * ConfigMaps in `kube-system` and Namespaces: GET, LIST (with a `metadata.name` field
//!   selector) and WATCH (JSON lines from a `resourceVersion`), over a small versioned store
//!   changed with [`KubeDouble::put_configmap`], [`KubeDouble::put_namespace`] and
//!   [`KubeDouble::delete_namespace`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures::StreamExt as _;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::certs::Ca;

/// A SubjectAccessReview answer: `Ok((allowed, reason))`, or `Err(())` for a 500.
pub type Decision = Result<(bool, String), ()>;
type Policy = Box<dyn Fn(&Value) -> Decision + Send + Sync>;

/// Requests received, per endpoint.
#[derive(Default)]
pub struct Counters {
    /// TokenReviews.
    pub token_reviews: AtomicUsize,
    /// SubjectAccessReviews.
    pub access_reviews: AtomicUsize,
    /// GETs of a single namespace.
    pub namespace_gets: AtomicUsize,
    /// Watches opened on any kind.
    pub watches: AtomicUsize,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Kind {
    Namespace,
    ConfigMap,
}

#[derive(Clone)]
struct Event {
    rv: u64,
    kind: Kind,
    namespace: String,
    name: String,
    kind_of_event: &'static str,
    object: Value,
}

#[derive(Default)]
struct Objects {
    rv: u64,
    items: BTreeMap<(Kind, String, String), Value>,
    history: Vec<Event>,
}

struct Inner {
    counters: Counters,
    tokens: Mutex<HashMap<String, Value>>,
    policy: Mutex<Policy>,
    reviews: Mutex<Vec<Value>>,
    objects: Mutex<Objects>,
    events: broadcast::Sender<Event>,
    shutdown: CancellationToken,
}

/// A running double; stops when dropped.
pub struct KubeDouble {
    /// Its address.
    pub addr: SocketAddr,
    /// The CA of its serving certificate (PEM).
    pub ca_pem: String,
    inner: Arc<Inner>,
    _dir: tempfile::TempDir,
}

impl Drop for KubeDouble {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl KubeDouble {
    /// Starts a double that denies every review and knows no token.
    pub async fn start() -> Self {
        let ca = Ca::new("kube-double-ca");
        let serving = ca.server("kube-double");
        let config = prext_server::tls::server_config(&serving.cert_pem, &serving.key_pem, &ca.pem)
            .expect("double TLS config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            counters: Counters::default(),
            tokens: Mutex::new(HashMap::new()),
            policy: Mutex::new(Box::new(|_| Ok((false, String::new())))),
            reviews: Mutex::new(Vec::new()),
            objects: Mutex::new(Objects::default()),
            events,
            shutdown: CancellationToken::new(),
        });
        let app = Router::new()
            .route("/apis/authentication.k8s.io/v1/tokenreviews", post(token_review))
            .route(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                post(access_review),
            )
            .route("/api/v1/namespaces", get(list_namespaces))
            .route("/api/v1/namespaces/{name}", get(get_namespace))
            .route("/api/v1/namespaces/{ns}/configmaps", get(list_configmaps))
            .route("/api/v1/namespaces/{ns}/configmaps/{name}", get(get_configmap))
            .with_state(inner.clone());
        tokio::spawn(prext_server::tls::serve(
            listener,
            config,
            app,
            inner.shutdown.clone(),
        ));
        Self {
            addr,
            ca_pem: ca.pem,
            inner,
            _dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The request counters.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Makes `token` authenticate as `username` with `groups`.
    pub fn add_token(&self, token: &str, username: &str, groups: &[&str]) {
        let user = json!({"username": username, "uid": format!("uid-{username}"), "groups": groups});
        lock(&self.inner.tokens).insert(token.to_owned(), user);
    }

    /// Answers SubjectAccessReviews with `policy(spec)`.
    pub fn set_policy(&self, policy: impl Fn(&Value) -> Decision + Send + Sync + 'static) {
        *lock(&self.inner.policy) = Box::new(policy);
    }

    /// Every SubjectAccessReview spec received so far.
    pub fn reviews(&self) -> Vec<Value> {
        lock(&self.inner.reviews).clone()
    }

    /// Creates or replaces `kube-system/<name>` with `data`.
    pub fn put_configmap(&self, name: &str, data: &BTreeMap<String, String>) {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": data});
        self.inner.upsert(Kind::ConfigMap, "kube-system", name, object);
    }

    /// Creates or replaces namespace `name` in `phase` (`Active`, `Terminating`).
    pub fn put_namespace(&self, name: &str, phase: &str) {
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "spec": {}, "status": {"phase": phase}});
        self.inner.upsert(Kind::Namespace, "", name, object);
    }

    /// Deletes namespace `name`.
    pub fn delete_namespace(&self, name: &str) {
        self.inner.delete(Kind::Namespace, "", name);
    }

    /// A kubeconfig for this double, written to a file in `dir`.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: https://{}\n    certificate-authority-data: {ca}\nusers:\n- name: prext\n  user:\n    token: prext-service-account\ncontexts:\n- name: double\n  context:\n    cluster: double\n    user: prext\ncurrent-context: double\n",
            self.addr
        );
        let path = dir.join("double.kubeconfig");
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }
}

impl Inner {
    fn upsert(&self, kind: Kind, namespace: &str, name: &str, mut object: Value) {
        let mut objects = lock(&self.objects);
        objects.rv += 1;
        let rv = objects.rv;
        let mut meta = json!({"name": name, "resourceVersion": rv.to_string(), "uid": format!("uid-{name}")});
        if !namespace.is_empty() {
            meta["namespace"] = json!(namespace);
        }
        object["metadata"] = meta;
        let key = (kind, namespace.to_owned(), name.to_owned());
        let kind_of_event = if objects.items.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        objects.items.insert(key, object.clone());
        self.record(&mut objects, kind, namespace, name, kind_of_event, object);
    }

    fn delete(&self, kind: Kind, namespace: &str, name: &str) {
        let mut objects = lock(&self.objects);
        let key = (kind, namespace.to_owned(), name.to_owned());
        if let Some(mut object) = objects.items.remove(&key) {
            objects.rv += 1;
            object["metadata"]["resourceVersion"] = json!(objects.rv.to_string());
            self.record(&mut objects, kind, namespace, name, "DELETED", object);
        }
    }

    fn record(
        &self,
        objects: &mut Objects,
        kind: Kind,
        namespace: &str,
        name: &str,
        kind_of_event: &'static str,
        object: Value,
    ) {
        let event = Event {
            rv: objects.rv,
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            kind_of_event,
            object,
        };
        objects.history.push(event.clone());
        let _ = self.events.send(event);
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).expect("code"), Json(body)).into_response()
}

async fn token_review(State(inner): State<Arc<Inner>>, Json(review): Json<Value>) -> Response {
    inner.counters.token_reviews.fetch_add(1, Ordering::SeqCst);
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let user = lock(&inner.tokens).get(token).cloned();
    let status = match user {
        Some(user) => json!({"authenticated": true, "user": user}),
        None => json!({"authenticated": false, "error": "token not recognized"}),
    };
    Json(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {}, "spec": review["spec"], "status": status})).into_response()
}

async fn access_review(State(inner): State<Arc<Inner>>, Json(review): Json<Value>) -> Response {
    inner.counters.access_reviews.fetch_add(1, Ordering::SeqCst);
    let spec = review["spec"].clone();
    lock(&inner.reviews).push(spec.clone());
    let decision = (lock(&inner.policy))(&spec);
    match decision {
        Ok((allowed, reason)) => Json(json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "metadata": {},
            "spec": spec,
            "status": {"allowed": allowed, "reason": reason},
        }))
        .into_response(),
        Err(()) => status(500, "InternalError", "the authorizer is down"),
    }
}

async fn get_namespace(State(inner): State<Arc<Inner>>, Path(name): Path<String>) -> Response {
    inner.counters.namespace_gets.fetch_add(1, Ordering::SeqCst);
    get_object(&inner, Kind::Namespace, "", &name, "namespaces")
}

async fn get_configmap(
    State(inner): State<Arc<Inner>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    get_object(&inner, Kind::ConfigMap, &ns, &name, "configmaps")
}

fn get_object(inner: &Inner, kind: Kind, namespace: &str, name: &str, resource: &str) -> Response {
    let found = lock(&inner.objects)
        .items
        .get(&(kind, namespace.to_owned(), name.to_owned()))
        .cloned();
    match found {
        Some(object) => Json(object).into_response(),
        None => status(404, "NotFound", &format!("{resource} \"{name}\" not found")),
    }
}

async fn list_namespaces(
    State(inner): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    collection(inner, Kind::Namespace, String::new(), q, "NamespaceList")
}

async fn list_configmaps(
    State(inner): State<Arc<Inner>>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    collection(inner, Kind::ConfigMap, ns, q, "ConfigMapList")
}

/// LIST, or WATCH when `?watch` is truthy.
fn collection(
    inner: Arc<Inner>,
    kind: Kind,
    namespace: String,
    q: HashMap<String, String>,
    list_kind: &str,
) -> Response {
    let name = q
        .get("fieldSelector")
        .and_then(|s| s.strip_prefix("metadata.name="))
        .map(str::to_owned);
    let matches = move |k: Kind, ns: &str, n: &str| {
        k == kind && (namespace.is_empty() || ns == namespace) && name.as_deref().is_none_or(|want| want == n)
    };
    let watch = q.get("watch").is_some_and(|w| w != "false" && w != "0");
    if !watch {
        let objects = lock(&inner.objects);
        let items: Vec<Value> = objects
            .items
            .iter()
            .filter(|((k, ns, n), _)| matches(*k, ns, n))
            .map(|(_, v)| v.clone())
            .collect();
        let body = json!({"apiVersion": "v1", "kind": list_kind, "metadata": {"resourceVersion": objects.rv.to_string()}, "items": items});
        return Json(body).into_response();
    }
    inner.counters.watches.fetch_add(1, Ordering::SeqCst);
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0);
    // Subscribe before reading the backlog so that nothing falls in between.
    let live = inner.events.subscribe();
    let backlog: Vec<Event> = lock(&inner.objects)
        .history
        .iter()
        .filter(|e| e.rv > from && matches(e.kind, &e.namespace, &e.name))
        .cloned()
        .collect();
    let last = backlog.last().map_or(from, |e| e.rv);
    let live_matches = matches.clone();
    let live = tokio_stream::wrappers::BroadcastStream::new(live).filter_map(move |e| {
        let keep = e
            .ok()
            .filter(|e| e.rv > last && live_matches(e.kind, &e.namespace, &e.name));
        async move { keep }
    });
    let shutdown = inner.shutdown.clone();
    let lines = futures::stream::iter(backlog)
        .chain(live)
        .map(|e| {
            let mut line =
                serde_json::to_vec(&json!({"type": e.kind_of_event, "object": e.object})).expect("json");
            line.push(b'\n');
            Ok::<_, std::io::Error>(line)
        })
        .take_until(async move { shutdown.cancelled().await });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(lines))
        .expect("watch response")
}

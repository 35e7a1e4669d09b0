//! Raw HTTP through kube-rs (`Client::send`): status codes, headers and bodies exactly as
//! the server sent them, for the protocol checks that typed clients and kubectl hide.

use http::{HeaderMap, Method, Request};
use kube::client::Body;
use serde_json::Value;

/// The Accept header kubectl sends for `get` (Table, falling back to plain JSON).
pub const ACCEPT_TABLE: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
/// The Accept header of client-go's metadata client on a list.
pub const ACCEPT_METADATA_LIST: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
/// The Accept header of client-go's metadata client on a single object.
pub const ACCEPT_METADATA: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
/// The Accept header of aggregated discovery v2.
pub const ACCEPT_DISCOVERY_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// A response, fully read.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Raw {
    /// The body as JSON (panics with the body text if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// One header as text, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts the status code, showing the body on failure; returns `self`.
    pub fn expect(self, code: u16) -> Self {
        assert_eq!(self.status, code, "unexpected status; body: {}", self.text());
        self
    }

    /// Asserts a `metav1.Status` failure with this code and reason; returns the Status.
    pub fn expect_status(self, code: u16, reason: &str) -> Value {
        assert_eq!(self.status, code, "unexpected status; body: {}", self.text());
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "Status content-type {ct:?}");
        let status = self.json();
        assert_eq!(status["kind"], "Status", "{status}");
        assert_eq!(status["apiVersion"], "v1", "{status}");
        assert_eq!(status["status"], "Failure", "{status}");
        assert_eq!(status["code"], code, "{status}");
        assert_eq!(status["reason"], reason, "{status}");
        status
    }
}

/// A request builder over a kube client.
pub struct Req<'a> {
    client: &'a kube::Client,
    builder: http::request::Builder,
    body: Vec<u8>,
}

impl<'a> Req<'a> {
    /// Starts a request; `path` includes the query string.
    pub fn new(client: &'a kube::Client, method: Method, path: &str) -> Self {
        Req {
            client,
            builder: Request::builder().method(method).uri(path),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// Sets a JSON body (and `Content-Type: application/json`).
    pub fn json(self, body: &Value) -> Self {
        self.body_with("application/json", body.to_string().into_bytes())
    }

    /// Sets a body with a content type.
    pub fn body_with(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.builder = self.builder.header("content-type", content_type);
        self.body = body;
        self
    }

    /// Sends the request and reads the whole response.
    pub async fn send(self) -> Raw {
        let req = self.builder.body(Body::from(self.body)).expect("valid request");
        let res = self.client.send(req).await.expect("send request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res
            .into_body()
            .collect_bytes()
            .await
            .expect("read response body")
            .to_vec();
        Raw {
            status,
            headers,
            body,
        }
    }
}

/// `GET path`.
pub async fn get(client: &kube::Client, path: &str) -> Raw {
    Req::new(client, Method::GET, path).send().await
}

/// `GET path` with an Accept header.
pub async fn get_as(client: &kube::Client, path: &str, accept: &str) -> Raw {
    Req::new(client, Method::GET, path)
        .header("accept", accept)
        .send()
        .await
}

/// `POST path` with a JSON body.
pub async fn post(client: &kube::Client, path: &str, body: &Value) -> Raw {
    Req::new(client, Method::POST, path).json(body).send().await
}

/// `PUT path` with a JSON body.
pub async fn put(client: &kube::Client, path: &str, body: &Value) -> Raw {
    Req::new(client, Method::PUT, path).json(body).send().await
}

/// `PATCH path` with a body of the given patch content type.
pub async fn patch(client: &kube::Client, path: &str, content_type: &str, body: &Value) -> Raw {
    Req::new(client, Method::PATCH, path)
        .body_with(content_type, body.to_string().into_bytes())
        .send()
        .await
}

/// `DELETE path`, with a DeleteOptions body when given.
pub async fn delete(client: &kube::Client, path: &str, options: Option<&Value>) -> Raw {
    let req = Req::new(client, Method::DELETE, path);
    match options {
        Some(o) => req.json(o).send().await,
        None => req.send().await,
    }
}

/// The names of the items of a list response, in order.
pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {list}"))
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Creates `report(kind, ns, name, labels)` and returns the stored object (asserts 201).
pub async fn create(
    client: &kube::Client,
    kind: super::samples::Kind,
    ns: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> Value {
    post(
        client,
        &kind.collection(Some(ns)),
        &super::samples::report(kind, ns, name, labels),
    )
    .await
    .expect(201)
    .json()
}

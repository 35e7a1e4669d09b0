//! The plugin's connection to the cluster: the user's kubeconfig and context (like kubectl),
//! raw requests, and errors shown the way kubectl shows them
//! (`Error from server (NotFound): policyreports.wgpolicyk8s.io "x" not found`).

use std::path::PathBuf;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

/// What went wrong; printed by `main`, which exits 1.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The server answered a `Status` failure (or another error body).
    #[error("Error from server ({reason}): {message}")]
    Server { reason: String, message: String },
    /// The server could not be reached, or the kubeconfig is unusable.
    #[error("Unable to connect to the server: {0}")]
    Connect(String),
    /// Bad input (a manifest, a flag value).
    #[error("error: {0}")]
    Usage(String),
    /// A flag with an invalid value: bad usage, exit code 2 (checked before connecting).
    #[error("error: {0}")]
    BadFlag(String),
    /// Standard output was closed by its reader; the command ends quietly.
    #[error("output closed")]
    Closed,
}

/// A shorthand for plugin results.
pub type PluginResult<T> = Result<T, PluginError>;

/// Turns any displayable error into a usage error.
pub fn usage(e: impl std::fmt::Display) -> PluginError {
    PluginError::Usage(e.to_string())
}

/// The kubeconfig flags every command takes, as kubectl names them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectionArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the context's, else "default").
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// A client for the current context, and its namespace.
pub struct Conn {
    client: kube::Client,
    /// The namespace commands use when not told otherwise.
    pub namespace: String,
    /// Whether `-n` named it: then a manifest naming another namespace is refused, as kubectl
    /// refuses it (`RequireNamespace` of k8s.io/cli-runtime/pkg/resource/visitor.go).
    pub namespace_explicit: bool,
}

impl Conn {
    /// Connects as kubectl would with these flags.
    pub async fn new(args: &ConnectionArgs) -> PluginResult<Conn> {
        let connect = |e: &dyn std::fmt::Display| PluginError::Connect(e.to_string());
        let kubeconfig = match &args.kubeconfig {
            Some(path) => Kubeconfig::read_from(path).map_err(|e| connect(&e))?,
            None => Kubeconfig::read().map_err(|e| connect(&e))?,
        };
        let options = KubeConfigOptions {
            context: args.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| connect(&e))?;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| connect(&e))?;
        Ok(Conn {
            client,
            namespace,
            namespace_explicit: args.namespace.is_some(),
        })
    }

    /// Sends a request and returns the body of a 2xx answer; any other answer is an error.
    pub async fn send(&self, req: ApiRequest<'_>) -> PluginResult<(StatusCode, Bytes)> {
        let resp = self.open(req).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| PluginError::Connect(e.to_string()))?
            .to_bytes();
        if status.is_success() {
            Ok((status, body))
        } else {
            Err(server_error(status, &body))
        }
    }

    /// Sends a request and returns the streaming response of a 2xx answer (watches).
    pub async fn open(&self, req: ApiRequest<'_>) -> PluginResult<http::Response<kube::client::Body>> {
        let mut builder = Request::builder().method(req.method).uri(req.path);
        if let Some(accept) = req.accept {
            builder = builder.header(header::ACCEPT, accept);
        }
        if let Some(ct) = req.content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        let request = builder
            .body(kube::client::Body::from(req.body))
            .map_err(|e| PluginError::Usage(format!("invalid request: {e}")))?;
        let resp = self
            .client
            .send(request)
            .await
            .map_err(|e| PluginError::Connect(e.to_string()))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Err(server_error(status, &body))
    }

    /// `GET path` as JSON.
    pub async fn get_json(&self, path: &str, accept: Option<&str>) -> PluginResult<Value> {
        let (_, body) = self.send(ApiRequest::get(path).accept(accept)).await?;
        serde_json::from_slice(&body)
            .map_err(|e| PluginError::Connect(format!("invalid JSON from the server: {e}")))
    }
}

/// One request.
pub struct ApiRequest<'a> {
    pub method: Method,
    pub path: &'a str,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: Vec<u8>,
}

impl<'a> ApiRequest<'a> {
    /// `GET path`.
    pub fn get(path: &'a str) -> Self {
        ApiRequest {
            method: Method::GET,
            path,
            accept: None,
            content_type: None,
            body: Vec::new(),
        }
    }

    /// `method path` with a body.
    pub fn with_body(method: Method, path: &'a str, content_type: &'a str, body: Vec<u8>) -> Self {
        ApiRequest {
            method,
            path,
            accept: None,
            content_type: Some(content_type),
            body,
        }
    }

    /// Sets the `Accept` header.
    pub fn accept(mut self, accept: Option<&'a str>) -> Self {
        self.accept = accept;
        self
    }
}

/// kubectl's reading of an error answer: the Status's reason and message, else the text.
pub fn server_error(status: StatusCode, body: &[u8]) -> PluginError {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if v["kind"] == "Status" {
            let reason = v["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
                .unwrap_or("Unknown");
            return PluginError::Server {
                reason: reason.to_owned(),
                message: v["message"].as_str().unwrap_or_default().to_owned(),
            };
        }
    }
    PluginError::Server {
        reason: status.canonical_reason().unwrap_or("Unknown").replace(' ', ""),
        message: format!(
            "the server responded with status {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(body).trim()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_kubectl() {
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","message":"policyreports.wgpolicyk8s.io \"x\" not found","code":404}"#;
        assert_eq!(
            server_error(StatusCode::NOT_FOUND, body).to_string(),
            "Error from server (NotFound): policyreports.wgpolicyk8s.io \"x\" not found"
        );
        assert_eq!(
            server_error(StatusCode::BAD_GATEWAY, b"upstream down").to_string(),
            "Error from server (BadGateway): the server responded with status 502: upstream down"
        );
    }
}

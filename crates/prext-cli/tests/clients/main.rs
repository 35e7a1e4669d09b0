//! The differences from kube-apiserver that real clients found (kubectl 1.32, kube-rs, and the
//! exact requests of Ruby `kubeclient`, the Node.js client's informer and the Python client),
//! each checked end to end against a real `prext serve`. Where kube-apiserver's behaviour
//! was in doubt, the test names the upstream file it follows.
//!
//! `watch_one`: watches of one object by path. `yaml`: `Accept: application/yaml`.
//! `writes`: deletecollection, update of a missing object, create with a resourceVersion,
//! duplicate JSON keys, `sendInitialEvents`. `standalone`: what kubectl asks of a server with
//! no kube-apiserver in front. `plugin`: `kubectl prext`. `noise`: IP addresses as SNI.

#[path = "../common/mod.rs"]
mod common;

mod noise;
mod plugin;
mod standalone;
mod watch_one;
mod writes;
mod yaml;

use serde_json::Value;

/// The events of a finished watch body (newline-delimited JSON).
fn events(body: &str) -> Vec<Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect()
}

/// `(type, name)` of each non-bookmark event.
fn typed_names(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["type"] != "BOOKMARK")
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

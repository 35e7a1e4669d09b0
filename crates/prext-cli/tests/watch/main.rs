//! Watch: kubectl `get -w` and `wait`, kube-rs's `watcher` in list-then-watch and
//! streaming-list modes, resuming from a list resourceVersion across a restart, selector
//! transitions, bookmarks and `sendInitialEvents`, and 410 for compacted history.

#[path = "../common/mod.rs"]
mod common;

mod kubectl_watch;
mod protocol;
mod runtime;
mod slow;

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde_json::Value;

use common::samples::{report, Kind};

/// How long any single expected event may take on a loaded 2-core machine.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A dynamic API for `kind` in `ns` (or cluster-wide for cluster-scoped kinds).
fn api(client: &kube::Client, kind: Kind, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(kind.group, kind.version, kind.kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, kind.plural);
    if kind.namespaced {
        Api::namespaced_with(client.clone(), ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    }
}

/// `report(...)` as a DynamicObject.
fn dynamic(kind: Kind, ns: &str, name: &str, labels: &[(&str, &str)]) -> DynamicObject {
    serde_json::from_value(report(kind, ns, name, labels)).expect("report is a DynamicObject")
}

/// The next item of a stream, or a panic naming `what` after [`EVENT_TIMEOUT`].
async fn next<S: Stream + Unpin>(stream: &mut S, what: &str) -> S::Item {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("stream ended while waiting for {what}"),
        Err(_) => panic!("timed out after {EVENT_TIMEOUT:?} waiting for {what}"),
    }
}

/// The name of a DynamicObject.
fn name_of(obj: &DynamicObject) -> String {
    obj.metadata.name.clone().unwrap_or_default()
}

/// Parses the newline-delimited events of a finished raw watch response.
fn events(body: &str) -> Vec<Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("watch line is not JSON ({e}): {l}")))
        .collect()
}

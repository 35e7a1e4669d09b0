//! The registry's rules, one test each, on a real SQLite store in a temporary directory
//! (no HTTP). Upstream: `k8s.io/apiserver/pkg/registry/generic/registry/store_test.go`.
//! This module holds the fixtures; the tests are grouped by verb family in its children.

use std::sync::Arc;

use prext_api::status::Status;
use prext_api::ResourceDef;
use prext_store::{Preconditions, Store};
use serde_json::{json, Value};

use super::delete::{CollectionRequest, Deleted};
use super::guaranteed_update::{Action, Loop, OnConflict, Outcome};
use super::strategy::object_write;
use super::*;

fn def() -> &'static ResourceDef {
    prext_api::resources::find("wgpolicyk8s.io", "v1alpha2", "policyreports").expect("served")
}

struct Fixture {
    registry: Registry,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

fn fixture_with(admission: Option<Arc<dyn Admission>>) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = prext_store::sqlite::SqliteStore::open(&dir.path().join("prext.db"), Default::default())
        .expect("open sqlite");
    let store: Arc<dyn Store> = Arc::new(store);
    Fixture {
        registry: Registry::new(store.clone(), admission),
        store,
        _dir: dir,
    }
}

fn fixture() -> Fixture {
    fixture_with(None)
}

fn report(name: &str) -> Value {
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": "team-a", "labels": {"app": "web"}},
        "results": [{"policy": "require-labels", "result": "pass", "source": "kyverno"}]
    })
}

fn opts() -> WriteOptions {
    WriteOptions {
        dry_run: false,
        field_validation: FieldValidation::Warn,
        field_manager: None,
        default_manager: "kubectl".into(),
        force: None,
        duplicates: Vec::new(),
    }
}

fn target(name: &str) -> ObjectRef {
    ObjectRef {
        def: def(),
        namespace: Some("team-a".into()),
        name: name.into(),
    }
}

fn body(written: &Written) -> Value {
    serde_json::from_slice(&written.body).expect("json")
}

async fn create(f: &Fixture, name: &str) -> Value {
    let w = f
        .registry
        .create(def(), Some("team-a"), report(name), &opts())
        .await
        .expect("created");
    body(&w)
}

async fn stored(f: &Fixture, name: &str) -> Option<Value> {
    f.store
        .get(&target(name).key())
        .await
        .expect("get")
        .map(|s| serde_json::from_slice(&s.body).expect("json"))
}

fn rejected_code(e: &Error) -> u16 {
    match e {
        Error::Rejected(s) => s.code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

mod create;
mod delete;
mod read;
mod update;

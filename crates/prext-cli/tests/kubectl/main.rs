//! End-to-end tests with the real `/usr/bin/kubectl` against a real `prext serve`, over the
//! repository's report files (`testdata/`, `examples/`). They assert on what a user sees (columns, names,
//! values, messages), not only on exit codes.
//!
//! `read` covers discovery and every way of reading; `write` covers create, apply, patch,
//! label, annotate, edit and delete.

#[path = "../common/mod.rs"]
mod common;

mod apply;
mod examples;
mod read;
mod write;

use common::samples::{manifest, Kind};
use common::TestServer;
use serde_json::Value;

/// `kubectl create -f -` of `objs`; returns stdout.
fn create(server: &TestServer, objs: &[Value]) -> String {
    server.kubectl_stdin_ok(&["create", "-f", "-"], &manifest(objs))
}

/// `kubectl get KIND NAME [-n NS] -o jsonpath=EXPR`.
fn jsonpath(server: &TestServer, kind: Kind, ns: &str, name: &str, expr: &str) -> String {
    let jp = format!("jsonpath={expr}");
    let mut args = vec!["get", kind.short, name, "-o", jp.as_str()];
    if kind.namespaced {
        args.extend(["-n", ns]);
    }
    server.kubectl_ok(&args)
}

/// `kubectl get KIND NAME [-n NS] -o json`, parsed.
fn get_json(server: &TestServer, kind: Kind, ns: &str, name: &str) -> Value {
    let mut args = vec!["get", kind.short, name, "-o", "json"];
    if kind.namespaced {
        args.extend(["-n", ns]);
    }
    let out = server.kubectl_ok(&args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl -o json is not JSON ({e}): {out}"))
}

/// Sorted copy of a list of names.
fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

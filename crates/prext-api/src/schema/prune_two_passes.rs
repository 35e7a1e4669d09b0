//! The pruning and null-pruning passes as they were written first, one walk each
//! (`pruning/algorithm.go`, then `defaulting/prunenulls.go`): the oracle the property tests
//! compare the fused walk of `prune.rs` with. Test code only.

use serde_json::Value;

use super::{field_schema, joined, push_index, push_key, skip, Schema};

// ---------------------------------------------------------------------------------------
// Pass 1: pruning (pruning/algorithm.go).

pub(in crate::schema) fn prune_root(obj: &mut Value, s: &Schema, out: &mut Vec<String>) {
    prune(obj, Some(s), &mut String::new(), out, true);
}

fn prune(x: &mut Value, s: Option<&Schema>, path: &mut String, out: &mut Vec<String>, root: bool) {
    if let Some(s) = s.filter(|s| s.preserve_unknown_fields) {
        skip_prune(x, s, path, out, root);
        return;
    }
    match x {
        Value::Object(map) => map.retain(|k, v| {
            if skip(root, k) {
                return true;
            }
            match s.and_then(|s| field_schema(s, k)) {
                Some(sub) => {
                    let len = path.len();
                    push_key(path, k);
                    prune(v, Some(sub), path, out, false);
                    path.truncate(len);
                    true
                }
                None => {
                    out.push(joined(path, k));
                    false
                }
            }
        }),
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for (i, v) in items.iter_mut().enumerate() {
                let len = path.len();
                push_index(path, i);
                prune(v, item_schema, path, out, false);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Below `x-kubernetes-preserve-unknown-fields`: keep unknown fields, but still prune
/// inside the fields the schema does describe.
fn skip_prune(x: &mut Value, s: &Schema, path: &mut String, out: &mut Vec<String>, root: bool) {
    match x {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if skip(root, k) {
                    continue;
                }
                if let Some(sub) = field_schema(s, k) {
                    let len = path.len();
                    push_key(path, k);
                    prune(v, Some(sub), path, out, false);
                    path.truncate(len);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.items.as_deref() {
                for (i, v) in items.iter_mut().enumerate() {
                    let len = path.len();
                    push_index(path, i);
                    skip_prune(v, item_schema, path, out, false);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Pass 2: null pruning (defaulting/prunenulls.go).

pub(in crate::schema) fn prune_nulls_root(obj: &mut Value, s: &Schema) {
    prune_nulls(obj, Some(s), true);
}

fn prune_nulls(x: &mut Value, s: Option<&Schema>, root: bool) {
    match x {
        Value::Object(map) => map.retain(|k, v| {
            if skip(root, k) {
                return true;
            }
            let sub = s.and_then(|s| field_schema(s, k));
            let droppable = sub.is_some_and(|sub| !sub.nullable && sub.default.is_none());
            if v.is_null() && droppable {
                return false;
            }
            prune_nulls(v, sub, false);
            true
        }),
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for v in items {
                prune_nulls(v, item_schema, false);
            }
        }
        _ => {}
    }
}

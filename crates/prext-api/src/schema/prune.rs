//! The passes apiextensions-apiserver runs over a custom resource before validating it,
//! ported from `apiextensions-apiserver/pkg/apiserver/schema/{pruning,defaulting}`:
//! pruning of unknown fields, pruning of `null`s that may not stay, and defaulting.
//!
//! Paths are built in one reusable buffer, in kube-openapi's notation: keys joined with
//! `.`, indices as `[i]`, no leading dot (`results[0].properties.key`).

use serde_json::Value;

use super::Schema;

/// Top-level fields the generic registry validates; the passes leave them alone.
pub(super) const META_KEYS: [&str; 3] = ["apiVersion", "kind", "metadata"];

pub(super) fn skip(root: bool, key: &str) -> bool {
    root && META_KEYS.contains(&key)
}

pub(super) fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

pub(super) fn push_index(path: &mut String, i: usize) {
    use std::fmt::Write as _;
    let _ = write!(path, "[{i}]");
}

pub(super) fn joined(path: &str, key: &str) -> String {
    let mut p = path.to_string();
    push_key(&mut p, key);
    p
}

/// The schema of a map entry: a declared property, else the map's value schema.
pub(super) fn field_schema<'s>(s: &'s Schema, key: &str) -> Option<&'s Schema> {
    s.properties.get(key).or(s.additional_properties.as_deref())
}

// ---------------------------------------------------------------------------------------
// Passes 1 and 2 in one walk: pruning (pruning/algorithm.go), then null pruning
// (defaulting/prunenulls.go). Null pruning only ever drops a `null` of a field the schema
// describes, which pruning keeps and does not change, so one walk that drops such a
// `null` where pruning keeps its field leaves what the two passes in turn leave.

pub(super) fn prune_root(obj: &mut Value, s: &Schema, out: &mut Vec<String>) {
    prune(obj, Some(s), &mut String::new(), out, true);
}

/// Whether a `null` of a field of schema `sub` goes (neither nullable nor defaulted).
fn null_droppable(v: &Value, sub: &Schema) -> bool {
    v.is_null() && !sub.nullable && sub.default.is_none()
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
                Some(sub) if null_droppable(v, sub) => false,
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
/// inside the fields the schema does describe (and drop their `null`s).
fn skip_prune(x: &mut Value, s: &Schema, path: &mut String, out: &mut Vec<String>, root: bool) {
    match x {
        Value::Object(map) => map.retain(|k, v| {
            if skip(root, k) {
                return true;
            }
            match field_schema(s, k) {
                Some(sub) if null_droppable(v, sub) => false,
                Some(sub) => {
                    let len = path.len();
                    push_key(path, k);
                    prune(v, Some(sub), path, out, false);
                    path.truncate(len);
                    true
                }
                None => true,
            }
        }),
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
// Pass 3: defaulting (defaulting/algorithm.go).

pub(super) fn default_root(obj: &mut Value, s: &Schema) {
    apply_defaults(obj, s, true);
}

fn is_non_nullable_null(x: &Value, s: &Schema) -> bool {
    x.is_null() && !s.nullable
}

fn apply_defaults(x: &mut Value, s: &Schema, root: bool) {
    if !s.defaults_below {
        // No default here or below: the pass would only write `null` over `null`.
        return;
    }
    match x {
        Value::Object(map) => {
            for (k, prop) in &s.properties {
                let Some(default) = &prop.default else {
                    continue;
                };
                if skip(root, k) {
                    continue;
                }
                if map.get(k).is_none_or(|v| is_non_nullable_null(v, prop)) {
                    map.insert(k.clone(), default.clone());
                }
            }
            for (k, v) in map.iter_mut() {
                if skip(root, k) {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    apply_defaults(v, prop, false);
                } else if let Some(ap) = s.additional_properties.as_deref() {
                    if is_non_nullable_null(v, ap) {
                        *v = ap.default.clone().unwrap_or(Value::Null);
                    }
                    apply_defaults(v, ap, false);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = s.items.as_deref() else {
                return;
            };
            for v in items {
                if is_non_nullable_null(v, item_schema) {
                    *v = item_schema.default.clone().unwrap_or(Value::Null);
                }
                apply_defaults(v, item_schema, false);
            }
        }
        _ => {}
    }
}

/// The two passes as they were written first, one walk each: the oracle of the fused walk.
#[cfg(test)]
#[path = "prune_two_passes.rs"]
pub(super) mod two_passes;

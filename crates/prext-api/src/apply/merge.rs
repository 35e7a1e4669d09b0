//! What the report kinds' schemas mean to server-side apply: which parts of an object are
//! fields, how an applied configuration merges into the live object, and how two objects
//! compare field by field.
//!
//! The shapes, as structured-merge-diff would derive them from the CRDs and `ObjectMeta`:
//! * top-level content (`results`, `summary`, `scope`, …) is atomic: each is one leaf;
//! * for [`ReportLayout::Spec`] kinds, `spec` is a struct and each field under it is a leaf;
//! * `metadata.labels` and `metadata.annotations` are granular maps (each key a field);
//! * `metadata.finalizers` is a set (`v:"x"`), `metadata.ownerReferences` a list keyed by
//!   `uid` whose items are atomic (`k:{"uid":"…"}`);
//! * the server-owned metadata ([`NEVER_OWNED`]) is never a field; any other metadata
//!   entry is a leaf.
//!
//! A `null` in an applied configuration claims the field and removes it from the object.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldset::{canonical, FieldSet, Path, PathElement};
use crate::resources::{ReportLayout, ResourceDef};

/// The `metadata` entries no manager owns: the server sets them (structured-merge-diff's
/// `stripMeta` plus `deletionTimestamp`).
pub const NEVER_OWNED: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "selfLink",
];

/// The metadata lists and maps whose members are fields of their own.
const GRANULAR_MAPS: [&str; 2] = ["labels", "annotations"];
const SET: &str = "finalizers";
const KEYED: &str = "ownerReferences";
const KEY_FIELD: &str = "uid";

/// A field of an object.
enum Node<'a> {
    /// An atomic value.
    Leaf(&'a Value),
    /// A granular map or list; its presence is a field too (the `".":{}` of `fieldsV1`).
    Container { empty: bool },
}

/// Every field of `obj`, by path.
fn nodes<'a>(def: &ResourceDef, obj: &'a Value) -> BTreeMap<Path, Node<'a>> {
    let mut out = BTreeMap::new();
    let Some(top) = obj.as_object() else { return out };
    for (key, value) in top {
        let path = Path::fields(&[key.as_str()]);
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => metadata_nodes(value, &mut out),
            "spec" if def.layout() == Some(ReportLayout::Spec) => match value.as_object() {
                Some(spec) if !spec.is_empty() => {
                    for (field, v) in spec {
                        out.insert(path.child(PathElement::field(field)), Node::Leaf(v));
                    }
                }
                _ => {
                    out.insert(path, Node::Leaf(value));
                }
            },
            _ => {
                out.insert(path, Node::Leaf(value));
            }
        }
    }
    out
}

fn metadata_nodes<'a>(meta: &'a Value, out: &mut BTreeMap<Path, Node<'a>>) {
    let Some(meta) = meta.as_object() else { return };
    for (key, value) in meta {
        if NEVER_OWNED.contains(&key.as_str()) {
            continue;
        }
        let path = Path::fields(&["metadata", key.as_str()]);
        match (key.as_str(), value) {
            (k, Value::Object(map)) if GRANULAR_MAPS.contains(&k) => {
                for (entry, v) in map {
                    out.insert(path.child(PathElement::field(entry)), Node::Leaf(v));
                }
                out.insert(
                    path,
                    Node::Container {
                        empty: map.is_empty(),
                    },
                );
            }
            (SET, Value::Array(items)) => {
                for item in items {
                    out.insert(path.child(PathElement::value(item)), Node::Leaf(item));
                }
                out.insert(
                    path,
                    Node::Container {
                        empty: items.is_empty(),
                    },
                );
            }
            (KEYED, Value::Array(items)) => {
                for item in items {
                    out.insert(path.child(item_key(item)), Node::Leaf(item));
                }
                out.insert(
                    path,
                    Node::Container {
                        empty: items.is_empty(),
                    },
                );
            }
            _ => {
                out.insert(path, Node::Leaf(value));
            }
        }
    }
}

/// The key element of an `ownerReferences` item (a missing uid keys as `null`).
fn item_key(item: &Value) -> PathElement {
    PathElement::key([(KEY_FIELD, item.get(KEY_FIELD).unwrap_or(&Value::Null))])
}

/// The fields an applied configuration sets: every leaf (`null` included: it claims the
/// field) and every map or list it sets to empty.
pub(crate) fn applied_set(def: &ResourceDef, obj: &Value) -> FieldSet {
    nodes(def, obj)
        .into_iter()
        .filter(|(_, node)| match node {
            Node::Leaf(_) => true,
            Node::Container { empty } => *empty,
        })
        .map(|(path, _)| path)
        .collect()
}

/// How two versions of an object differ, field by field.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    /// The fields the new version sets to a new value.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// Compares `old` and `new`. A `null` leaf counts as absent; a container is added or
/// removed, never modified (its members are compared one by one).
pub(crate) fn compare(def: &ResourceDef, old: &Value, new: &Value) -> Comparison {
    let present = |obj| {
        let mut n = nodes(def, obj);
        n.retain(|_, node| !matches!(node, Node::Leaf(Value::Null)));
        n
    };
    let (mut old, new) = (present(old), present(new));
    let mut out = Comparison::default();
    // The paths move into the sets (what is left of `old` is what was removed).
    for (path, node) in new {
        match (old.remove(&path), node) {
            (None, _) => {
                out.added.insert(path);
            }
            (Some(Node::Leaf(a)), Node::Leaf(b)) if crate::equal::equal(a, b) => {}
            (Some(Node::Container { .. }), Node::Container { .. }) => {}
            (Some(_), _) => {
                out.modified.insert(path);
            }
        }
    }
    out.removed = old.into_keys().collect();
    out
}

/// Merges an applied configuration into `live` (structured-merge-diff's `Merge`): every
/// field it sets replaces the live one, `null` removes it, granular maps and lists merge
/// member by member. Server-owned metadata in the configuration is copied too (a
/// `resourceVersion` then acts as a precondition), unless it is `null`.
pub(crate) fn merge(def: &ResourceDef, live: &mut Value, applied: &Value) {
    let Some(applied) = applied.as_object() else {
        return;
    };
    let live = object_mut(live);
    for (key, value) in applied {
        match key.as_str() {
            "metadata" => merge_metadata(object_mut(entry(live, key)), value),
            "spec" if def.layout() == Some(ReportLayout::Spec) && value.is_object() => {
                let spec = object_mut(entry(live, key));
                for (field, v) in value.as_object().into_iter().flatten() {
                    set_or_remove(spec, field, v);
                }
            }
            _ => set_or_remove(live, key, value),
        }
    }
}

fn merge_metadata(live: &mut Map<String, Value>, applied: &Value) {
    for (key, value) in applied.as_object().into_iter().flatten() {
        match (key.as_str(), value) {
            ("managedFields", _) => {}
            (k, v) if NEVER_OWNED.contains(&k) => {
                if !v.is_null() {
                    live.insert(k.to_string(), v.clone());
                }
            }
            (k, Value::Object(map)) if GRANULAR_MAPS.contains(&k) => {
                let target = object_mut(entry(live, k));
                for (member, v) in map {
                    set_or_remove(target, member, v);
                }
            }
            (SET, Value::Array(items)) => {
                let target = array_mut(entry(live, SET));
                for item in items {
                    if !target.contains(item) {
                        target.push(item.clone());
                    }
                }
            }
            (KEYED, Value::Array(items)) => {
                let target = array_mut(entry(live, KEYED));
                for item in items {
                    let key = item_key(item);
                    match target.iter_mut().find(|t| item_key(t) == key) {
                        Some(slot) => *slot = item.clone(),
                        None => target.push(item.clone()),
                    }
                }
            }
            (k, v) => set_or_remove(live, k, v),
        }
    }
}

/// Removes the field at `path` from `obj`; `false` if there was nothing there.
pub(crate) fn remove(obj: &mut Value, path: &Path) -> bool {
    let Some((last, parents)) = path.elements().split_last() else {
        return false;
    };
    let Some(parent) = lookup_mut(obj, parents) else {
        return false;
    };
    match (last, parent) {
        (PathElement::Field(name), Value::Object(map)) => map.shift_remove(name).is_some(),
        (PathElement::Index(i), Value::Array(items)) => {
            let i = usize::try_from(*i).unwrap_or(usize::MAX);
            (i < items.len()).then(|| items.remove(i)).is_some()
        }
        (element, Value::Array(items)) => {
            let before = items.len();
            items.retain(|item| !matches_item(element, item));
            items.len() != before
        }
        _ => false,
    }
}

/// Whether `path` is a map, list or struct whose members are fields of their own (owning it
/// does not own what it holds).
fn is_granular(path: &Path) -> bool {
    match path.elements() {
        [PathElement::Field(top)] => top == "metadata" || top == "spec",
        [PathElement::Field(top), PathElement::Field(field)] => {
            top == "metadata" && (GRANULAR_MAPS.contains(&field.as_str()) || field == SET || field == KEYED)
        }
        _ => false,
    }
}

/// Removes from `obj` the fields a manager applied before (`previous`) that nobody owns any
/// more (`owned`: every entry's set, the new applied set included): structured-merge-diff's
/// `prune`. A field holding an owned one stays, and so does one inside an owned atomic field
/// (possible only with sets written by another implementation). A metadata map or list left
/// empty goes too, unless it is owned itself.
pub(crate) fn prune(obj: &mut Value, previous: &FieldSet, owned: &FieldSet) {
    for path in previous.difference(owned).iter() {
        let elements = path.elements();
        let in_owned_atom = (1..elements.len())
            .map(|n| Path::new(elements[..n].to_vec()))
            .any(|ancestor| owned.contains(&ancestor) && !is_granular(&ancestor));
        if in_owned_atom || owned.has_descendant(path) || !remove(obj, path) {
            continue;
        }
        let Some(parent) = path.parent() else { continue };
        let in_metadata = matches!(parent.elements(), [PathElement::Field(m), _] if m == "metadata");
        if in_metadata && is_empty_container(obj, &parent) && !owned.contains(&parent) {
            remove(obj, &parent);
        }
    }
}

/// Whether the value at `path` is an empty object or array.
fn is_empty_container(obj: &mut Value, path: &Path) -> bool {
    match lookup_mut(obj, path.elements()) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

fn lookup_mut<'a>(mut cur: &'a mut Value, path: &[PathElement]) -> Option<&'a mut Value> {
    for element in path {
        cur = match (element, cur) {
            (PathElement::Field(name), Value::Object(map)) => map.get_mut(name)?,
            (PathElement::Index(i), Value::Array(items)) => items.get_mut(usize::try_from(*i).ok()?)?,
            (element, Value::Array(items)) => items.iter_mut().find(|item| matches_item(element, item))?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Whether a list item is the one a key or value element names.
fn matches_item(element: &PathElement, item: &Value) -> bool {
    match element {
        PathElement::Key(pairs) => pairs
            .iter()
            .all(|(name, want)| canonical(item.get(name).unwrap_or(&Value::Null)) == *want),
        PathElement::Value(want) => canonical(item) == *want,
        PathElement::Field(_) | PathElement::Index(_) => false,
    }
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: &Value) {
    if value.is_null() {
        map.shift_remove(key);
    } else {
        map.insert(key.to_string(), value.clone());
    }
}

fn entry<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Value {
    map.entry(key).or_insert(Value::Null)
}

/// `v` as an object, replacing anything else with an empty one.
fn object_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// `v` as an array, replacing anything else with an empty one.
fn array_mut(v: &mut Value) -> &mut Vec<Value> {
    if !v.is_array() {
        *v = Value::Array(Vec::new());
    }
    match v {
        Value::Array(a) => a,
        _ => unreachable!("just made an array"),
    }
}

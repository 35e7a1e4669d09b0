//! Field paths and field sets, structured-merge-diff's `fieldpath` package reduced to what the
//! report kinds need, with the `fieldsV1` encoding used by `metadata.managedFields[].fieldsV1`.
//!
//! A path is a list of elements: `f:<name>` (a struct field or a map key), `k:{"uid":"…"}` (an
//! item of a list keyed by fields), `v:"x"` (an item of a set) and `i:<n>` (a list item by
//! position, only ever read from foreign entries). A set is the set of paths a manager owns.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use super::merge;
use crate::resources::ResourceDef;

/// A `fieldsV1` document that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldsV1Error {
    /// A node of the tree is not a JSON object.
    #[error("fieldsV1: the value at {0:?} is not an object")]
    NotAnObject(String),
    /// A key is not `.`, `f:`, `k:`, `v:` or `i:` followed by a valid payload.
    #[error("fieldsV1: invalid path element {0:?}")]
    InvalidElement(String),
}

/// One step of a [`Path`]. The derived order (fields, keys, values, indexes) is
/// structured-merge-diff's, which is also the order elements are written in `fieldsV1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A struct field or the key of a granular map: `f:name`.
    Field(String),
    /// An item of an associative list, by its key fields: (name, canonical JSON of the
    /// value) pairs sorted by name. `k:{"uid":"…"}`.
    Key(Vec<(String, String)>),
    /// An item of a set, by the canonical JSON of its value: `v:"x"`.
    Value(String),
    /// A list item by position: `i:0`.
    Index(u64),
}

impl PathElement {
    /// A field element.
    pub fn field(name: impl Into<String>) -> Self {
        PathElement::Field(name.into())
    }

    /// A key element from (field name, value) pairs.
    pub fn key<'a>(fields: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Self {
        let mut pairs: Vec<(String, String)> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), canonical(v)))
            .collect();
        pairs.sort();
        PathElement::Key(pairs)
    }

    /// A set-item element.
    pub fn value(v: &Value) -> Self {
        PathElement::Value(canonical(v))
    }

    /// The element as a `fieldsV1` key.
    pub fn to_fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(name) => {
                let mut key = String::with_capacity(name.len() + 2);
                key.push_str("f:");
                key.push_str(name);
                key
            }
            PathElement::Key(pairs) => {
                let body = pairs
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                    .collect::<Vec<_>>()
                    .join(",");
                format!("k:{{{body}}}")
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `fieldsV1` key (anything but `.`).
    pub fn from_fields_v1_key(text: &str) -> Result<Self, FieldsV1Error> {
        let invalid = || FieldsV1Error::InvalidElement(text.to_string());
        let (prefix, rest) = text.split_at_checked(2).ok_or_else(invalid)?;
        match prefix {
            "f:" => Ok(PathElement::Field(rest.to_string())),
            "k:" => {
                let fields: Map<String, Value> = serde_json::from_str(rest).map_err(|_| invalid())?;
                Ok(PathElement::key(fields.iter().map(|(k, v)| (k.as_str(), v))))
            }
            "v:" => {
                let v: Value = serde_json::from_str(rest).map_err(|_| invalid())?;
                Ok(PathElement::value(&v))
            }
            "i:" => rest.parse().map(PathElement::Index).map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }
}

/// Kubernetes' notation, as used in conflict messages: `.name`, `[uid="…"]`, `[="x"]`, `[0]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(pairs) => {
                let body = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
                write!(f, "[{}]", body.join(","))
            }
            PathElement::Value(v) => write!(f, "[={v}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the root of an object to one of its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(Vec<PathElement>);

impl Path {
    /// The path made of these elements.
    pub fn new(elements: Vec<PathElement>) -> Self {
        Path(elements)
    }

    /// A path of field elements only: `Path::fields(&["metadata", "labels", "app"])`.
    pub fn fields(names: &[&str]) -> Self {
        Path(names.iter().map(|n| PathElement::field(*n)).collect())
    }

    /// The elements, root first.
    pub fn elements(&self) -> &[PathElement] {
        &self.0
    }

    /// This path extended by one element.
    pub fn child(&self, element: PathElement) -> Self {
        let mut elements = self.0.clone();
        elements.push(element);
        Path(elements)
    }

    /// The path without its last element (`None` for the root).
    pub fn parent(&self) -> Option<Path> {
        self.0.split_last().map(|(_, rest)| Path(rest.to_vec()))
    }

    /// Whether `prefix` is this path or one of its ancestors.
    pub fn starts_with(&self, prefix: &Path) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

/// Kubernetes' notation: `.metadata.labels.app`, `.metadata.finalizers[="x"]`.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|e| write!(f, "{e}"))
    }
}

/// A set of field paths: what one manager owns, or what one object sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The fields an applied configuration of kind `def` sets (structured-merge-diff's
    /// `ToFieldSet`): its leaves, plus the maps and lists it sets to empty.
    pub fn from_object(def: &ResourceDef, obj: &Value) -> Self {
        merge::applied_set(def, obj)
    }

    /// Decodes a `fieldsV1` tree.
    pub fn from_fields_v1(tree: &Value) -> Result<Self, FieldsV1Error> {
        let mut set = FieldSet::new();
        let root = tree
            .as_object()
            .ok_or_else(|| FieldsV1Error::NotAnObject(String::new()))?;
        let mut prefix = Vec::new();
        decode_children(root, &mut prefix, &mut set.0)?;
        Ok(set)
    }

    /// Encodes the set as a `fieldsV1` tree, with `".":{}` on paths that are members and
    /// also have members below them (`{"f:metadata":{"f:labels":{".":{},"f:app":{}}}}`).
    pub fn to_fields_v1(&self) -> Value {
        // The set is sorted, a path before the paths below it: each node's members are
        // consecutive, so the tree is written straight from the sorted paths.
        let paths: Vec<&[PathElement]> = self.0.iter().map(Path::elements).collect();
        encode_sorted(&paths, 0)
    }

    /// Adds a path; `false` if it was already there.
    pub fn insert(&mut self, path: Path) -> bool {
        self.0.insert(path)
    }

    /// Whether the set holds exactly this path.
    pub fn contains(&self, path: &Path) -> bool {
        self.0.contains(path)
    }

    /// Whether the set holds a field inside `path` (a proper descendant).
    pub(crate) fn has_descendant(&self, path: &Path) -> bool {
        self.0
            .range(path.clone()..)
            .take_while(|p| p.starts_with(path))
            .any(|p| p != path)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of paths.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The paths in order.
    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }

    /// Adds every path of `other` (moved, not copied); `true` if any was new.
    pub fn absorb(&mut self, other: FieldSet) -> bool {
        let before = self.0.len();
        self.0.extend(other.0);
        self.0.len() != before
    }

    /// Removes every path of `other` in place; `true` if any was there.
    pub fn remove_all(&mut self, other: &FieldSet) -> bool {
        let before = self.0.len();
        if other.0.len() < before {
            for path in &other.0 {
                self.0.remove(path);
            }
        } else {
            self.0.retain(|path| !other.0.contains(path));
        }
        self.0.len() != before
    }

    /// The paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// The paths of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }
}

impl FromIterator<Path> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Path>>(iter: I) -> Self {
        FieldSet(iter.into_iter().collect())
    }
}

/// The `fieldsV1` node of the sorted `paths`, which all share their first `depth` elements:
/// `".":{}` when the node itself is a member and has members below it, then one key per
/// distinct element at `depth`.
fn encode_sorted(paths: &[&[PathElement]], depth: usize) -> Value {
    let mut out = Map::new();
    let mut rest = paths;
    if let Some((first, below)) = rest.split_first() {
        if first.len() == depth {
            if !below.is_empty() {
                out.insert(".".into(), Value::Object(Map::new()));
            }
            rest = below;
        }
    }
    while let Some(first) = rest.first() {
        let element = &first[depth];
        let n = rest.iter().take_while(|p| p.get(depth) == Some(element)).count();
        out.insert(element.to_fields_v1_key(), encode_sorted(&rest[..n], depth + 1));
        rest = &rest[n..];
    }
    Value::Object(out)
}

fn decode_children(
    node: &Map<String, Value>,
    prefix: &mut Vec<PathElement>,
    out: &mut BTreeSet<Path>,
) -> Result<(), FieldsV1Error> {
    for (key, child) in node {
        if key == "." {
            out.insert(Path(prefix.clone()));
            continue;
        }
        prefix.push(PathElement::from_fields_v1_key(key)?);
        let child = child
            .as_object()
            .ok_or_else(|| FieldsV1Error::NotAnObject(Path(prefix.clone()).to_string()))?;
        if child.is_empty() {
            out.insert(Path(prefix.clone()));
        } else {
            decode_children(child, prefix, out)?;
        }
        prefix.pop();
    }
    Ok(())
}

/// The JSON text of `v` with object keys sorted, so that equal values have equal text.
pub(crate) fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    match v {
        Value::Object(_) | Value::Array(_) => sorted(v).to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_print_and_encode_like_kube() {
        let owner = PathElement::key([("uid", &json!("u"))]);
        let set: FieldSet = [
            Path::fields(&["metadata", "labels", "app.kubernetes.io/name"]),
            Path::fields(&["metadata", "labels"]),
            Path::fields(&["metadata", "finalizers"]).child(PathElement::value(&json!("x"))),
            Path::fields(&["metadata", "ownerReferences"]).child(owner),
            Path::new(vec![PathElement::field("results"), PathElement::Index(3)]),
        ]
        .into_iter()
        .collect();
        let text: Vec<String> = set.iter().map(ToString::to_string).collect();
        let expected = [
            ".metadata.finalizers[=\"x\"]",
            ".metadata.labels",
            ".metadata.labels.app.kubernetes.io/name",
            ".metadata.ownerReferences[uid=\"u\"]",
            ".results[3]",
        ];
        assert_eq!(text, expected);
        let tree = set.to_fields_v1();
        let metadata = json!({
            "f:finalizers": {"v:\"x\"": {}},
            "f:labels": {".": {}, "f:app.kubernetes.io/name": {}},
            "f:ownerReferences": {"k:{\"uid\":\"u\"}": {}},
        });
        assert_eq!(tree, json!({"f:metadata": metadata, "f:results": {"i:3": {}}}));
        assert_eq!(FieldSet::from_fields_v1(&tree), Ok(set));
    }

    #[test]
    fn bad_trees_are_refused_and_keys_are_canonical() {
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"i:-1": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
        let spaced = FieldSet::from_fields_v1(&json!({"k:{ \"b\": 1, \"a\": \"x\" }": {}})).unwrap();
        assert_eq!(spaced.to_fields_v1(), json!({"k:{\"a\":\"x\",\"b\":1}": {}}));
        let set = FieldSet::from_fields_v1(&json!({"f:a": {".": {}, "f:b": {}}})).unwrap();
        assert!(set.contains(&Path::fields(&["a"])) && set.contains(&Path::fields(&["a", "b"])));
        assert!(set.has_descendant(&Path::fields(&["a"])));
        assert!(!set.has_descendant(&Path::fields(&["a", "b"])));
    }

    /// The encoding as it was written first (a tree of nodes, then the JSON): the oracle of
    /// the one-pass encoding.
    fn to_fields_v1_by_tree(set: &FieldSet) -> Value {
        #[derive(Default)]
        struct Node<'a> {
            member: bool,
            children: BTreeMap<&'a PathElement, Node<'a>>,
        }
        fn encode(node: &Node<'_>) -> Value {
            let mut out = Map::new();
            if node.member && !node.children.is_empty() {
                out.insert(".".into(), Value::Object(Map::new()));
            }
            for (element, child) in &node.children {
                out.insert(element.to_fields_v1_key(), encode(child));
            }
            Value::Object(out)
        }
        let mut root = Node::default();
        for path in set.iter() {
            let mut node = &mut root;
            for element in path.elements() {
                node = node.children.entry(element).or_default();
            }
            node.member = true;
        }
        encode(&root)
    }

    fn arb_element() -> impl Strategy<Value = PathElement> {
        prop_oneof![
            "[a-z.:/\"-]{1,6}".prop_map(PathElement::Field),
            "[a-z0-9\"]{0,4}".prop_map(|s| PathElement::key([("uid", &Value::String(s))])),
            (any::<i32>(), "[a-z\"]{0,3}").prop_map(|(n, s)| PathElement::value(&json!([n, s]))),
            (0u64..5).prop_map(PathElement::Index),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn in_place_union_and_difference_match_the_copying_ones(
            a in proptest::collection::vec(proptest::collection::vec(arb_element(), 1..3), 0..8),
            b in proptest::collection::vec(proptest::collection::vec(arb_element(), 1..3), 0..8),
        ) {
            let a: FieldSet = a.into_iter().map(Path::new).collect();
            let b: FieldSet = b.into_iter().map(Path::new).collect();
            let mut absorbed = a.clone();
            prop_assert_eq!(absorbed.absorb(b.clone()), !b.difference(&a).is_empty());
            prop_assert_eq!(absorbed, a.union(&b));
            let mut removed = a.clone();
            prop_assert_eq!(removed.remove_all(&b), !a.intersection(&b).is_empty());
            prop_assert_eq!(removed, a.difference(&b));
        }

        #[test]
        fn fields_v1_is_the_tree_encoding(paths in proptest::collection::vec(proptest::collection::vec(arb_element(), 0..4), 0..10)) {
            let set: FieldSet = paths.into_iter().map(Path::new).collect();
            let fast = set.to_fields_v1();
            let tree = to_fields_v1_by_tree(&set);
            // Same keys in the same order at every level.
            prop_assert_eq!(fast.to_string(), tree.to_string());
        }

        #[test]
        fn fields_v1_round_trips(paths in proptest::collection::vec(proptest::collection::vec(arb_element(), 1..4), 0..8)) {
            let set: FieldSet = paths.into_iter().map(Path::new).collect();
            prop_assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()), Ok(set));
        }
    }
}

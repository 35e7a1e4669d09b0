//! The OpenAPI documents of the served kinds, built once from the resource table and
//! each kind's CRD schema, the way apiextensions-apiserver publishes CRDs:
//!
//! * OpenAPI 3.0 per group/version ([`v3_group_version`]), listed by [`v3_root`] with
//!   the content hash kube-openapi's handler uses as a cache key. `kubectl explain`
//!   reads these; `kubectl apply`/`create` look up the PATCH operation of a kind to learn
//!   that the server does field validation (`fieldValidation` parameter) and which patch
//!   types it accepts (never strategic merge, so client-side apply sends a merge patch);
//! * Swagger 2.0 for everything ([`v2`]), for `kubectl explain
//!   --output=plaintext-openapiv2` and client-side validation.
//!
//! Both iterate the one resource table ([`TABLE`]): a stored kind's document comes from its
//! CRD ([`render`]), a computed resource's from [`results`].
//!
//! Kind schemas are named like CRD definitions (`io.wgpolicyk8s.v1alpha2.PolicyReport`,
//! `demo.prext.v1alpha1.PolicyReport`) and carry `x-kubernetes-group-version-kind` as an
//! array; their `metadata` references `io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta`,
//! defined in the same document with the other meta types the operations use.

mod history;
mod meta;
mod ops;
mod render;
mod results;

#[cfg(test)]
mod tests;

use std::sync::LazyLock;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use crate::resources::{self, ResourceDef, TABLE};
use crate::schema;

/// One serialized OpenAPI document and its cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenApiDoc {
    /// The document, compact JSON.
    pub json: Vec<u8>,
    /// Uppercase hex SHA-512 of `json`: the `?hash=` of its URL and its `ETag`.
    pub hash: String,
}

impl OpenApiDoc {
    fn new(doc: &Value) -> Self {
        let json = serde_json::to_vec(doc).expect("a JSON value always serializes");
        let hash = hex::encode_upper(Sha512::digest(&json));
        Self { json, hash }
    }
}

/// The v3 documents, one per served group/version, in table order.
static V3: LazyLock<Vec<(&'static str, &'static str, OpenApiDoc)>> = LazyLock::new(|| {
    resources::groups_of(TABLE)
        .into_iter()
        .flat_map(|(group, versions)| versions.into_iter().map(move |v| (group, v)))
        .map(|(group, version)| {
            let rows: Vec<_> = resources::served_in(TABLE, group, version).collect();
            (group, version, OpenApiDoc::new(&v3_document(&rows)))
        })
        .collect()
});

/// The v3 document of one group/version's rows: from the CRDs of stored kinds, else the
/// computed resources' own.
fn v3_document(rows: &[&'static ResourceDef]) -> Value {
    if rows.iter().all(|def| def.crd().is_some()) {
        render::v3(rows)
    } else {
        results::v3(rows)
    }
}

static V2: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let (stored, computed): (Vec<&'static ResourceDef>, Vec<_>) =
        TABLE.iter().partition(|def| def.crd().is_some());
    let mut doc = render::v2(&stored);
    results::add_to_v2(&mut doc, &computed);
    serde_json::to_vec(&doc).expect("a JSON value always serializes")
});

/// The OpenAPI 3.0 document of one served group/version (`/openapi/v3/apis/<g>/<v>`),
/// or `None` if prext does not serve it.
pub fn v3_group_version(group: &str, version: &str) -> Option<&'static OpenApiDoc> {
    V3.iter()
        .find(|(g, v, _)| *g == group && *v == version)
        .map(|(_, _, doc)| doc)
}

/// The `/openapi/v3` discovery document: every served group/version and nothing else
/// (the aggregator merges the roots of all API services with a plain map overwrite).
pub fn v3_root() -> Value {
    let paths: Map<String, Value> = V3
        .iter()
        .map(|(group, version, doc)| {
            let url = format!("/openapi/v3/apis/{group}/{version}?hash={}", doc.hash);
            (
                format!("apis/{group}/{version}"),
                json!({ "serverRelativeURL": url }),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// The Swagger 2.0 document of every served kind (`/openapi/v2`), compact JSON.
pub fn v2() -> &'static [u8] {
    &V2
}

/// `x-kubernetes-group-version-kind` as an array with one entry (the schema form).
fn gvk_array(group: &str, version: &str, kind: &str) -> Value {
    json!([{ "group": group, "kind": kind, "version": version }])
}

/// The kind's schema: the CRD's `openAPIV3Schema` with `metadata` referencing
/// `ObjectMeta` and the GVK extension.
fn kind_schema(def: &'static ResourceDef) -> Value {
    let mut s = schema::crd_schema_json(def).clone();
    if let Some(obj) = s.as_object_mut() {
        let props = obj
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(props) = props {
            props.insert(
                "metadata".into(),
                meta::meta_property(
                    "ObjectMeta",
                    "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                ),
            );
        }
        obj.insert(
            "x-kubernetes-group-version-kind".into(),
            gvk_array(def.group, def.version, def.kind),
        );
    }
    s
}

/// The kind's list schema, as apiextensions' `buildListSchema` writes it.
fn list_schema(def: &'static ResourceDef) -> Value {
    let crd = schema::crd_schema_json(def);
    let type_meta = |field: &str| {
        let description = crd["properties"][field]["description"].clone();
        json!({ "description": description, "type": "string" })
    };
    json!({
        "description": format!("{} is a list of {}", def.list_kind, def.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": type_meta("apiVersion"),
            "items": {
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", def.plural),
                "type": "array",
                "items": { "$ref": format!("#/components/schemas/{}", ops::kind_schema_name(def)) }
            },
            "kind": type_meta("kind"),
            "metadata": meta::meta_property(
                "ListMeta",
                "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            )
        },
        "x-kubernetes-group-version-kind": gvk_array(def.group, def.version, def.list_kind)
    })
}

/// Every schema of a document with these kinds, v3 form, in a stable order: the kinds
/// and their lists, then the meta types.
fn schemas(kinds: &[&'static ResourceDef]) -> Map<String, Value> {
    let mut out = Map::new();
    for &def in kinds {
        out.insert(ops::kind_schema_name(def), kind_schema(def));
        out.insert(ops::list_schema_name(def), list_schema(def));
    }
    for (name, schema) in meta::schemas() {
        out.insert(format!("{}{name}", ops::META), schema);
    }
    out
}

//! The structural schema of each served kind, read from its CRD, and the
//! apiextensions-apiserver treatment of a custom resource on write: pruning of unknown
//! fields, null pruning, defaulting, then OpenAPI validation with Kubernetes' field-error
//! messages.
//!
//! Each kind's schema is the `openAPIV3Schema` of version [`ResourceDef::crd_version`]
//! of its embedded CRD; it is parsed on first use and cached for the life of the process
//! ([`for_resource`]). The raw schema is also exposed as JSON ([`crd_schema_json`]) for
//! the OpenAPI documents.
//!
//! Only the schema keywords the algorithm implements are accepted: `type`, `format`,
//! `nullable`, `default`, `enum`, `required`, `properties`, `additionalProperties`
//! (schema form), `items` (single schema), `maxLength`, `minLength`, `maximum`,
//! `minimum`, `exclusiveMaximum`, `exclusiveMinimum`, `maxItems`, `minItems`,
//! `maxProperties`, `minProperties`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-int-or-string`, `x-kubernetes-list-type: atomic`,
//! `x-kubernetes-map-type` and the documentation keywords. Anything else (`pattern`,
//! `allOf`, CEL rules, …) is refused by [`Schema::from_json`], so a future CRD that needs
//! more fails the tests instead of being silently under-validated.

mod prune;
mod validate;

pub(crate) use validate::go_float;

#[cfg(test)]
mod pass_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{LazyLock, OnceLock};

use serde_json::Value;

use crate::resources::{ResourceDef, RESOURCES};
use crate::status::StatusCause;

/// The outcome of [`Schema::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// Field errors (422 `Invalid` when non-empty). Their order is deterministic:
    /// kube-openapi's validator order per value, fields in document order (Go's own
    /// order follows map iteration and varies).
    pub causes: Vec<StatusCause>,
    /// Paths of the fields that were pruned because the schema does not know them,
    /// sorted, in apiextensions' notation (`spec.foo`, `results[0].bar`). With
    /// `fieldValidation=Strict` each is an `unknown field "<path>"` error, with `Warn` a
    /// warning.
    pub unknown_fields: Vec<String>,
}

impl Validation {
    /// True when there are no field errors (pruned fields are not errors).
    pub fn is_valid(&self) -> bool {
        self.causes.is_empty()
    }
}

/// A JSON type of the OpenAPI `type` keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
}

impl Type {
    /// The keyword's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Integer => "integer",
            Type::Number => "number",
            Type::Boolean => "boolean",
            Type::Object => "object",
            Type::Array => "array",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Type::String,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            "object" => Type::Object,
            "array" => Type::Array,
            _ => return None,
        })
    }
}

/// One node of a structural schema (the root node describes the whole object).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    ty: Option<Type>,
    format: Option<String>,
    nullable: bool,
    int_or_string: bool,
    preserve_unknown_fields: bool,
    default: Option<Value>,
    enumeration: Option<Vec<Value>>,
    required: Vec<String>,
    properties: BTreeMap<String, Schema>,
    additional_properties: Option<Box<Schema>>,
    items: Option<Box<Schema>>,
    max_length: Option<u64>,
    min_length: Option<u64>,
    maximum: Option<f64>,
    minimum: Option<f64>,
    exclusive_maximum: bool,
    exclusive_minimum: bool,
    max_items: Option<u64>,
    min_items: Option<u64>,
    max_properties: Option<u64>,
    min_properties: Option<u64>,
    /// Whether this node or one below it has a `default` (defaulting skips the subtrees
    /// that have none: there it changes nothing).
    defaults_below: bool,
}

/// Why a schema could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A keyword prext does not implement.
    #[error("{path}: unsupported schema keyword {keyword:?}")]
    Unsupported { path: String, keyword: String },
    /// A keyword whose value has the wrong shape.
    #[error("{path}: invalid value for {keyword:?}")]
    Invalid { path: String, keyword: String },
    /// The CRD has no such version, or the version has no `openAPIV3Schema`.
    #[error("CRD {crd} has no openAPIV3Schema for version {version}")]
    MissingVersion { crd: String, version: String },
    /// The embedded CRD is not valid YAML.
    #[error("CRD is not valid YAML: {0}")]
    Yaml(String),
    /// A computed resource has no CRD.
    #[error("a computed resource has no CRD")]
    NotStored,
}

/// Keywords that only document a schema and never change how a value is treated.
const DOC_KEYWORDS: &[&str] = &[
    "description",
    "title",
    "example",
    "externalDocs",
    "x-kubernetes-map-type",
    "x-kubernetes-list-map-keys",
];

impl Schema {
    /// The node's `type`, if any.
    pub fn type_(&self) -> Option<Type> {
        self.ty
    }

    /// The schema of property `name`, if declared.
    pub fn property(&self, name: &str) -> Option<&Schema> {
        self.properties.get(name)
    }

    /// The schema of array items, if declared.
    pub fn items(&self) -> Option<&Schema> {
        self.items.as_deref()
    }

    /// The schema of the values of a map (`additionalProperties`), if declared.
    pub fn additional_properties(&self) -> Option<&Schema> {
        self.additional_properties.as_deref()
    }

    /// Reads a structural schema from its JSON form, refusing keywords outside the
    /// supported subset (see the module documentation).
    pub fn from_json(v: &Value) -> Result<Self, SchemaError> {
        parse_node(v, "")
    }

    /// Prunes, defaults and validates `obj` as a resource of this schema, the way
    /// apiextensions-apiserver treats a custom resource it decodes and then validates:
    ///
    /// 1. unknown fields are removed (except under `x-kubernetes-preserve-unknown-fields`)
    ///    and their paths recorded in [`Validation::unknown_fields`];
    /// 2. `null` values of fields that are neither nullable nor defaulted are removed;
    /// 3. `default`s are applied;
    /// 4. the object is checked against the schema: `type`, `required`, `enum`, lengths,
    ///    bounds and item/property counts. As in Kubernetes, a JSON number with an
    ///    integral value (`2.0`) is accepted where an integer is required; prext also
    ///    rewrites it as an integer (`2`), which is how Kubernetes would serialize it.
    ///
    /// The top-level `apiVersion`, `kind` and `metadata` are left alone: they are checked
    /// by the generic registry code (see `crate::meta`).
    pub fn validate(&self, obj: &mut Value) -> Validation {
        let mut unknown_fields = Vec::new();
        // Passes 1 and 2 in one walk.
        prune::prune_root(obj, self, &mut unknown_fields);
        unknown_fields.sort();
        prune::default_root(obj, self);
        let causes = validate::check_root(obj, self);
        Validation {
            causes,
            unknown_fields,
        }
    }
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn parse_node(v: &Value, path: &str) -> Result<Schema, SchemaError> {
    let obj = v.as_object().ok_or_else(|| SchemaError::Invalid {
        path: path.to_string(),
        keyword: "(schema)".into(),
    })?;
    let invalid = |keyword: &str| SchemaError::Invalid {
        path: path.to_string(),
        keyword: keyword.to_string(),
    };
    let mut s = Schema::default();
    for (key, val) in obj {
        let k = key.as_str();
        let count = || val.as_u64().ok_or_else(|| invalid(k));
        let flag = || val.as_bool().ok_or_else(|| invalid(k));
        match k {
            _ if DOC_KEYWORDS.contains(&k) => {}
            "type" => {
                let t = val.as_str().ok_or_else(|| invalid(k))?;
                s.ty = Some(Type::parse(t).ok_or_else(|| invalid(k))?);
            }
            "format" => s.format = Some(val.as_str().ok_or_else(|| invalid(k))?.to_string()),
            "nullable" => s.nullable = flag()?,
            "default" => s.default = Some(val.clone()),
            "enum" => s.enumeration = Some(val.as_array().ok_or_else(|| invalid(k))?.clone()),
            "required" => {
                let names = val.as_array().ok_or_else(|| invalid(k))?;
                s.required = names
                    .iter()
                    .map(|n| n.as_str().map(str::to_string).ok_or_else(|| invalid(k)))
                    .collect::<Result<_, _>>()?;
            }
            "properties" => {
                for (name, sub) in val.as_object().ok_or_else(|| invalid(k))? {
                    let sub = parse_node(sub, &child_path(path, name))?;
                    s.properties.insert(name.clone(), sub);
                }
            }
            "additionalProperties" if val.is_object() => {
                let sub = parse_node(val, &child_path(path, "additionalProperties"))?;
                s.additional_properties = Some(Box::new(sub));
            }
            "items" if val.is_object() => {
                s.items = Some(Box::new(parse_node(val, &format!("{path}[]"))?));
            }
            "maxLength" => s.max_length = Some(count()?),
            "minLength" => s.min_length = Some(count()?),
            "maxItems" => s.max_items = Some(count()?),
            "minItems" => s.min_items = Some(count()?),
            "maxProperties" => s.max_properties = Some(count()?),
            "minProperties" => s.min_properties = Some(count()?),
            "maximum" => s.maximum = Some(val.as_f64().ok_or_else(|| invalid(k))?),
            "minimum" => s.minimum = Some(val.as_f64().ok_or_else(|| invalid(k))?),
            "exclusiveMaximum" => s.exclusive_maximum = flag()?,
            "exclusiveMinimum" => s.exclusive_minimum = flag()?,
            "x-kubernetes-preserve-unknown-fields" => s.preserve_unknown_fields = flag()?,
            "x-kubernetes-int-or-string" => s.int_or_string = flag()?,
            // `set` and `map` lists carry uniqueness rules prext does not enforce.
            "x-kubernetes-list-type" if val.as_str() == Some("atomic") => {}
            _ => {
                return Err(SchemaError::Unsupported {
                    path: path.to_string(),
                    keyword: key.clone(),
                })
            }
        }
    }
    s.defaults_below = s.default.is_some()
        || s.properties.values().any(|p| p.defaults_below)
        || [&s.additional_properties, &s.items]
            .into_iter()
            .any(|sub| sub.as_deref().is_some_and(|sub| sub.defaults_below));
    Ok(s)
}

/// A kind's CRD, read once: the served version's entry and its schema.
struct Loaded {
    /// The `spec.versions[]` entry of `crd_version` (printer columns live here).
    version: Value,
    /// `schema.openAPIV3Schema` of that version.
    schema_json: Value,
    schema: Schema,
}

fn load(def: &ResourceDef) -> Result<Loaded, SchemaError> {
    let (crd, crd_version) = def.crd().ok_or(SchemaError::NotStored)?;
    let crd: Value = serde_norway::from_str(crd).map_err(|e| SchemaError::Yaml(e.to_string()))?;
    let missing = || SchemaError::MissingVersion {
        crd: crd["metadata"]["name"].as_str().unwrap_or("?").to_string(),
        version: crd_version.to_string(),
    };
    let version = crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == crd_version))
        .ok_or_else(missing)?
        .clone();
    let schema_json = version["schema"]["openAPIV3Schema"].clone();
    if !schema_json.is_object() {
        return Err(missing());
    }
    let schema = Schema::from_json(&schema_json)?;
    Ok(Loaded {
        version,
        schema_json,
        schema,
    })
}

/// One lazily filled slot per entry of [`RESOURCES`].
static LOADED: LazyLock<Vec<OnceLock<Loaded>>> =
    LazyLock::new(|| RESOURCES.iter().map(|_| OnceLock::new()).collect());

/// The position of `def` in [`RESOURCES`]: by address, else by group, version and kind.
///
/// # Panics
///
/// If `def` is not (a copy of) an entry of [`RESOURCES`]: a programming error.
pub(crate) fn resource_index(def: &ResourceDef) -> usize {
    RESOURCES
        .iter()
        .position(|r| std::ptr::eq(r, def))
        .or_else(|| {
            RESOURCES
                .iter()
                .position(|r| (r.group, r.version, r.kind) == (def.group, def.version, def.kind))
        })
        .unwrap_or_else(|| panic!("{}/{} is not in RESOURCES", def.api_version(), def.kind))
}

/// The cached CRD data of `def`.
///
/// # Panics
///
/// If `def` is not an entry of [`RESOURCES`], or if its embedded CRD cannot be read:
/// both are programming errors, and every entry is loaded by the tests.
fn loaded(def: &ResourceDef) -> &'static Loaded {
    let index = resource_index(def);
    LOADED[index].get_or_init(|| {
        load(&RESOURCES[index])
            .unwrap_or_else(|e| panic!("embedded CRD of {}/{}: {e}", def.api_version(), def.kind))
    })
}

/// The structural schema of a served kind, parsed once from its CRD.
///
/// # Panics
///
/// If `def` is not an entry of [`RESOURCES`] (a programming error).
pub fn for_resource(def: &'static ResourceDef) -> &'static Schema {
    &loaded(def).schema
}

/// The kind's raw `openAPIV3Schema` as JSON, as published in the OpenAPI documents.
///
/// # Panics
///
/// If `def` is not an entry of [`RESOURCES`] (a programming error).
pub fn crd_schema_json(def: &'static ResourceDef) -> &'static Value {
    &loaded(def).schema_json
}

/// The CRD's `spec.versions[]` entry for the kind's `crd_version` (printer columns).
pub(crate) fn crd_version_json(def: &ResourceDef) -> &'static Value {
    &loaded(def).version
}

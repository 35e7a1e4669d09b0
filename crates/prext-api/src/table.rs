//! The `meta.k8s.io/v1` Table view of a kind (`kubectl get`), built like
//! apiextensions-apiserver's table convertor
//! (`apiextensions-apiserver/pkg/registry/customresource/tableconvertor`): a leading
//! `Name` column, then the CRD's `additionalPrinterColumns` in order.
//!
//! Cells follow the convertor's `cellForJSONValue`: `integer` columns hold JSON integers
//! (a float is truncated), `number` columns floats, `boolean` columns booleans, `string`
//! columns strings (a non-string value is printed as client-go's JSONPath printer would),
//! `date` columns the age preformatted as kubectl shows it (`15h`, `<unknown>`,
//! `<invalid>`), and a missing value or one of the wrong type is `null`.
//!
//! Columns whose `priority` is not 0 (Kind and Name of the scope, Kyverno's Uid and Hash)
//! are still sent on every row: it is kubectl that hides them unless `-o wide` is given.

use std::sync::{LazyLock, OnceLock};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::jsonpath::JsonPath;
use crate::resources::{ResourceDef, RESOURCES};
use crate::schema;

/// `metav1.ObjectMeta`'s documentation of `name`, which apiextensions uses as the
/// description of the `Name` column.
const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when \
creating resources, although some resources may allow a client to request the generation of \
an appropriate name automatically. Name is primarily intended for creation idempotence and \
configuration definition. Cannot be updated. More info: \
https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// One column of a kind's Table (`metav1.TableColumnDefinition` plus where its value
/// comes from). Serializes as a `columnDefinitions` entry.
///
/// A column with a non-zero `priority` is shown by kubectl only with `-o wide`; the
/// server includes its cells regardless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// The header (kubectl upper-cases it).
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `name` for the Name column (kubectl's `--show-kind` prefixes it), else the CRD's.
    pub format: String,
    /// The CRD's description, or apiextensions' default text.
    pub description: String,
    /// 0 for default columns; other values are shown only with `-o wide`.
    pub priority: i32,
    /// The JSONPath the cell is read from (`.metadata.name` for the Name column).
    #[serde(skip)]
    pub json_path: String,
    #[serde(skip)]
    parsed: JsonPath,
}

/// One lazily built column list per entry of [`RESOURCES`].
static COLUMNS: LazyLock<Vec<OnceLock<Vec<Column>>>> =
    LazyLock::new(|| RESOURCES.iter().map(|_| OnceLock::new()).collect());

/// The kind's Table columns: `Name`, then the CRD's `additionalPrinterColumns`.
///
/// # Panics
///
/// If `def` is not an entry of [`RESOURCES`] or its CRD has an unparsable column path
/// (programming errors; every embedded CRD is covered by the tests).
pub fn columns(def: &'static ResourceDef) -> &'static [Column] {
    COLUMNS[schema::resource_index(def)].get_or_init(|| build_columns(def))
}

fn build_columns(def: &ResourceDef) -> Vec<Column> {
    let name = Column {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        description: NAME_DESCRIPTION.into(),
        priority: 0,
        json_path: ".metadata.name".into(),
        parsed: parse_embedded(def, ".metadata.name"),
    };
    let crd_columns = schema::crd_version_json(def)["additionalPrinterColumns"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let text = |col: &Value, key: &str| col[key].as_str().unwrap_or_default().to_string();
    let extra = crd_columns.iter().map(|col| {
        let json_path = text(col, "jsonPath");
        let description = match text(col, "description") {
            d if d.is_empty() => {
                format!("Custom resource definition column (in JSONPath format): {json_path}")
            }
            d => d,
        };
        Column {
            name: text(col, "name"),
            type_: text(col, "type"),
            format: text(col, "format"),
            description,
            priority: col["priority"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0),
            parsed: parse_embedded(def, &json_path),
            json_path,
        }
    });
    std::iter::once(name).chain(extra).collect()
}

fn parse_embedded(def: &ResourceDef, path: &str) -> JsonPath {
    JsonPath::parse(path).unwrap_or_else(|e| panic!("printer column {path:?} of {}: {e}", def.kind))
}

/// The `columnDefinitions` array of a Table of this kind.
pub fn column_definitions(def: &'static ResourceDef) -> Value {
    Value::Array(
        columns(def)
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect(),
    )
}

/// The cells of `obj`'s row, one per [`columns`] entry; `now` is the reference for ages.
pub fn cells(def: &'static ResourceDef, obj: &Value, now: Timestamp) -> Vec<Value> {
    columns(def)
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let value = col.parsed.eval(obj);
            if i == 0 {
                // `m.GetName()`: a missing name is the empty string.
                return Value::from(value.and_then(Value::as_str).unwrap_or_default());
            }
            match value {
                None | Some(Value::Null) => Value::Null,
                Some(v) => cell(&col.type_, v, now),
            }
        })
        .collect()
}

/// apiextensions' `cellForJSONValue` (and JSONPath printing for `string` columns).
fn cell(type_: &str, v: &Value, now: Timestamp) -> Value {
    match (type_, v) {
        ("integer", Value::Number(n)) => match n.as_i64() {
            Some(i) => Value::from(i),
            // Go's int64(float64): truncation (saturating here).
            None => Value::from(n.as_f64().unwrap_or_default() as i64),
        },
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        ("boolean", Value::Bool(b)) => Value::Bool(*b),
        ("string", Value::String(s)) => Value::String(s.clone()),
        ("string", Value::Number(n)) => Value::String(match n.as_i64() {
            Some(i) => i.to_string(),
            None => schema::go_float(n.as_f64().unwrap_or_default()),
        }),
        ("string", Value::Bool(b)) => Value::String(b.to_string()),
        ("string", composite) => Value::String(composite.to_string()),
        ("date", Value::String(s)) => Value::String(age(s, now)),
        _ => Value::Null,
    }
}

/// Seconds from the Unix epoch to `0001-01-01T00:00:00Z`, Go's zero `time.Time`.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// `metatable.ConvertToHumanReadableDateType` of a timestamp string.
fn age(s: &str, now: Timestamp) -> String {
    if s.is_empty() || s == "null" {
        return "<unknown>".into();
    }
    match s.parse::<Timestamp>() {
        Err(_) => "<invalid>".into(),
        Ok(t) if t.as_second() == GO_ZERO_TIME && t.subsec_nanosecond() == 0 => "<unknown>".into(),
        Ok(t) => crate::duration::human(now.duration_since(t).as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    fn polr() -> &'static ResourceDef {
        find("wgpolicyk8s.io", "v1alpha2", "policyreports").expect("served")
    }

    fn ephr() -> &'static ResourceDef {
        find("reports.kyverno.io", "v1", "ephemeralreports").expect("served")
    }

    fn now() -> Timestamp {
        "2024-01-02T18:04:05Z".parse().expect("timestamp")
    }

    #[test]
    fn policy_report_columns_match_apiextensions() {
        let defs = column_definitions(polr());
        assert_eq!(
            defs[0],
            json!({"name": "Name", "type": "string", "format": "name",
                   "description": NAME_DESCRIPTION, "priority": 0})
        );
        let summary: Vec<_> = defs
            .as_array()
            .expect("array")
            .iter()
            .map(|d| {
                (
                    d["name"].as_str().unwrap_or_default(),
                    d["type"].as_str().unwrap_or_default(),
                    d["priority"].as_i64(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("Name", "string", Some(0)),
                ("Kind", "string", Some(0)),
                ("Name", "string", Some(0)),
                ("Pass", "integer", Some(0)),
                ("Fail", "integer", Some(0)),
                ("Warn", "integer", Some(0)),
                ("Error", "integer", Some(0)),
                ("Skip", "integer", Some(0)),
                ("Age", "date", Some(0)),
            ]
        );
        assert_eq!(
            defs[8]["description"],
            "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp"
        );
        assert!(defs[1].get("jsonPath").is_none());
    }

    #[test]
    fn priorities_come_from_the_crd() {
        let reps = find("openreports.io", "v1alpha1", "reports").expect("served");
        let wide: Vec<_> = columns(reps)
            .iter()
            .filter(|c| c.priority != 0)
            .map(|c| c.json_path.as_str())
            .collect();
        assert_eq!(wide, [".scope.kind", ".scope.name"]);
        let wide: Vec<_> = columns(ephr())
            .iter()
            .filter(|c| c.priority != 0)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(wide, ["Uid", "Hash"]);
    }

    #[test]
    fn cells_follow_column_types() {
        let obj = json!({
            "metadata": {"name": "polr-ns-default", "creationTimestamp": "2024-01-02T03:04:05Z"},
            "scope": {"kind": "Deployment", "name": 7},
            "summary": {"pass": 12, "fail": 1.9, "warn": "3", "error": null}
        });
        assert_eq!(
            cells(polr(), &obj, now()),
            vec![
                json!("polr-ns-default"),
                json!("Deployment"),
                json!("7"),
                json!(12),
                json!(1),
                Value::Null,
                Value::Null,
                Value::Null,
                json!("15h"),
            ]
        );
    }

    #[test]
    fn ephemeral_report_cells_read_escaped_label_keys() {
        let obj = json!({
            "metadata": {
                "name": "e",
                "labels": {"audit.kyverno.io/source": "admission",
                           "audit.kyverno.io/resource.kind": "Pod",
                           "audit.kyverno.io/resource.uid": "u-1"},
                "annotations": {"audit.kyverno.io/resource.name": "nginx"}
            },
            "spec": {"summary": {"pass": 2}}
        });
        let row = cells(ephr(), &obj, now());
        let names: Vec<_> = columns(ephr()).iter().map(|c| c.name.as_str()).collect();
        let by_name = |n: &str| row[names.iter().position(|x| *x == n).expect("column")].clone();
        assert_eq!(by_name("Source"), json!("admission"));
        assert_eq!(by_name("Group"), Value::Null);
        assert_eq!(by_name("Kind"), json!("Pod"));
        assert_eq!(by_name("Owner"), json!("nginx"));
        assert_eq!(by_name("Pass"), json!(2));
        assert_eq!(by_name("Uid"), json!("u-1"));
        assert_eq!(by_name("Age"), Value::Null);
        assert_eq!(row.len(), names.len());
    }

    #[test]
    fn ages_are_human_durations() {
        let n = now();
        assert_eq!(age("2024-01-02T18:03:50Z", n), "15s");
        assert_eq!(age("2024-01-02T18:03:50.999Z", n), "14s");
        assert_eq!(age("2023-12-28T18:04:05Z", n), "5d");
        assert_eq!(age("2024-01-02T18:04:06Z", n), "0s");
        assert_eq!(age("2024-01-02T19:00:00Z", n), "<invalid>");
        assert_eq!(age("yesterday", n), "<invalid>");
        assert_eq!(age("", n), "<unknown>");
        assert_eq!(age("0001-01-01T00:00:00Z", n), "<unknown>");
    }

    #[test]
    fn missing_name_is_empty_and_every_kind_has_name_first() {
        for def in RESOURCES {
            let cols = columns(def);
            assert_eq!(cols[0].format, "name");
            assert!(cols.iter().any(|c| c.name == "Age" && c.type_ == "date"));
            let row = cells(def, &json!({}), now());
            assert_eq!(row.len(), cols.len());
            assert_eq!(row[0], json!(""));
        }
    }
}

use std::path::PathBuf;

use proptest::prelude::*;
use serde::Deserialize as _;
use serde_json::{json, Value};

use super::validate::go_float;
use super::*;
use crate::resources::{find, find_kind};

fn def(group: &str, version: &str, plural: &str) -> &'static ResourceDef {
    find(group, version, plural).expect("served resource")
}

pub(super) fn polr() -> &'static ResourceDef {
    def("wgpolicyk8s.io", "v1alpha2", "policyreports")
}

pub(super) fn ephr() -> &'static ResourceDef {
    def("reports.kyverno.io", "v1", "ephemeralreports")
}

fn validate(d: &'static ResourceDef, mut obj: Value) -> (Validation, Value) {
    let v = for_resource(d).validate(&mut obj);
    (v, obj)
}

fn messages(v: &Validation) -> Vec<(String, String, String)> {
    v.causes
        .iter()
        .map(|c| (c.reason.clone(), c.field.clone(), c.message.clone()))
        .collect()
}

pub(super) fn report(results: Value) -> Value {
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": "r", "namespace": "default"},
        "results": results,
        "summary": {"pass": 1, "fail": 0}
    })
}

#[test]
fn every_served_kind_has_a_schema() {
    for d in RESOURCES {
        let s = for_resource(d);
        assert_eq!(s.type_(), Some(Type::Object), "{}", d.kind);
        let parent = match d.layout().expect("stored kind") {
            crate::resources::ReportLayout::TopLevel => s,
            crate::resources::ReportLayout::Spec => s.property("spec").expect("spec"),
        };
        let result = parent
            .property("results")
            .and_then(Schema::items)
            .expect("results[]");
        assert_eq!(
            result.property("policy").and_then(Schema::type_),
            Some(Type::String)
        );
        assert!(crd_schema_json(d)["properties"]["metadata"].is_object());
    }
}

#[test]
fn compatibility_group_reuses_the_wgpolicy_schema() {
    let demo = def("prext.demo", "v1alpha1", "policyreports");
    assert_eq!(for_resource(demo), for_resource(polr()));
    assert_eq!(crd_schema_json(demo), crd_schema_json(polr()));
}

#[test]
fn realistic_report_is_valid_and_untouched() {
    // From the KubeArmor adapter sample: nanos > 999,999,999 is only documented, not
    // constrained, by the CRD; Trivy's adapter writes negative nanos and empty policies.
    let obj = report(json!([
        {"category": "MatchedPolicy", "policy": "ksp", "result": "fail", "severity": "medium",
         "properties": {"pid": "438", "tags": ""},
         "timestamp": {"nanos": 1_637_497_885_i64, "seconds": 1_637_497_885_i64}},
        {"policy": "", "scored": true, "timestamp": {"nanos": -879_126_275, "seconds": 1}},
    ]));
    let (v, after) = validate(polr(), obj.clone());
    assert_eq!(v, Validation::default());
    assert_eq!(after, obj);
}

#[test]
fn openreports_sample_with_legacy_kind_validates_as_report() {
    let d = def("openreports.io", "v1alpha1", "reports");
    let obj = json!({
        "apiVersion": "openreports.io/v1alpha1", "kind": "PolicyReport",
        "metadata": {"name": "falco-alerts-policy", "namespace": "my-namespace"},
        "summary": {"fail": 1},
        "source": "falco",
        "results": [{"policy": "Change thread namespace", "result": "fail", "scored": false,
                     "resources": [{"apiVersion": "v1", "kind": "Pod", "name": "a-pod"}],
                     "properties": {"container.id": "0f8d7e2a3296", "severity": "low"}}]
    });
    let (v, _) = validate(d, obj);
    assert!(v.is_valid(), "{v:?}");
    assert!(v.unknown_fields.is_empty());
}

#[test]
fn unknown_fields_are_pruned_and_reported_sorted() {
    let mut obj = report(json!([{"policy": "p", "bar": 1, "resources": [{"kind": "Pod", "x": {}}]}]));
    obj["status"] = json!({"phase": "done"});
    obj["summary"]["total"] = json!(3);
    let (v, after) = validate(polr(), obj);
    assert!(v.is_valid());
    assert_eq!(
        v.unknown_fields,
        [
            "results[0].bar",
            "results[0].resources[0].x",
            "status",
            "summary.total"
        ]
    );
    assert_eq!(
        after["results"][0],
        json!({"policy": "p", "resources": [{"kind": "Pod"}]})
    );
    assert!(after.get("status").is_none());
}

#[test]
fn spec_layout_prunes_under_spec() {
    let obj = json!({"apiVersion": "reports.kyverno.io/v1", "kind": "EphemeralReport",
        "metadata": {"name": "e"},
        "spec": {"foo": 1, "owner": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"}}});
    let (v, _) = validate(ephr(), obj);
    assert!(v.is_valid());
    assert_eq!(v.unknown_fields, ["spec.foo"]);
}

#[test]
fn metadata_api_version_and_kind_are_left_to_the_registry() {
    let obj = json!({"apiVersion": 5, "kind": ["x"], "metadata": {"anything": {"goes": true}}});
    let (v, after) = validate(polr(), obj.clone());
    assert_eq!(v, Validation::default());
    assert_eq!(after, obj);
}

#[test]
fn type_errors_use_kubernetes_messages() {
    let obj = report(json!([{"policy": "p", "scored": "yes"}]));
    let (v, _) = validate(polr(), obj);
    assert_eq!(
        messages(&v),
        [(
            "FieldValueTypeInvalid".into(),
            "results[0].scored".into(),
            r#"Invalid value: "string": results[0].scored in body must be of type boolean: "string""#.into()
        )]
    );
}

#[test]
fn enum_errors_list_the_supported_values() {
    let obj = report(json!([{"policy": "p", "result": "ok"}, {"policy": "q", "severity": 3}]));
    let (v, _) = validate(polr(), obj);
    assert_eq!(
        messages(&v),
        [
            (
                "FieldValueNotSupported".into(),
                "results[0].result".into(),
                r#"Unsupported value: "ok": supported values: "pass", "fail", "warn", "error", "skip""#
                    .into()
            ),
            (
                "FieldValueTypeInvalid".into(),
                "results[1].severity".into(),
                r#"Invalid value: "integer": results[1].severity in body must be of type string: "integer""#
                    .into()
            ),
            (
                "FieldValueNotSupported".into(),
                "results[1].severity".into(),
                r#"Unsupported value: 3: supported values: "critical", "high", "low", "medium", "info""#
                    .into()
            ),
        ]
    );
}

#[test]
fn required_fields_are_reported_at_their_path() {
    let obj = report(json!([{"message": "no policy", "timestamp": {"seconds": 1}}]));
    let (v, _) = validate(polr(), obj);
    let fields: Vec<_> = v
        .causes
        .iter()
        .map(|c| (c.reason.as_str(), c.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("FieldValueRequired", "results[0].timestamp.nanos"),
            ("FieldValueRequired", "results[0].policy")
        ]
    );
    assert!(v.causes.iter().all(|c| c.message == "Required value"));

    let (v, _) = validate(ephr(), json!({"metadata": {"name": "e"}}));
    assert_eq!(
        messages(&v),
        [(
            "FieldValueRequired".into(),
            "spec".into(),
            "Required value".into()
        )]
    );
    let (v, _) = validate(
        ephr(),
        json!({"spec": {"owner": {"kind": "Pod", "name": "p", "uid": "u"}}}),
    );
    assert_eq!(v.causes.len(), 1);
    assert_eq!(v.causes[0].field, "spec.owner.apiVersion");
}

#[test]
fn map_values_are_checked_against_additional_properties() {
    let obj = report(json!([{"policy": "p", "properties": {"ok": "1", "pid": 438}}]));
    let (v, _) = validate(polr(), obj);
    assert_eq!(
        messages(&v),
        [(
            "FieldValueTypeInvalid".into(),
            "results[0].properties.pid".into(),
            r#"Invalid value: "integer": results[0].properties.pid in body must be of type string: "integer""#.into()
        )]
    );
}

#[test]
fn nulls_are_dropped_unless_they_cannot_be() {
    let obj = report(json!([{"policy": "p", "message": null, "properties": {"a": null}}, null]));
    let (v, after) = validate(polr(), obj);
    assert_eq!(after["results"][0], json!({"policy": "p", "properties": {}}));
    // A null array item has nowhere to go: kube reports it.
    assert_eq!(
        messages(&v),
        [(
            "FieldValueTypeInvalid".into(),
            "results[1]".into(),
            r#"Invalid value: "null": results[1] in body must be of type object: "null""#.into()
        )]
    );
    // A null required field is pruned first, then reported missing.
    let (v, _) = validate(polr(), report(json!([{"policy": null}])));
    assert_eq!(v.causes[0].field, "results[0].policy");
    assert_eq!(v.causes[0].reason, "FieldValueRequired");
}

#[test]
fn integral_floats_count_as_integers_and_are_rewritten() {
    let mut obj = report(json!([]));
    obj["summary"] = json!({"pass": 2.0, "fail": 2.5, "warn": 1e3});
    let (v, after) = validate(polr(), obj);
    assert_eq!(after["summary"]["pass"], json!(2));
    assert!(after["summary"]["pass"].is_i64());
    assert_eq!(after["summary"]["warn"], json!(1000));
    assert_eq!(
        messages(&v),
        [(
            "FieldValueTypeInvalid".into(),
            "summary.fail".into(),
            r#"Invalid value: "number": summary.fail in body must be of type integer: "number""#.into()
        )]
    );
}

#[test]
fn formatted_integers_keep_kube_openapi_wording() {
    // `nanos` is `type: integer, format: int32`: kube-openapi names the format.
    let obj = report(json!([{"policy": "p", "timestamp": {"nanos": true, "seconds": "1"}}]));
    let (v, _) = validate(polr(), obj);
    assert_eq!(
        messages(&v),
        [
            (
                "FieldValueTypeInvalid".into(),
                "results[0].timestamp.nanos".into(),
                r#"Invalid value: "": results[0].timestamp.nanos in body must be of type int32: """#.into()
            ),
            (
                "FieldValueTypeInvalid".into(),
                "results[0].timestamp.seconds".into(),
                r#"Invalid value: "string": results[0].timestamp.seconds in body must be of type integer: "string""#.into()
            ),
        ]
    );
}

#[test]
fn wrong_shapes_are_pruned_then_rejected() {
    let obj = report(json!([{"policy": {"name": "p"}}]));
    let (v, _) = validate(polr(), obj);
    assert_eq!(v.unknown_fields, ["results[0].policy.name"]);
    assert_eq!(
        v.causes[0].message,
        r#"Invalid value: "object": results[0].policy in body must be of type string: "object""#
    );
    let (v, _) = validate(polr(), report(json!({"policy": "p"})));
    assert_eq!(v.causes[0].field, "results");
    assert_eq!(v.unknown_fields, ["results.policy"]);
}

pub(super) fn custom(schema: Value) -> Schema {
    Schema::from_json(&schema).expect("supported schema")
}

#[test]
fn defaults_bounds_and_lengths() {
    let s = custom(json!({"type": "object", "properties": {
        "mode": {"type": "string", "default": "audit", "maxLength": 5},
        "name": {"type": "string", "minLength": 2},
        "count": {"type": "integer", "minimum": 1, "maximum": 3},
        "ratio": {"type": "number", "maximum": 1.5, "exclusiveMaximum": true},
        "tags": {"type": "array", "maxItems": 1, "minItems": 1, "items": {"type": "string"}},
        "note": {"type": "string", "nullable": true},
        "port": {"x-kubernetes-int-or-string": true},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                 "properties": {"known": {"type": "object", "properties": {}}}}
    }}));
    let mut obj = json!({"note": null, "port": "http", "free": {"x": 1, "known": {"y": 2}}});
    let v = s.validate(&mut obj);
    assert!(v.is_valid(), "{v:?}");
    assert_eq!(v.unknown_fields, ["free.known.y"]);
    assert_eq!(
        obj,
        json!({"note": null, "port": "http", "free": {"x": 1, "known": {}}, "mode": "audit"})
    );

    let mut obj =
        json!({"mode": "enforce", "name": "a", "count": 7, "ratio": 1.5, "tags": ["a", "b"], "port": true});
    let v = s.validate(&mut obj);
    let got: Vec<_> = v
        .causes
        .iter()
        .map(|c| (c.reason.as_str(), c.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("FieldValueTooLong", "Too long: may not be more than 5 bytes"),
            (
                "FieldValueInvalid",
                r#"Invalid value: "a": name in body should be at least 2 chars long"#
            ),
            (
                "FieldValueInvalid",
                "Invalid value: 7: count in body should be less than or equal to 3"
            ),
            (
                "FieldValueInvalid",
                "Invalid value: 1.5: ratio in body should be less than 1.5"
            ),
            ("FieldValueTooMany", "Too many: 2: must have at most 1 items"),
            (
                "FieldValueTypeInvalid",
                r#"Invalid value: "boolean": port in body must be of type integer,string: "boolean""#
            ),
        ]
    );
}

#[test]
fn unsupported_keywords_are_refused() {
    for (kw, schema) in [
        ("pattern", json!({"type": "string", "pattern": "^a$"})),
        ("allOf", json!({"type": "object", "allOf": [{}]})),
        (
            "additionalProperties",
            json!({"type": "object", "additionalProperties": false}),
        ),
        (
            "x-kubernetes-list-type",
            json!({"type": "array", "x-kubernetes-list-type": "set"}),
        ),
        (
            "x-kubernetes-validations",
            json!({"type": "object", "x-kubernetes-validations": []}),
        ),
    ] {
        let nested = json!({"type": "object", "properties": {"f": schema}});
        assert_eq!(
            Schema::from_json(&nested),
            Err(SchemaError::Unsupported {
                path: "f".into(),
                keyword: kw.into()
            })
        );
    }
    assert!(matches!(
        Schema::from_json(&json!({"type": "text"})),
        Err(SchemaError::Invalid { .. })
    ));
}

#[test]
fn go_float_formatting() {
    for (f, s) in [
        (1e6, "1e+06"),
        (123_456.0, "123456"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5, "1.5"),
        (0.0, "0"),
        (1e21, "1e+21"),
        (-2.5e-7, "-2.5e-07"),
        (1.234_567e6, "1.234567e+06"),
    ] {
        assert_eq!(go_float(f), s);
    }
}

/// The repository's own report files: the README's `examples/` and the tests' and
/// benchmarks' `testdata/`, at the root of the repository (two levels above this crate).
fn repository_report_files() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut paths = Vec::new();
    for dir in ["examples", "testdata"] {
        let dir = root.join(dir);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        paths.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json")),
        );
    }
    paths.sort();
    paths
}

/// The served kind that validates a file's object: its own, or for the kube-bench adapter's
/// wgpolicyk8s.io/v1alpha1 (not served) the v1alpha2 schema it converts to.
fn file_kind(obj: &Value) -> Option<&'static ResourceDef> {
    let api_version = match obj["apiVersion"].as_str()? {
        "wgpolicyk8s.io/v1alpha1" => "wgpolicyk8s.io/v1alpha2",
        other => other,
    };
    find_kind(api_version, obj["kind"].as_str()?)
}

#[test]
fn examples_and_testdata_are_valid() {
    let files = repository_report_files();
    assert!(
        files.len() >= 15,
        "examples/ and testdata/ hold {} files",
        files.len()
    );
    let mut checked = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).expect("utf-8 file");
        let text = text.trim_start_matches('\u{feff}');
        let mut in_file = 0;
        for doc in serde_norway::Deserializer::from_str(text) {
            let doc = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let items = match doc["kind"].as_str() {
                Some("List") => doc["items"].as_array().cloned().unwrap_or_default(),
                _ => vec![doc],
            };
            for mut item in items {
                let d = file_kind(&item)
                    .unwrap_or_else(|| panic!("{}: {} is not a served kind", path.display(), item["kind"]));
                let v = for_resource(d).validate(&mut item);
                assert!(v.is_valid(), "{}: {:?}", path.display(), v.causes);
                assert!(
                    v.unknown_fields.is_empty(),
                    "{}: {:?}",
                    path.display(),
                    v.unknown_fields
                );
                in_file += 1;
            }
        }
        assert!(in_file > 0, "{} holds no report", path.display());
        checked += in_file;
    }
    assert!(checked >= 18, "only {checked} objects checked");
}

pub(super) fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("policy".to_string()),
                    Just("result".to_string()),
                    Just("summary".to_string()),
                    Just("pass".to_string()),
                    "[a-z]{1,5}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Whatever arrives, validation terminates, and its output is a fixed point: a second
    /// pass prunes nothing more and reports the same errors.
    #[test]
    fn validation_is_idempotent(results in arb_json(), summary in arb_json(), extra in arb_json()) {
        let mut obj = report(results);
        obj["summary"] = summary;
        obj["extra"] = extra;
        for d in [polr(), ephr()] {
            let mut once = obj.clone();
            let first = for_resource(d).validate(&mut once);
            let mut twice = once.clone();
            let second = for_resource(d).validate(&mut twice);
            prop_assert!(second.unknown_fields.is_empty());
            prop_assert_eq!(&second.causes, &first.causes);
            prop_assert_eq!(&twice, &once);
        }
    }
}

/// A 0.9 MB body of 300,000 invalid results: validation keeps the first `MAX_CAUSES` causes
/// and counts the rest (it used to hold 300,000 causes and answer a 39.4 MB 422).
#[test]
fn invalid_results_past_the_cap_are_counted_not_kept() {
    use crate::limits::MAX_CAUSES;
    // `{}` per result, as the attack sent: each misses its required fields.
    let (one, _) = validate(polr(), report(json!([{}])));
    let per_result = one.causes.len();
    assert!(per_result >= 1);
    let total = 300_000 * per_result;
    let results: Vec<Value> = (0..300_000).map(|_| json!({})).collect();
    let (v, _) = validate(polr(), report(Value::Array(results)));
    assert_eq!(v.causes.len(), MAX_CAUSES + 1);
    assert!(
        v.causes.capacity() <= 2 * (MAX_CAUSES + 1),
        "at most the kept causes are held ({})",
        v.causes.capacity()
    );
    assert_eq!(
        v.causes[..per_result],
        one.causes[..],
        "the first result's causes first"
    );
    assert!(v.causes[MAX_CAUSES - 1]
        .field
        .starts_with(&format!("results[{}].", (MAX_CAUSES - 1) / per_result)));
    assert_eq!(
        v.causes[MAX_CAUSES].message,
        format!("{} more errors not listed", total - MAX_CAUSES)
    );
    // With the metadata's causes in front, the 422 still lists MAX_CAUSES and counts the rest.
    let mut causes = vec![crate::status::StatusCause::new(
        "FieldValueInvalid",
        "bad name",
        "metadata.name",
    )];
    causes.extend(v.causes);
    let status = crate::Status::invalid(polr(), "r", causes);
    let listed = &status.details.as_ref().expect("details").causes;
    assert_eq!(listed.len(), MAX_CAUSES + 1);
    assert_eq!(listed[0].field, "metadata.name");
    assert_eq!(
        listed[MAX_CAUSES].message,
        format!("{} more errors not listed", total - MAX_CAUSES + 1)
    );
    let body = serde_json::to_vec(&status).expect("json");
    assert!(body.len() < 32 * 1024, "a 422 of {} bytes", body.len());
}

//! Server-side apply and ownership recording, checked against what kube-apiserver does.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::resources::{find_kind, ResourceDef};

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-01-02T00:00:00Z";
const T3: &str = "2024-01-03T00:00:00Z";
const WG: &str = "wgpolicyk8s.io/v1alpha2";

fn polr() -> &'static ResourceDef {
    find_kind(WG, "PolicyReport").expect("PolicyReport is served")
}

fn ephr() -> &'static ResourceDef {
    find_kind("reports.kyverno.io/v1", "EphemeralReport").expect("EphemeralReport is served")
}

/// A PolicyReport apply configuration: `content` deep-merged over the type and the name.
fn cfg(content: Value) -> Value {
    fn overlay(base: &mut Value, top: Value) {
        match (base, top) {
            (Value::Object(b), Value::Object(t)) => {
                for (k, v) in t {
                    overlay(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, t) => *b = t,
        }
    }
    let mut obj =
        json!({"apiVersion": WG, "kind": "PolicyReport", "metadata": {"name": "r", "namespace": "ns"}});
    overlay(&mut obj, content);
    obj
}

/// `manager` applies `content` to `live` (a PolicyReport) at `time`, without force.
fn run(live: Option<&Value>, manager: &str, content: Value, time: &str) -> Value {
    apply(polr(), live, &cfg(content), manager, false, time).expect("the apply succeeds")
}

/// Same, expecting a conflict.
fn clash(live: &Value, manager: &str, content: Value) -> ApplyConflict {
    match apply(polr(), Some(live), &cfg(content), manager, false, T3) {
        Err(ApplyError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

/// The `fieldsV1` of one entry (`null` if there is no such entry).
fn fields(obj: &Value, manager: &str, operation: &str) -> Value {
    entry(obj, manager, operation).map_or(Value::Null, |e| e["fieldsV1"].clone())
}

fn labels_set(keys: &[&str]) -> Value {
    let keys: serde_json::Map<String, Value> = keys.iter().map(|k| (format!("f:{k}"), json!({}))).collect();
    json!({"f:metadata": {"f:labels": keys}})
}

#[test]
fn create_via_apply() {
    let content = json!({"metadata": {"labels": {"app": "a"}}, "results": [{"policy": "p"}], "summary": {}});
    let obj = run(None, "m", content, T1);
    assert_eq!(obj["results"], json!([{"policy": "p"}]));
    assert_eq!(obj["metadata"]["labels"], json!({"app": "a"}));
    let fields_v1 = json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:results": {}, "f:summary": {}});
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{"manager": "m", "operation": "Apply", "apiVersion": WG, "time": T1,
                "fieldsType": "FieldsV1", "fieldsV1": fields_v1}])
    );
}

#[test]
fn applying_twice_changes_nothing() {
    let content = json!({"metadata": {"labels": {"app": "a"}, "finalizers": ["f"]}, "results": []});
    let first = run(None, "m", content.clone(), T1);
    let second = run(Some(&first), "m", content, T2);
    assert_eq!(first, second, "same object, same entry time");
    let changed = json!({"metadata": {"labels": {"app": "b"}, "finalizers": ["f"]}, "results": []});
    let third = run(Some(&second), "m", changed, T3);
    assert_eq!(
        entry(&third, "m", "Apply").unwrap()["time"],
        T3,
        "a real change moves the time"
    );
}

#[test]
fn a_field_no_longer_applied_is_removed_unless_someone_else_owns_it() {
    let both = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "summary": {"pass": 1}});
    let obj = run(None, "m", both.clone(), T1);
    let obj = run(Some(&obj), "m", json!({"metadata": {"labels": {"a": "1"}}}), T2);
    assert_eq!(obj["metadata"]["labels"], json!({"a": "1"}));
    assert!(obj.get("summary").is_none(), "summary left the configuration");
    assert_eq!(fields(&obj, "m", "Apply"), labels_set(&["a"]));

    // `n` shares `b` (same value): when `m` stops applying it, it stays, owned by `n` alone.
    let obj = run(None, "m", both, T1);
    let obj = run(Some(&obj), "n", json!({"metadata": {"labels": {"b": "2"}}}), T2);
    let obj = run(Some(&obj), "m", json!({"metadata": {"labels": {"a": "1"}}}), T3);
    assert_eq!(obj["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    assert_eq!(fields(&obj, "m", "Apply"), labels_set(&["a"]));
    assert_eq!(fields(&obj, "n", "Apply"), labels_set(&["b"]));
}

#[test]
fn the_last_label_removed_takes_the_map_with_it() {
    let obj = run(None, "m", json!({"metadata": {"labels": {"a": "1"}}}), T1);
    let obj = run(Some(&obj), "m", json!({"results": []}), T2);
    assert!(obj["metadata"].get("labels").is_none(), "{obj}");
}

#[test]
fn managers_of_different_labels_coexist() {
    let obj = run(None, "m", json!({"metadata": {"labels": {"a": "1"}}}), T1);
    let obj = run(Some(&obj), "n", json!({"metadata": {"labels": {"b": "2"}}}), T2);
    assert_eq!(obj["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    assert_eq!(fields(&obj, "m", "Apply"), labels_set(&["a"]));
    assert_eq!(fields(&obj, "n", "Apply"), labels_set(&["b"]));
    assert_eq!(
        run(Some(&obj), "m", json!({"metadata": {"labels": {"a": "1"}}}), T3),
        obj
    );
}

#[test]
fn changing_a_field_another_applier_owns_is_a_conflict() {
    let obj = run(None, "m", json!({"results": [{"policy": "p"}]}), T1);
    let err = clash(&obj, "n", json!({"results": []}));
    let expected = Conflict {
        manager: "m".into(),
        owner: "\"m\"".into(),
        field: ".results".into(),
    };
    assert_eq!(err.conflicts, vec![expected]);
    let status = ApplyError::Conflict(err).to_status();
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"m\": .results"
    );
    let causes = status.details.map(|d| d.causes).unwrap_or_default();
    assert_eq!(
        causes,
        vec![StatusCause::new(
            "FieldManagerConflict",
            "conflict with \"m\"",
            ".results"
        )]
    );
}

#[test]
fn conflicts_with_an_update_manager_name_its_api_version() {
    let mut obj = cfg(json!({"results": [{"policy": "p"}], "summary": {"pass": 1}}));
    record_update(polr(), None, &mut obj, "kubectl-client-side-apply", T1);
    let err = clash(&obj, "kubectl", json!({"results": []}));
    let owner = "\"kubectl-client-side-apply\" using wgpolicyk8s.io/v1alpha2";
    assert_eq!(
        err.message(),
        format!("Apply failed with 1 conflict: conflict with {owner}: .results")
    );
    let causes = err.to_status().details.map(|d| d.causes).unwrap_or_default();
    assert_eq!(causes[0].message, format!("conflict with {owner}"));

    let err = clash(&obj, "kubectl", json!({"results": [], "summary": {}}));
    let expected = format!("Apply failed with 2 conflicts: conflicts with {owner}:\n- .results\n- .summary");
    assert_eq!(err.message(), expected);
    assert_eq!(err.to_status().details.map(|d| d.causes.len()), Some(2));
}

#[test]
fn the_same_value_is_shared_ownership() {
    let content = json!({"results": [{"policy": "p"}]});
    let obj = run(None, "m", content.clone(), T1);
    let obj = run(Some(&obj), "n", content, T2);
    assert_eq!(fields(&obj, "m", "Apply"), json!({"f:results": {}}));
    assert_eq!(fields(&obj, "n", "Apply"), json!({"f:results": {}}));
    // Neither may now change it alone.
    assert_eq!(clash(&obj, "m", json!({"results": []})).conflicts[0].manager, "n");
}

#[test]
fn force_takes_ownership() {
    let obj = run(
        None,
        "m",
        json!({"results": [{"policy": "p"}], "metadata": {"labels": {"a": "1"}}}),
        T1,
    );
    let obj = apply(polr(), Some(&obj), &cfg(json!({"results": []})), "n", true, T2).unwrap();
    assert_eq!(obj["results"], json!([]));
    assert_eq!(fields(&obj, "m", "Apply"), labels_set(&["a"]));
    assert_eq!(fields(&obj, "n", "Apply"), json!({"f:results": {}}));
    // `m` no longer owns `.results`: its next apply without it leaves `n`'s value alone.
    let obj = run(Some(&obj), "m", json!({"metadata": {"labels": {"a": "1"}}}), T3);
    assert_eq!(obj["results"], json!([]));
    // A manager left with nothing loses its entry.
    let labels = cfg(json!({"metadata": {"labels": {"a": "2"}}}));
    let obj = apply(polr(), Some(&obj), &labels, "n", true, T3).unwrap();
    assert!(entry(&obj, "m", "Apply").is_none(), "{obj}");
}

#[test]
fn an_update_takes_the_field_and_the_next_apply_conflicts() {
    let content = json!({"metadata": {"labels": {"app": "a"}}, "results": []});
    let obj = run(None, "m", content.clone(), T1);
    let mut edited = obj.clone();
    edited["metadata"]["labels"]["app"] = json!("b");
    record_update(polr(), Some(&obj), &mut edited, "kubectl-label", T2);
    assert_eq!(fields(&edited, "kubectl-label", "Update"), labels_set(&["app"]));
    assert_eq!(entry(&edited, "kubectl-label", "Update").unwrap()["time"], T2);
    assert_eq!(fields(&edited, "m", "Apply"), json!({"f:results": {}}));
    assert_eq!(
        edited["metadata"]["managedFields"][0]["operation"], "Apply",
        "kube's order"
    );

    let err = clash(&edited, "m", content);
    assert_eq!(err.conflicts.len(), 1);
    assert_eq!(
        err.conflicts[0].owner,
        "\"kubectl-label\" using wgpolicyk8s.io/v1alpha2"
    );
    assert_eq!(err.conflicts[0].field, ".metadata.labels.app");
}

#[test]
fn owner_references_are_keyed_by_uid() {
    let r1 = json!({"apiVersion": "v1", "kind": "Namespace", "name": "ns", "uid": "u1"});
    let r2 = json!({"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u2"});
    let obj = run(None, "m", json!({"metadata": {"ownerReferences": [r1]}}), T1);
    let obj = run(
        Some(&obj),
        "n",
        json!({"metadata": {"ownerReferences": [r2]}}),
        T2,
    );
    assert_eq!(obj["metadata"]["ownerReferences"], json!([r1, r2]));
    let u1 = json!({"f:metadata": {"f:ownerReferences": {"k:{\"uid\":\"u1\"}": {}}}});
    assert_eq!(fields(&obj, "m", "Apply"), u1);

    let mut changed = r1.clone();
    changed["name"] = json!("other");
    let err = clash(&obj, "n", json!({"metadata": {"ownerReferences": [changed]}}));
    assert_eq!(err.conflicts[0].field, ".metadata.ownerReferences[uid=\"u1\"]");

    let obj = run(Some(&obj), "m", json!({"results": []}), T3);
    assert_eq!(obj["metadata"]["ownerReferences"], json!([r2]));
}

#[test]
fn finalizers_are_a_set() {
    let obj = run(None, "m", json!({"metadata": {"finalizers": ["a"]}}), T1);
    let obj = run(
        Some(&obj),
        "n",
        json!({"metadata": {"finalizers": ["b", "a"]}}),
        T2,
    );
    assert_eq!(obj["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(
        fields(&obj, "m", "Apply"),
        json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}}}})
    );
    let both = json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}}}});
    assert_eq!(fields(&obj, "n", "Apply"), both);
    // `n` drops both: `a` stays for `m`, `b` goes.
    let obj = run(Some(&obj), "n", json!({"metadata": {"finalizers": []}}), T3);
    assert_eq!(obj["metadata"]["finalizers"], json!(["a"]));
    assert_eq!(
        fields(&obj, "n", "Apply"),
        json!({"f:metadata": {"f:finalizers": {}}})
    );
}

#[test]
fn spec_layout_fields_are_the_fields_under_spec() {
    let ephemeral = |spec: Value| json!({"apiVersion": "reports.kyverno.io/v1", "kind": "EphemeralReport", "metadata": {"name": "e"}, "spec": spec});
    let owner = json!({"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"});
    let full = ephemeral(json!({"owner": owner, "results": [{"policy": "p"}], "summary": {"pass": 1}}));
    let obj = apply(ephr(), None, &full, "kyverno", false, T1).unwrap();
    let spec_set = json!({"f:spec": {"f:owner": {}, "f:results": {}, "f:summary": {}}});
    assert_eq!(fields(&obj, "kyverno", "Apply"), spec_set);

    let results = ephemeral(json!({"results": []}));
    match apply(ephr(), Some(&obj), &results, "other", false, T2) {
        Err(ApplyError::Conflict(c)) => assert_eq!(c.conflicts[0].field, ".spec.results"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let obj = apply(ephr(), Some(&obj), &results, "other", true, T2).unwrap();
    assert_eq!(
        obj["spec"],
        json!({"owner": owner, "results": [], "summary": {"pass": 1}})
    );
    let obj = apply(
        ephr(),
        Some(&obj),
        &ephemeral(json!({"owner": owner})),
        "kyverno",
        false,
        T3,
    )
    .unwrap();
    assert_eq!(obj["spec"], json!({"owner": owner, "results": []}));
}

#[test]
fn null_claims_and_removes() {
    let obj = run(
        None,
        "m",
        json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
        T1,
    );
    let obj = run(Some(&obj), "n", json!({"metadata": {"labels": {"a": null}}}), T2);
    assert_eq!(obj["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(fields(&obj, "n", "Apply"), labels_set(&["a"]));
    assert_eq!(fields(&obj, "m", "Apply"), labels_set(&["b"]));
}

#[test]
fn bad_apply_bodies_are_400() {
    let err = apply(
        polr(),
        None,
        &cfg(json!({"metadata": {"managedFields": []}})),
        "m",
        false,
        T1,
    );
    assert_eq!(err, Err(ApplyError::ManagedFieldsSet));
    let status = Status::from(ApplyError::ManagedFieldsSet);
    assert_eq!(
        (status.code, status.message.as_str()),
        (400, "metadata.managedFields must be nil")
    );
    let nameless = json!({"apiVersion": WG, "kind": "PolicyReport", "metadata": {}});
    assert_eq!(
        apply(polr(), None, &nameless, "m", false, T1),
        Err(ApplyError::MissingName)
    );
    let kindless = json!({"apiVersion": WG, "metadata": {"name": "r"}});
    assert_eq!(
        apply(polr(), None, &kindless, "m", false, T1),
        Err(ApplyError::MissingKind)
    );
    let wrong = json!({"apiVersion": "v1", "kind": "PolicyReport", "metadata": {"name": "r"}});
    let err = apply(polr(), None, &wrong, "m", false, T1);
    assert!(matches!(err, Err(ApplyError::WrongVersion { .. })), "{err:?}");
    assert_eq!(
        apply(polr(), None, &json!([]), "m", false, T1),
        Err(ApplyError::NotAnObject)
    );
}

#[test]
fn server_set_metadata_is_merged_but_never_owned() {
    // A resourceVersion acts as a precondition downstream; `creationTimestamp: null`
    // (common in generated manifests) changes nothing.
    let live = cfg(json!({"metadata": {"creationTimestamp": T1, "uid": "u", "generation": 2}}));
    let content = json!({"metadata": {"resourceVersion": "7", "creationTimestamp": null}});
    let obj = apply(polr(), Some(&live), &cfg(content), "m", false, T2).unwrap();
    assert_eq!(obj["metadata"]["resourceVersion"], "7");
    assert_eq!(obj["metadata"]["creationTimestamp"], T1);
    assert!(
        obj["metadata"].get("managedFields").is_none(),
        "nothing owned, no entry: {obj}"
    );
}

#[test]
fn record_update_on_create_owns_everything_it_set() {
    let mut obj =
        cfg(json!({"metadata": {"labels": {"app": "a"}, "uid": "x"}, "results": [], "summary": {}}));
    record_update(polr(), None, &mut obj, "kubectl-create", T1);
    let fields_v1 =
        json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:results": {}, "f:summary": {}});
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": WG, "time": T1,
                "fieldsType": "FieldsV1", "fieldsV1": fields_v1}])
    );

    let old = obj.clone();
    record_update(polr(), Some(&old), &mut obj, "kubectl-edit", T2);
    assert_eq!(obj, old, "a no-op update keeps everything, time included");

    // Another writer takes what it changes; a removed field is released. The body carries no
    // managedFields: the live ones are the base.
    let mut new = old.clone();
    new["summary"] = json!({"pass": 2});
    new["metadata"]["labels"] = json!({});
    new["metadata"]["managedFields"] = Value::Null;
    record_update(polr(), Some(&old), &mut new, "kubectl-edit", T2);
    let create_set = json!({"f:metadata": {"f:labels": {}}, "f:results": {}});
    assert_eq!(fields(&new, "kubectl-create", "Update"), create_set);
    assert_eq!(fields(&new, "kubectl-edit", "Update"), json!({"f:summary": {}}));
    assert_eq!(
        new["metadata"]["managedFields"][0]["manager"], "kubectl-create",
        "sorted by time"
    );
}

#[test]
fn record_update_merges_into_the_managers_entry_and_can_reset() {
    let mut obj = cfg(json!({"results": []}));
    record_update(polr(), None, &mut obj, "ctl", T1);
    let old = obj.clone();
    obj["summary"] = json!({"pass": 1});
    record_update(polr(), Some(&old), &mut obj, "ctl", T2);
    assert_eq!(obj["metadata"]["managedFields"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        fields(&obj, "ctl", "Update"),
        json!({"f:results": {}, "f:summary": {}})
    );
    assert_eq!(entry(&obj, "ctl", "Update").unwrap()["time"], T2);

    let old = obj.clone();
    obj["metadata"]["managedFields"] = json!([{}]);
    record_update(polr(), Some(&old), &mut obj, "ctl", T3);
    assert!(
        obj["metadata"].get("managedFields").is_none(),
        "[{{}}] clears managedFields"
    );
}

#[test]
fn foreign_entries_are_kept_as_they_are() {
    let status_entry = json!({"manager": "ctrl", "operation": "Update", "apiVersion": WG, "time": T1,
        "fieldsType": "FieldsV1", "fieldsV1": {"f:summary": {}}, "subresource": "status"});
    let alien = json!({"manager": "x", "operation": "Update", "fieldsType": "FieldsV9", "fieldsV9": 1});
    let live = cfg(json!({"summary": {"pass": 1}, "metadata": {"managedFields": [status_entry, alien]}}));
    let obj = run(Some(&live), "m", json!({"results": []}), T2);
    let list = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(list.contains(&status_entry) && list.contains(&alien), "{obj}");
    let err = clash(&live, "m", json!({"summary": {}}));
    let owner = "\"ctrl\" with subresource \"status\" using wgpolicyk8s.io/v1alpha2";
    assert_eq!(err.conflicts[0].owner, owner);
}

#[test]
fn an_untracked_object_belongs_to_before_first_apply() {
    let live = cfg(json!({"results": [{"policy": "p"}], "metadata": {"uid": "u"}}));
    assert_eq!(
        clash(&live, "m", json!({"results": []})).conflicts[0].manager,
        BEFORE_FIRST_APPLY
    );
    let obj = run(Some(&live), "m", json!({"results": [{"policy": "p"}]}), T1);
    assert_eq!(
        fields(&obj, BEFORE_FIRST_APPLY, "Update"),
        json!({"f:results": {}})
    );
    assert_eq!(fields(&obj, "m", "Apply"), json!({"f:results": {}}));
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map("[a-c]", "[xy]", 0..3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Two appliers on disjoint label keys: each one's later applies touch only its own
    /// labels, and repeating an apply is a no-op.
    #[test]
    fn disjoint_appliers_converge(mine in labels(), theirs in labels(), keep in labels()) {
        let theirs: BTreeMap<String, String> = theirs.into_iter().map(|(k, v)| (format!("n-{k}"), v)).collect();
        let obj = run(None, "m", json!({"metadata": {"labels": mine}}), T1);
        let obj = run(Some(&obj), "n", json!({"metadata": {"labels": theirs}}), T2);
        let obj = run(Some(&obj), "m", json!({"metadata": {"labels": keep}}), T3);
        let mut expected = keep.clone();
        expected.extend(theirs);
        let got: BTreeMap<String, String> =
            serde_json::from_value(obj["metadata"].get("labels").cloned().unwrap_or(json!({}))).unwrap();
        prop_assert_eq!(got, expected);
        let again = run(Some(&obj), "m", json!({"metadata": {"labels": keep}}), T3);
        prop_assert_eq!(again, obj);
    }

    /// Whatever a manager applies is in the result with the applied values.
    #[test]
    fn applied_values_win_with_force(first in labels(), second in labels()) {
        let obj = run(None, "m", json!({"metadata": {"labels": first}, "results": [1]}), T1);
        let content = cfg(json!({"metadata": {"labels": second.clone()}, "results": [2]}));
        let obj = apply(polr(), Some(&obj), &content, "n", true, T2).unwrap();
        prop_assert_eq!(&obj["results"], &json!([2]));
        for (k, v) in &second {
            prop_assert_eq!(&obj["metadata"]["labels"][k], &json!(v));
        }
    }
}

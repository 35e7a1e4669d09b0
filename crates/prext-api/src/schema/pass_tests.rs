//! Tests of the passes before validation: pruning and null pruning in one walk against the
//! two passes they replace, and defaulting that skips the subtrees without defaults.

use proptest::prelude::*;
use serde_json::json;

use super::tests::{arb_json, custom, ephr, polr, report};
use super::*;

#[test]
fn defaults_deep_inside_are_applied_and_subtrees_without_are_left_alone() {
    // Defaulting skips the subtrees with no default below them; a default inside a list
    // item of a map value is still found, and a null under a default-less schema stays.
    let s = custom(json!({"type": "object", "properties": {
        "plain": {"type": "object", "properties": {"x": {"type": "string", "nullable": true}}},
        "deep": {"type": "object", "additionalProperties": {"type": "array", "items": {
            "type": "object", "properties": {"mode": {"type": "string", "default": "audit"}}}}}
    }}));
    assert!(s.defaults_below);
    assert!(!s.properties["plain"].defaults_below);
    let mut obj = json!({"plain": {"x": null}, "deep": {"a": [{}, {"mode": "enforce"}], "b": []}});
    let v = s.validate(&mut obj);
    assert!(v.is_valid(), "{v:?}");
    assert_eq!(
        obj,
        json!({"plain": {"x": null}, "deep": {"a": [{"mode": "audit"}, {"mode": "enforce"}], "b": []}})
    );
}

/// A schema with every shape the pruning passes treat apart: preserved unknown fields (at an
/// object and in a list's items), nullable and defaulted fields, a map of lists.
fn shapes_schema() -> Schema {
    let item = json!({"type": "object", "properties": {
        "a": {"type": "string"},
        "b": {"type": "string", "nullable": true},
        "c": {"type": "string", "default": "d"},
        "e": {"type": "object", "properties": {"f": {"type": "integer"}}}
    }});
    custom(json!({"type": "object", "properties": {
        "policy": item.clone(),
        "result": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                   "properties": {"a": {"type": "string"}, "pass": item.clone()}},
        "summary": {"type": "array", "x-kubernetes-preserve-unknown-fields": true, "items": item.clone()},
        "pass": {"type": "object", "additionalProperties": {"type": "array", "items": item}}
    }}))
}

proptest! {
    /// Pruning and null pruning in one walk leave what the two passes in turn leave, and
    /// report the same unknown fields (the two passes are the oracle).
    #[test]
    fn one_pruning_walk_is_the_two_passes(results in arb_json(), summary in arb_json(), extra in arb_json()) {
        let mut obj = report(results);
        obj["summary"] = summary;
        obj["extra"] = extra;
        let shapes = shapes_schema();
        let schemas = [for_resource(polr()), for_resource(ephr()), &shapes];
        for s in schemas {
            for doc in [obj.clone(), obj["results"].clone(), json!({"policy": obj["summary"].clone(), "result": obj["results"].clone(), "pass": {"x": obj["results"].clone()}})] {
                let (mut fused, mut passes) = (doc.clone(), doc);
                let (mut unknown_fused, mut unknown_passes) = (Vec::new(), Vec::new());
                super::prune::prune_root(&mut fused, s, &mut unknown_fused);
                super::prune::two_passes::prune_root(&mut passes, s, &mut unknown_passes);
                super::prune::two_passes::prune_nulls_root(&mut passes, s);
                prop_assert_eq!(&fused, &passes);
                prop_assert_eq!(fused.to_string(), passes.to_string());
                prop_assert_eq!(unknown_fused, unknown_passes);
            }
        }
    }
}

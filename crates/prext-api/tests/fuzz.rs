//! Fuzzing of the request parsers that bound work (`limits`), run by the normal test suite in
//! bounded time: property tests over generated inputs, and the checked-in corpus of the attacks
//! of issue 15 (`tests/corpus/`), each of which must be refused (or accepted) without panicking
//! and without running the YAML parser on anything the pre-scan refuses.

use std::path::Path;

use prext_api::limits::patch::{apply_json_patch, MAX_JSON_PATCH_OPERATIONS};
use prext_api::limits::yaml::{check_depth, MAX_YAML_DEPTH};
use prext_api::meta::{decode_body, BodyFormat, MAX_BODY_BYTES};
use proptest::prelude::*;
use serde_json::{json, Value};

fn corpus(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn corpus_yaml_attacks_are_refused_and_scalars_are_not() {
    for name in [
        "deep-flow-sequences.yaml",
        "deep-flow-maps.yaml",
        "deep-block-maps.yaml",
        "compact-sequences.yaml",
        "unclosed-flow.yaml",
    ] {
        let text = corpus(name);
        assert!(check_depth(&text, MAX_YAML_DEPTH).is_err(), "{name}");
        let err = decode_body(text.as_bytes(), BodyFormat::Yaml).expect_err(name);
        assert_eq!(err.code, 400, "{name}");
    }
    let text = corpus("brackets-in-scalars.yaml");
    assert_eq!(check_depth(&text, MAX_YAML_DEPTH), Ok(()));
    decode_body(text.as_bytes(), BodyFormat::Yaml).expect("brackets in scalars are data");
}

#[test]
fn corpus_json_patch_attacks_are_refused() {
    let too_many = Value::Array(vec![
        json!({"op": "test", "path": "/kind", "value": "PolicyReport"});
        MAX_JSON_PATCH_OPERATIONS + 1
    ])
    .to_string();
    for (name, text) in [
        (
            "copy-amplification.json-patch",
            corpus("copy-amplification.json-patch"),
        ),
        ("too many operations", too_many),
    ] {
        let patch: json_patch::Patch = serde_json::from_str(&text).expect(name);
        let mut doc = json!({"kind": "PolicyReport"});
        let err = apply_json_patch(&mut doc, &patch, MAX_BODY_BYTES).expect_err(name);
        assert_eq!(err.code, 413, "{name}");
    }
}

/// Text made of YAML's structural characters and a few scalars.
fn yamlish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "[", "]", "{", "}", ",", ":", ": ", "- ", "? ", "\n", "  ", "'", "\"", "\\", "#", "|", ">", "&a ",
        "*a", "!t ", "x", "key", "---\n", "...\n", "\t", "é", "\r\n",
    ]);
    prop::collection::vec(pieces, 0..200).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// The pre-scan never panics, and whatever it lets through the parser survives, with
    /// any depth the parser then builds within the limit.
    #[test]
    fn yaml_pre_scan_never_panics_and_bounds_what_is_parsed(text in yamlish()) {
        if check_depth(&text, 8).is_ok() {
            if let Ok(v) = serde_norway::from_str::<Value>(&text) {
                prop_assert!(depth(&v) <= 8 + 1, "{text:?} parsed to depth {}", depth(&v));
            }
        }
        let _ = decode_body(text.as_bytes(), BodyFormat::Yaml);
    }

    /// Nesting built on purpose is measured exactly enough to be refused past the limit.
    #[test]
    fn nested_flow_collections_past_the_limit_are_refused(levels in 1usize..400, maps in any::<bool>()) {
        let (open, close) = if maps { ("{a: ", "}") } else { ("[", "]") };
        let text = format!("x: {}1{}", open.repeat(levels), close.repeat(levels));
        let refused = check_depth(&text, MAX_YAML_DEPTH).is_err();
        prop_assert_eq!(refused, levels + 1 > MAX_YAML_DEPTH);
    }

    /// Random patches against a small document: no panic, and nothing grows past what the
    /// copy budget allows.
    #[test]
    fn json_patches_never_panic_or_exceed_the_budget(ops in prop::collection::vec(
        (prop::sample::select(vec!["add", "copy", "move", "remove", "replace", "test"]),
         prop::sample::select(vec!["/a", "/b", "/a/-", "/a/0", "/b/c", "", "/x~1y", "/a/99"]),
         prop::sample::select(vec!["/a", "/b", "/b/c", ""])), 0..40)) {
        let patch: Vec<Value> = ops.iter().map(|(op, path, from)| {
            json!({"op": op, "path": path, "from": from, "value": [1, {"c": "v"}]})
        }).collect();
        if let Ok(patch) = serde_json::from_value::<json_patch::Patch>(Value::Array(patch)) {
            let mut doc = json!({"a": [1, 2], "b": {"c": 3}});
            let budget = 4096;
            let _ = apply_json_patch(&mut doc, &patch, budget);
            let size = serde_json::to_vec(&doc).map(|v| v.len()).unwrap_or(0);
            prop_assert!(size <= 64 + budget + 40 * 32, "{size}");
        }
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

//! JSON patch (RFC 6902) applied with kube-apiserver's limits: at most
//! [`MAX_JSON_PATCH_OPERATIONS`] operations (`maxJSONPatchOperations` in
//! k8s.io/apiserver/pkg/endpoints/handlers/patch.go, answered 413), and the bytes copied by `copy`
//! operations accumulated against the body limit (evanphx/json-patch's
//! `AccumulatedCopySizeLimit`), so that a small patch cannot build an object larger than a body
//! could be: a copy is measured before it is made, and the measure stops at the limit.

use json_patch::{Patch, PatchOperation};
use serde_json::Value;

use crate::status::{reason, Status};

/// kube-apiserver's `maxJSONPatchOperations`.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies `patch` to `doc`, copying at most `copy_limit` bytes (serialized JSON) in all.
/// `doc` is left part-patched on error: apply to a copy the caller throws away on error.
pub fn apply_json_patch(doc: &mut Value, patch: &Patch, copy_limit: usize) -> Result<(), Status> {
    check_operation_count(patch.0.len())?;
    let mut copied = 0usize;
    for (index, op) in patch.0.iter().enumerate() {
        if let PatchOperation::Copy(c) = op {
            let budget = copy_limit - copied;
            let size = doc
                .pointer(c.from.as_str())
                .map(|v| serialized_len(v, budget))
                .unwrap_or(Some(0));
            match size {
                Some(n) => copied += n,
                None => {
                    return Err(Status::failure(
                        413,
                        reason::REQUEST_ENTITY_TOO_LARGE,
                        format!(
                            "the JSON patch's copy operation {index} would exceed the accumulated copy size limit of {copy_limit} bytes"
                        ),
                    ))
                }
            }
        }
        json_patch::patch_unsafe(doc, std::slice::from_ref(op)).map_err(|mut e| {
            e.operation = index;
            Status::failure(
                422,
                reason::INVALID,
                format!("the JSON patch could not be applied: {e}"),
            )
        })?;
    }
    Ok(())
}

/// Refuses more operations than kube-apiserver applies (413, with its message).
pub fn check_operation_count(n: usize) -> Result<(), Status> {
    if n > MAX_JSON_PATCH_OPERATIONS {
        return Err(Status::failure(
            413,
            reason::REQUEST_ENTITY_TOO_LARGE,
            format!("The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {n}"),
        ));
    }
    Ok(())
}

/// The length of `v` as compact JSON, or `None` once it passes `budget` (the measure stops
/// there, so measuring costs at most `budget` bytes of output).
pub fn serialized_len(v: &Value, budget: usize) -> Option<usize> {
    struct Counter {
        n: usize,
        budget: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n += buf.len();
            if self.n > self.budget {
                return Err(std::io::Error::other("over budget"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { n: 0, budget };
    serde_json::to_writer(&mut counter, v).ok()?;
    Some(counter.n)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patch(ops: Value) -> Patch {
        serde_json::from_value(ops).expect("patch")
    }

    #[test]
    fn copy_amplification_is_refused_before_it_is_built() {
        // The attack of issue 15: add [0], then copy the array into itself 24 times (2^24 items).
        let mut ops = vec![json!({"op": "add", "path": "/extra", "value": [0]})];
        ops.extend((0..24).map(|_| json!({"op": "copy", "from": "/extra", "path": "/extra/-"})));
        let mut doc = json!({"a": 1});
        let err = apply_json_patch(&mut doc, &patch(Value::Array(ops)), 3 << 20).unwrap_err();
        assert_eq!(err.code, 413);
        assert_eq!(err.reason, reason::REQUEST_ENTITY_TOO_LARGE);
        assert!(serialized_len(&doc, 8 << 20).is_some_and(|n| n <= 2 * (3 << 20)));
    }

    #[test]
    fn ordinary_patches_apply_and_errors_name_the_operation() {
        let mut doc = json!({"a": [1], "b": {"c": 2}});
        let p = patch(json!([
            {"op": "copy", "from": "/b", "path": "/d"},
            {"op": "add", "path": "/a/-", "value": 2},
            {"op": "test", "path": "/d/c", "value": 2},
        ]));
        apply_json_patch(&mut doc, &p, 1024).expect("applies");
        assert_eq!(doc, json!({"a": [1, 2], "b": {"c": 2}, "d": {"c": 2}}));
        let p = patch(json!([
            {"op": "add", "path": "/x", "value": 1},
            {"op": "remove", "path": "/missing"},
        ]));
        let err = apply_json_patch(&mut doc, &p, 1024).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.contains("operation '/1'"), "{}", err.message);
    }

    #[test]
    fn operations_are_counted_as_kube_does() {
        let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/a", "value": 1}))
            .collect();
        let err = apply_json_patch(&mut json!({"a": 1}), &patch(Value::Array(ops)), 1024).unwrap_err();
        assert_eq!(err.code, 413);
        assert_eq!(
            err.message,
            "The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
    }

    #[test]
    fn the_measure_stops_at_the_budget() {
        let v = json!({"k": "x".repeat(100)});
        assert_eq!(serialized_len(&v, 1000), Some(108));
        assert_eq!(serialized_len(&v, 50), None);
    }
}

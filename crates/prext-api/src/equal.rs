//! JSON equality without hashing when both sides list their keys in the same order.
//!
//! `serde_json::Value`'s `==` looks every key of one object up in the other (a SipHash of
//! the key, then a probe). An update compares the stored object with the new one several
//! times (generation, managedFields, the no-op test), and the two nearly always list their
//! keys in the same order (both come from the same producer): [`equal`] walks the two maps
//! side by side and falls back to the lookups only where the orders differ. Same answer as
//! `==` (JSON objects are unordered).

use serde_json::{Map, Value};

/// `a == b`.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => maps_equal(a, b),
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equal(x, y)),
        _ => a == b,
    }
}

/// `a == b` for two objects.
pub fn maps_equal(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    if a.len() != b.len() {
        return false;
    }
    for (i, ((ka, va), (kb, vb))) in a.iter().zip(b).enumerate() {
        if ka != kb {
            // Another order from here on: look the rest up by key.
            return a
                .iter()
                .skip(i)
                .all(|(k, v)| b.get(k).is_some_and(|w| equal(v, w)));
        }
        if !equal(va, vb) {
            // The same key holds another value (keys are unique in a map).
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn order_does_not_matter() {
        let a = json!({"a": 1, "b": [{"x": 1, "y": 2}], "c": null});
        let b = json!({"c": null, "b": [{"y": 2, "x": 1}], "a": 1});
        assert!(equal(&a, &b));
        // Keys in the same order up to a point, then another order.
        let c = json!({"a": 1, "c": null, "b": [{"x": 1, "y": 2}]});
        assert!(equal(&a, &c));
        assert!(!equal(&a, &json!({"a": 1, "b": [{"x": 1, "y": 3}], "c": null})));
        assert!(!equal(&a, &json!({"a": 1, "c": null, "d": [{"x": 1, "y": 2}]})));
        assert!(!equal(&json!([1, 2]), &json!([2, 1])));
        assert!(!equal(&json!(1), &json!(1.0)));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0i64..3).prop_map(Value::from),
            "[ab]{0,1}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::vec(("[a-c]", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// The same value with the keys of some objects in another order.
    fn shuffled(v: &Value, seed: u64) -> Value {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<(String, Value)> = m
                    .iter()
                    .enumerate()
                    .map(|(i, (k, v))| {
                        (
                            k.clone(),
                            shuffled(v, seed.wrapping_mul(31).wrapping_add(i as u64)),
                        )
                    })
                    .collect();
                match seed % 3 {
                    0 => entries.reverse(),
                    1 if !entries.is_empty() => entries.rotate_left(1),
                    _ => {}
                }
                Value::Object(entries.into_iter().collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(|x| shuffled(x, seed + 1)).collect()),
            other => other.clone(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// `==` is the oracle: on independent values (mostly different), on reordered
        /// copies (equal), and on reordered copies of a near value.
        #[test]
        fn equal_is_json_equality(a in arb_json(), b in arb_json(), seed in any::<u64>()) {
            prop_assert_eq!(equal(&a, &b), a == b);
            let a2 = shuffled(&a, seed);
            prop_assert!(equal(&a, &a2));
            let b2 = shuffled(&b, seed);
            prop_assert_eq!(equal(&a, &b2), a == b2);
        }
    }
}

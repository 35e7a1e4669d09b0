//! Duplicate keys in a JSON request body, found as kube-apiserver's strict JSON decoder
//! (`sigs.k8s.io/json` `UnmarshalStrict`) finds them: one `duplicate field "PATH"` per repeated
//! key, in document order, the path dotted with list indexes in brackets
//! (`spec.results[0].policy`), for `fieldValidation=Strict` (refused) and `Warn` (a Warning
//! each). The last value of a repeated key wins, as in `serde_json::Value`.
//!
//! [`decode`] finds them while it builds the body's `Value`, in the one parse the body gets:
//! a repeated key is one the object being built already holds (one hash lookup per key, the
//! map's entry). The path is not written while parsing: each level only links its key or
//! index to its parent's on the stack, and the path is spelled out when a duplicate is found,
//! so a body without duplicates costs about what `serde_json::from_slice::<Value>` does.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The `duplicate field "…"` messages of `body`, in document order. A body that is not valid
/// JSON has none here (its parse error is reported by the decoder).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    decode(body, true).map(|(_, found)| found).unwrap_or_default()
}

/// Parses `body` into exactly the `Value` that
/// `serde_json::from_slice` gives, with the `duplicate field "…"` messages of its repeated keys
/// when `find_duplicates` is set (none otherwise). Errors are `serde_json`'s, word for word.
pub fn decode(body: &[u8], find_duplicates: bool) -> Result<(Value, Vec<String>), serde_json::Error> {
    if !find_duplicates {
        return serde_json::from_slice(body).map(|v| (v, Vec::new()));
    }
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Build {
        at: &Step::Root,
        found: &mut found,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, found))
}

/// Where a value being built is: a member of its parent object, an item of its parent list,
/// or the body itself. Linked on the stack, parent first.
enum Step<'p> {
    Root,
    Key(&'p str, &'p Step<'p>),
    Index(usize, &'p Step<'p>),
}

impl Step<'_> {
    /// The path in kube's notation: keys joined with `.`, indexes in brackets
    /// (`results[0].policy`).
    fn path(&self) -> String {
        let mut steps = Vec::new();
        let mut at = self;
        loop {
            match at {
                Step::Root => break,
                Step::Key(_, parent) | Step::Index(_, parent) => {
                    steps.push(at);
                    at = parent;
                }
            }
        }
        let mut out = String::new();
        for step in steps.into_iter().rev() {
            match step {
                Step::Key(key, _) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Step::Index(i, _) => {
                    use fmt::Write;
                    let _ = write!(out, "[{i}]");
                }
                Step::Root => {}
            }
        }
        out
    }
}

/// Builds one JSON value at `at`, recording repeated keys of every object in it.
struct Build<'a> {
    at: &'a Step<'a>,
    found: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Build<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Build<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        use serde_json::map::Entry;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // A repeated key keeps its place and takes the last value, as `Map::insert` does.
            let entry = out.entry(key);
            let value = {
                let (key, repeated) = match &entry {
                    Entry::Occupied(e) => (e.key(), true),
                    Entry::Vacant(e) => (e.key(), false),
                };
                let at = Step::Key(key, self.at);
                if repeated {
                    self.found.push(format!("duplicate field \"{}\"", at.path()));
                }
                map.next_value_seed(Build {
                    at: &at,
                    found: &mut *self.found,
                })?
            };
            match entry {
                Entry::Occupied(mut e) => {
                    e.insert(value);
                }
                Entry::Vacant(e) => {
                    e.insert(value);
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let at = Step::Index(out.len(), self.at);
            let next = seq.next_element_seed(Build {
                at: &at,
                found: &mut *self.found,
            })?;
            match next {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_upstream() {
        // The shapes of k8s.io/kubernetes test/integration/apiserver/field_validation_test.go.
        let body = br#"{"metadata":{"name":"a","name":"b"},
            "results":[{"policy":"p","policy":"q"},{"rule":"r"}],
            "summary":{"pass":1},"summary":{"fail":2}}"#;
        assert_eq!(
            duplicate_fields(body),
            vec![
                "duplicate field \"metadata.name\"",
                "duplicate field \"results[0].policy\"",
                "duplicate field \"summary\"",
            ]
        );
    }

    #[test]
    fn paths_are_spelled_only_for_duplicates_at_any_depth() {
        let body = br#"[{"x":1,"x":2},{"a":[[{"b":1,"b":2}],{"c":{"d":0,"d":0}}]}]"#;
        let expected = vec![
            "duplicate field \"[0].x\"",
            "duplicate field \"[1].a[0][0].b\"",
            "duplicate field \"[1].a[1].c.d\"",
        ];
        assert_eq!(duplicate_fields(body), expected);
        assert_eq!(reference(body), expected);
    }

    #[test]
    fn clean_and_invalid_bodies_have_none() {
        assert!(duplicate_fields(br#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#).is_empty());
        assert!(duplicate_fields(b"{not json").is_empty());
        assert!(duplicate_fields(b"\xEF\xBB\xBF{\"a\":1,\"a\":2}").len() == 1);
    }

    /// The walk this module did before it built the value in the same parse: a second parse
    /// of the body with a set of keys per object. [`decode`] must find what it found.
    fn reference(body: &[u8]) -> Vec<String> {
        let mut found = Vec::new();
        let mut de = serde_json::Deserializer::from_slice(body);
        let _ = Walk {
            path: String::new(),
            found: &mut found,
        }
        .deserialize(&mut de);
        found
    }

    struct Walk<'a> {
        path: String,
        found: &'a mut Vec<String>,
    }

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{key}", self.path)
                };
                if !seen.insert(key) {
                    self.found.push(format!("duplicate field \"{path}\""));
                }
                map.next_value_seed(Walk {
                    path,
                    found: &mut *self.found,
                })?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0usize;
            while seq
                .next_element_seed(Walk {
                    path: format!("{}[{i}]", self.path),
                    found: &mut *self.found,
                })?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }

    /// Arbitrary JSON text with few distinct keys, so that objects repeat keys often.
    fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (-1e6f64..1e6).prop_map(|f| format!("{f:e}")),
            "[a-c\\\\\"é]{0,4}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec(("[abc.]{1,2}", inner), 0..6).prop_map(|kv| {
                    let members: Vec<String> = kv
                        .into_iter()
                        .map(|(k, v)| format!("{}: {v}", serde_json::to_string(&k).unwrap_or_default()))
                        .collect();
                    format!("{{ {} }}", members.join(" ,"))
                }),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn decode_is_from_slice_plus_the_walk(text in json_text(), cut in 0usize..200) {
            let text = format!("{{\"a\": {text}, \"a\": [{text}]}}");
            for body in [text.as_bytes(), &text.as_bytes()[..cut.min(text.len())]] {
                let expected = serde_json::from_slice::<Value>(body);
                let got = decode(body, true);
                match (expected, got) {
                    (Ok(v), Ok((w, found))) => {
                        proptest::prop_assert_eq!(&v, &w);
                        proptest::prop_assert_eq!(serde_json::to_string(&v).ok(), serde_json::to_string(&w).ok());
                        proptest::prop_assert_eq!(found, reference(body));
                    }
                    (Err(e), Err(f)) => proptest::prop_assert_eq!(e.to_string(), f.to_string()),
                    (e, f) => proptest::prop_assert!(false, "{:?} vs {:?}", e.map(|_| ()), f.map(|_| ())),
                }
                let plain = decode(body, false).map(|(v, found)| (v, found.is_empty()));
                proptest::prop_assert_eq!(plain.map_err(|e| e.to_string()), serde_json::from_slice::<Value>(body).map(|v| (v, true)).map_err(|e| e.to_string()));
            }
        }
    }
}

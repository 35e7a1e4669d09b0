//! Duplicate keys in a JSON request body, found as kube-apiserver's strict JSON decoder
//! (`sigs.k8s.io/json` `UnmarshalStrict`) finds them: one `duplicate field "PATH"` per repeated
//! key, in document order, the path dotted with list indexes in brackets
//! (`spec.results[0].policy`). The body is parsed normally elsewhere (the last value wins);
//! this only reports, for `fieldValidation=Strict` (refused) and `Warn` (a Warning each).

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The `duplicate field "…"` messages of `body`, in document order. A body that is not valid
/// JSON has none here (its parse error is reported by the decoder).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = Walk {
        path: String::new(),
        found: &mut found,
    };
    if seed.deserialize(&mut de).is_err() {
        return Vec::new();
    }
    found
}

/// Visits one JSON value at `path`, recording repeated keys of every object in it.
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

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = child(&self.path, &key);
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
    fn clean_and_invalid_bodies_have_none() {
        assert!(duplicate_fields(br#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#).is_empty());
        assert!(duplicate_fields(b"{not json").is_empty());
        assert!(duplicate_fields(b"\xEF\xBB\xBF{\"a\":1,\"a\":2}").len() == 1);
    }
}

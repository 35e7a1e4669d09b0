//! Stamping `metadata.resourceVersion` into an already serialized body.
//!
//! A store learns an object's revision only inside its write transaction, yet serializing the
//! body is the expensive part of a write. [`Unstamped`] splits the two: the body is serialized
//! once, wherever convenient (the caller's task, not the single writer), with the place of
//! `metadata.resourceVersion`'s value recorded; [`Unstamped::stamp`] then only concatenates.
//!
//! The result is byte for byte what `serde_json::to_string` gives for the body with
//! `metadata.resourceVersion` set to the revision (a string) by `Map::insert`: an existing key
//! keeps its place (its old value is replaced), a new one comes last in `metadata`, and a body
//! without `metadata` gets `{"resourceVersion": …}` as its last member. Only the top-level
//! `metadata` counts: a `resourceVersion` anywhere else (say in `results[].resources[]`, whose
//! object references carry one) is part of the body like any other key.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A serialized body waiting for its `metadata.resourceVersion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unstamped {
    /// The body with `"resourceVersion":""` in `metadata`.
    text: String,
    /// The byte offset between that value's two quotes.
    at: usize,
}

/// Why a body cannot be stamped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    #[error("object body has no metadata object")]
    NoMetadata,
    #[error("serializing body: {0}")]
    Serialize(String),
    #[error("stored body is not a JSON object: {0}")]
    Parse(String),
}

/// The members of a JSON object in order, their values unparsed (a later duplicate key
/// replaces the earlier one in place, as `Map::insert` does).
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Visit<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'a>, A::Error> {
                let mut members: Vec<(String, &'a RawValue)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    match members.iter_mut().find(|(k, _)| *k == key) {
                        Some(existing) => existing.1 = value,
                        None => members.push((key, value)),
                    }
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

impl Unstamped {
    /// Serializes `body` (a JSON object whose `metadata`, if present, is an object), leaving
    /// room for the resourceVersion.
    pub fn new(body: &Value) -> Result<Unstamped, StampError> {
        let top = body.as_object().ok_or(StampError::NoMetadata)?;
        let mut out = Vec::with_capacity(1024);
        let mut at = None;
        out.push(b'{');
        for (i, (key, value)) in top.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json(&mut out, key)?;
            out.push(b':');
            if key == "metadata" {
                let metadata = value.as_object().ok_or(StampError::NoMetadata)?;
                at = Some(write_metadata(&mut out, metadata)?);
            } else {
                write_json(&mut out, value)?;
            }
        }
        Unstamped::finish(out, at, !top.is_empty())
    }

    /// Closes the object written into `out` (members written, `{` opened): `at` is where the
    /// resourceVersion goes, or `None` when no `metadata` member was written, which then is
    /// appended (after a comma when `members` were written).
    fn finish(mut out: Vec<u8>, at: Option<usize>, members: bool) -> Result<Unstamped, StampError> {
        let at = match at {
            Some(at) => at,
            None => {
                if members {
                    out.push(b',');
                }
                out.extend_from_slice(br#""metadata":{"resourceVersion":""#);
                let at = out.len();
                out.extend_from_slice(br#""}"#);
                at
            }
        };
        out.push(b'}');
        let text = String::from_utf8(out).map_err(|e| StampError::Serialize(e.to_string()))?;
        Ok(Unstamped { text, at })
    }

    /// [`Unstamped::new`] of a body already serialized by serde_json (a stored body), without
    /// building it: only the top-level `metadata` is parsed, every other member is copied as
    /// it stands. A delete restamps its report's last state this way inside the single writer,
    /// where parsing a 3 MiB body of 50,000 results into a [`Value`] took hundreds of
    /// milliseconds. Same bytes as `Unstamped::new(&serde_json::from_str(text)?)` for text
    /// serde_json wrote (compact).
    pub fn from_serialized(text: &str) -> Result<Unstamped, StampError> {
        let top: Members<'_> = serde_json::from_str(text).map_err(|e| StampError::Parse(e.to_string()))?;
        let mut out = Vec::with_capacity(text.len() + 32);
        let mut at = None;
        out.push(b'{');
        for (i, (key, value)) in top.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json(&mut out, key)?;
            out.push(b':');
            if key == "metadata" {
                let metadata: Map<String, Value> =
                    serde_json::from_str(value.get()).map_err(|_| StampError::NoMetadata)?;
                at = Some(write_metadata(&mut out, &metadata)?);
            } else {
                out.extend_from_slice(value.get().as_bytes());
            }
        }
        Unstamped::finish(out, at, !top.0.is_empty())
    }

    /// The body with `metadata.resourceVersion` set to `revision`.
    pub fn stamp(&self, revision: i64) -> String {
        let revision = revision.to_string();
        let mut s = String::with_capacity(self.text.len() + revision.len());
        s.push_str(&self.text[..self.at]);
        s.push_str(&revision);
        s.push_str(&self.text[self.at..]);
        s
    }

    /// The length of the body without its revision.
    pub fn unstamped_len(&self) -> usize {
        self.text.len()
    }
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), StampError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| StampError::Serialize(e.to_string()))
}

/// Writes `metadata` with an empty `resourceVersion` (in its place, else last); returns the
/// offset between the empty value's quotes.
fn write_metadata(out: &mut Vec<u8>, metadata: &Map<String, Value>) -> Result<usize, StampError> {
    let mut at = None;
    out.push(b'{');
    for (i, (key, value)) in metadata.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if key == "resourceVersion" {
            out.extend_from_slice(br#""resourceVersion":""#);
            at = Some(out.len());
            out.push(b'"');
        } else {
            write_json(out, key)?;
            out.push(b':');
            write_json(out, value)?;
        }
    }
    let at = match at {
        Some(at) => at,
        None => {
            if !metadata.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(br#""resourceVersion":""#);
            let at = out.len();
            out.push(b'"');
            at
        }
    };
    out.push(b'}');
    Ok(at)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// What stamping means: `Map::insert` on the parsed body, then `to_string`.
    fn reference(mut body: Value, revision: i64) -> String {
        let metadata = body
            .as_object_mut()
            .expect("object")
            .entry("metadata")
            .or_insert_with(|| json!({}));
        metadata
            .as_object_mut()
            .expect("metadata object")
            .insert("resourceVersion".into(), revision.to_string().into());
        serde_json::to_string(&body).expect("serialize")
    }

    fn check(body: Value) {
        let unstamped = Unstamped::new(&body).expect("stampable");
        // A stored body (any stamp of it) restamps to the same bytes without being built.
        let stored = unstamped.stamp(5);
        assert_eq!(
            Unstamped::from_serialized(&stored).expect("stored body"),
            Unstamped::new(&serde_json::from_str(&stored).expect("json")).expect("stampable"),
            "{stored}"
        );
        for revision in [0, 7, 1234567, i64::MAX] {
            let stamped = unstamped.stamp(revision);
            assert_eq!(stamped, reference(body.clone(), revision), "{body}");
            assert_eq!(
                stamped.len(),
                unstamped.unstamped_len() + revision.to_string().len()
            );
        }
    }

    #[test]
    fn matches_insert_then_serialize() {
        check(json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n", "uid": "u"}}));
        check(json!({"metadata": {}}));
        check(json!({}));
        check(json!({"kind": "K"}));
        check(json!({"kind": "K", "metadata": {"name": "a\"b\\c\u{1}é😀", "labels": {"x/y": "z"}}}));
        check(json!({"metadata": {"name": "n"}, "results": [], "summary": {"pass": 1}}));
    }

    #[test]
    fn an_existing_resource_version_keeps_its_place() {
        let body = json!({"metadata": {"name": "n", "resourceVersion": "41", "uid": "u"}, "x": 1});
        check(body.clone());
        let stamped = Unstamped::new(&body).expect("stampable").stamp(42);
        assert_eq!(
            stamped,
            r#"{"metadata":{"name":"n","resourceVersion":"42","uid":"u"},"x":1}"#
        );
        check(json!({"metadata": {"resourceVersion": 5}}));
    }

    #[test]
    fn key_order_is_kept_and_the_new_key_comes_last() {
        let body = json!({"zeta": 1, "metadata": {"uid": "u", "name": "n"}, "alpha": [1, 2]});
        let stamped = Unstamped::new(&body).expect("stampable").stamp(3);
        assert_eq!(
            stamped,
            r#"{"zeta":1,"metadata":{"uid":"u","name":"n","resourceVersion":"3"},"alpha":[1,2]}"#
        );
        let bare = Unstamped::new(&json!({"kind": "K"})).expect("stampable").stamp(3);
        assert_eq!(bare, r#"{"kind":"K","metadata":{"resourceVersion":"3"}}"#);
    }

    #[test]
    fn nested_resource_versions_are_left_alone() {
        let body = json!({
            "results": [{"resources": [{"kind": "Pod", "resourceVersion": "99"}],
                         "metadata": {"resourceVersion": "98"}}],
            "metadata": {"name": "n", "annotations": {"resourceVersion": "97"}},
            "spec": {"metadata": {"resourceVersion": "96"}},
        });
        check(body.clone());
        let stamped = Unstamped::new(&body).expect("stampable").stamp(1000);
        let parsed: Value = serde_json::from_str(&stamped).expect("json");
        assert_eq!(parsed["metadata"]["resourceVersion"], "1000");
        assert_eq!(parsed["results"][0]["resources"][0]["resourceVersion"], "99");
        assert_eq!(parsed["results"][0]["metadata"]["resourceVersion"], "98");
        assert_eq!(parsed["metadata"]["annotations"]["resourceVersion"], "97");
        assert_eq!(parsed["spec"]["metadata"]["resourceVersion"], "96");
    }

    #[test]
    fn bodies_that_cannot_be_stamped() {
        for body in [
            json!([1]),
            json!("x"),
            json!(null),
            json!({"metadata": "x"}),
            json!({"metadata": []}),
        ] {
            assert_eq!(Unstamped::new(&body), Err(StampError::NoMetadata), "{body}");
        }
        for text in [r#"{"metadata":"x"}"#, r#"{"metadata":[]}"#] {
            assert_eq!(
                Unstamped::from_serialized(text),
                Err(StampError::NoMetadata),
                "{text}"
            );
        }
        for text in ["[1]", "\"x\"", "null", "{", r#"{"a":1}x"#] {
            assert!(
                matches!(Unstamped::from_serialized(text), Err(StampError::Parse(_))),
                "{text}"
            );
        }
    }
}

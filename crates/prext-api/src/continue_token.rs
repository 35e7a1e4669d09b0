//! Continue tokens for paginated LISTs.
//!
//! A token records the store revision of the first page's snapshot and the last key
//! `(namespace, name)` returned, so the next page resumes strictly after that key at the
//! same revision. Clients treat it as opaque; it is URL-safe base64 (no padding) of a
//! small JSON document carrying a version marker and a checksum, so that garbage,
//! truncation and edits are rejected (400 "invalid continue token") instead of silently
//! listing from the wrong place. The checksum detects corruption; it is not a secret
//! signature (a token only ever lets a client read what it could list anyway).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The version marker written into every token.
const VERSION: &str = "prext/v1";
/// Tokens longer than this are rejected before decoding. Real tokens stay far below it:
/// names are at most 253 bytes and namespaces 63.
const MAX_ENCODED_LEN: usize = 4096;
/// Checksum length in bytes (hex-encoded in the token).
const CHECKSUM_LEN: usize = 8;

/// Where the next page of a LIST resumes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContinueToken {
    /// The store revision the first page was read at; later pages read the same snapshot.
    pub revision: i64,
    /// Namespace of the last object returned (empty for cluster-scoped kinds).
    pub namespace: String,
    /// Name of the last object returned.
    pub name: String,
}

/// Why a continue token was rejected. The API server answers all of them with
/// 400 BadRequest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidContinueToken {
    /// The token exceeds any length a real token can have.
    #[error("continue token is too long ({0} bytes)")]
    TooLong(usize),
    /// Not URL-safe base64 without padding.
    #[error("continue token is not valid URL-safe base64: {0}")]
    Encoding(String),
    /// Not the expected JSON document (e.g. a token from another server).
    #[error("continue token is malformed: {0}")]
    Malformed(String),
    /// Written by an incompatible version of prext.
    #[error("continue token version {0:?} is not supported")]
    Version(String),
    /// The content was altered or corrupted.
    #[error("continue token checksum does not match its content")]
    Checksum,
}

/// The JSON document inside a token.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: String,
    rv: i64,
    ns: String,
    name: String,
    sum: String,
}

impl ContinueToken {
    /// Encodes the token for `metadata.continue`.
    pub fn encode(&self) -> String {
        let wire = Wire {
            v: VERSION.to_string(),
            rv: self.revision,
            ns: self.namespace.clone(),
            name: self.name.clone(),
            sum: checksum(VERSION, self.revision, &self.namespace, &self.name),
        };
        // Serializing a struct of strings and an integer cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a token received in the `continue` query parameter. An empty parameter
    /// means "first page" and must be handled by the caller; here it is an error.
    pub fn decode(token: &str) -> Result<ContinueToken, InvalidContinueToken> {
        if token.len() > MAX_ENCODED_LEN {
            return Err(InvalidContinueToken::TooLong(token.len()));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|e| InvalidContinueToken::Encoding(e.to_string()))?;
        let wire: Wire =
            serde_json::from_slice(&bytes).map_err(|e| InvalidContinueToken::Malformed(e.to_string()))?;
        if wire.v != VERSION {
            return Err(InvalidContinueToken::Version(wire.v));
        }
        if wire.sum != checksum(&wire.v, wire.rv, &wire.ns, &wire.name) {
            return Err(InvalidContinueToken::Checksum);
        }
        Ok(ContinueToken {
            revision: wire.rv,
            namespace: wire.ns,
            name: wire.name,
        })
    }
}

/// Truncated SHA-256 over an unambiguous (length-prefixed) encoding of the fields.
fn checksum(version: &str, revision: i64, namespace: &str, name: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [version.as_bytes(), namespace.as_bytes(), name.as_bytes()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.update(revision.to_be_bytes());
    hex::encode(&hasher.finalize()[..CHECKSUM_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token() -> ContinueToken {
        ContinueToken {
            revision: 42,
            namespace: "default".into(),
            name: "polr-ns-default".into(),
        }
    }

    fn wrap(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn encodes_url_safe_without_padding() {
        let t = token().encode();
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(ContinueToken::decode(&t), Ok(token()));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            ContinueToken::decode("not base64!"),
            Err(InvalidContinueToken::Encoding(_))
        ));
        assert!(matches!(
            ContinueToken::decode(""),
            Err(InvalidContinueToken::Malformed(_))
        ));
        assert!(matches!(
            ContinueToken::decode(&wrap(r#"{"rv":1}"#)),
            Err(InvalidContinueToken::Malformed(_))
        ));
        assert_eq!(
            ContinueToken::decode(&"A".repeat(5000)),
            Err(InvalidContinueToken::TooLong(5000))
        );
    }

    #[test]
    fn rejects_upstream_and_foreign_versions() {
        // A kube-apiserver token has a different shape altogether.
        let upstream = wrap(r#"{"v":"meta.k8s.io/v1","rv":5,"start":"default/x\u0000"}"#);
        assert!(ContinueToken::decode(&upstream).is_err());
        let sum = checksum("prext/v2", 1, "a", "b");
        let v2 = wrap(&format!(
            r#"{{"v":"prext/v2","rv":1,"ns":"a","name":"b","sum":"{sum}"}}"#
        ));
        assert_eq!(
            ContinueToken::decode(&v2),
            Err(InvalidContinueToken::Version("prext/v2".into()))
        );
    }

    #[test]
    fn rejects_edited_fields() {
        let sum = checksum(VERSION, 42, "default", "polr-ns-default");
        let edited = wrap(&format!(
            r#"{{"v":"prext/v1","rv":43,"ns":"default","name":"polr-ns-default","sum":"{sum}"}}"#
        ));
        assert_eq!(
            ContinueToken::decode(&edited),
            Err(InvalidContinueToken::Checksum)
        );
        // Moving bytes between namespace and name changes the checksum too.
        assert_ne!(checksum(VERSION, 1, "ab", "c"), checksum(VERSION, 1, "a", "bc"));
    }

    proptest! {
        #[test]
        fn round_trips(revision in any::<i64>(), namespace in ".*", name in ".*") {
            let t = ContinueToken { revision, namespace, name };
            prop_assert_eq!(ContinueToken::decode(&t.encode()), Ok(t));
        }

        #[test]
        fn garbage_is_rejected(s in ".*") {
            prop_assert!(ContinueToken::decode(&s).is_err());
        }

        #[test]
        fn base64_garbage_is_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert!(ContinueToken::decode(&URL_SAFE_NO_PAD.encode(bytes)).is_err());
        }

        #[test]
        fn any_single_character_edit_is_rejected(
            revision in any::<i64>(),
            name in "[a-z0-9.-]{1,40}",
            pos in any::<prop::sample::Index>(),
            replacement in "[A-Za-z0-9_-]",
        ) {
            let t = ContinueToken { revision, namespace: "ns".into(), name };
            let encoded = t.encode();
            let i = pos.index(encoded.len());
            prop_assume!(encoded[i..i + 1] != replacement);
            let edited = format!("{}{}{}", &encoded[..i], replacement, &encoded[i + 1..]);
            prop_assert!(ContinueToken::decode(&edited).is_err());
        }
    }
}

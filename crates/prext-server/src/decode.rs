//! Request bodies decoded off the async workers.
//!
//! Parsing is linear in the body once nesting is bounded (`prext_api::limits`), but a 3 MiB YAML
//! body still costs about a second of CPU: on one of the few async workers that would stall
//! every request scheduled there. Large bodies are decoded on the blocking pool, at most
//! [`CONCURRENT_DECODES`] at a time (the others wait without holding a worker); JSON bodies up
//! to [`INLINE_JSON_BYTES`], the common case and the 197 KB reports of large scanners alike,
//! are decoded in place: about a millisecond of CPU at most, and the tree is then built by the
//! thread that goes on to validate, index and free it. Built on a blocking-pool thread, the
//! tree of a large report was freed by a worker into the other thread's allocator heap, where
//! it stayed committed once that thread went idle (`scripts/rss-large`: about 6 MB more
//! resident after 200 creates of 197 KB with 16 clients).

use bytes::Bytes;
use prext_api::meta::{decode_body_checked, BodyFormat};
use prext_api::status::Status;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::registry::FieldValidation;

/// How many large bodies are decoded at once.
pub const CONCURRENT_DECODES: usize = 2;

/// JSON bodies up to this size are decoded in place (about a millisecond at most).
pub const INLINE_JSON_BYTES: usize = 256 * 1024;

static DECODES: Semaphore = Semaphore::const_new(CONCURRENT_DECODES);

/// A decoded body and the duplicate keys its strict decoding found.
#[derive(Debug)]
pub struct Decoded {
    pub value: Value,
    /// The `duplicate field "…"` messages, when `fieldValidation` wants them (Strict refuses
    /// them, Warn warns; Ignore and YAML bodies skip the scan).
    pub duplicates: Vec<String>,
}

/// [`decode_body_checked`]: the body and, for a JSON body whose `fieldValidation` is not
/// `Ignore`, its duplicate keys, found in the same parse, in the caller's thread.
pub fn body_with_duplicates(
    bytes: &[u8],
    format: BodyFormat,
    field_validation: FieldValidation,
) -> Result<Decoded, Status> {
    let find = field_validation != FieldValidation::Ignore;
    let (value, duplicates) = decode_body_checked(bytes, format, find)?;
    Ok(Decoded { value, duplicates })
}

/// [`body_with_duplicates`], on the blocking pool unless the body is small JSON.
pub async fn checked(
    bytes: Bytes,
    format: BodyFormat,
    field_validation: FieldValidation,
) -> Result<Decoded, Status> {
    if format == BodyFormat::Json && bytes.len() <= INLINE_JSON_BYTES {
        return body_with_duplicates(&bytes, format, field_validation);
    }
    let _permit = DECODES
        .acquire()
        .await
        .map_err(|_| Status::internal("the body decoder is closed"))?;
    tokio::task::spawn_blocking(move || body_with_duplicates(&bytes, format, field_validation))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "body decoding task failed");
            Err(Status::internal("decoding the request body failed"))
        })
}

/// The body alone, on the blocking pool unless it is small JSON (no duplicate scan).
pub async fn body(bytes: Bytes, format: BodyFormat) -> Result<Value, Status> {
    checked(bytes, format, FieldValidation::Ignore)
        .await
        .map(|d| d.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_and_yaml_bodies_decode_like_small_json_ones() {
        let yaml = body(Bytes::from_static(b"a: [1, {b: c}]\n"), BodyFormat::Yaml)
            .await
            .expect("yaml");
        assert_eq!(yaml, serde_json::json!({"a": [1, {"b": "c"}]}));
        let big = serde_json::json!({"m": "x".repeat(INLINE_JSON_BYTES + 1)});
        let decoded = body(Bytes::from(big.to_string()), BodyFormat::Json)
            .await
            .expect("json");
        assert_eq!(decoded, big);
        let err = body(Bytes::from_static(b"[1]"), BodyFormat::Yaml)
            .await
            .unwrap_err();
        assert_eq!(err.code, 400);
    }
}

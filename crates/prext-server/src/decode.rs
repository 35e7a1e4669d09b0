//! Request bodies decoded off the async workers.
//!
//! Parsing is linear in the body once nesting is bounded (`prext_api::limits`), but a 3 MiB YAML
//! body still costs about a second of CPU: on one of the few async workers that would stall
//! every request scheduled there. Large bodies are decoded on the blocking pool, at most
//! [`CONCURRENT_DECODES`] at a time (the others wait without holding a worker); small JSON
//! bodies, the common case, are decoded in place.

use bytes::Bytes;
use prext_api::meta::{decode_body, BodyFormat};
use prext_api::status::Status;
use serde_json::Value;
use tokio::sync::Semaphore;

/// How many large bodies are decoded at once.
pub const CONCURRENT_DECODES: usize = 2;

/// JSON bodies up to this size are decoded in place (well under a millisecond).
const INLINE_JSON_BYTES: usize = 64 * 1024;

static DECODES: Semaphore = Semaphore::const_new(CONCURRENT_DECODES);

/// [`decode_body`], on the blocking pool unless the body is small JSON.
pub async fn body(bytes: Bytes, format: BodyFormat) -> Result<Value, Status> {
    if format == BodyFormat::Json && bytes.len() <= INLINE_JSON_BYTES {
        return decode_body(&bytes, format);
    }
    let _permit = DECODES
        .acquire()
        .await
        .map_err(|_| Status::internal("the body decoder is closed"))?;
    tokio::task::spawn_blocking(move || decode_body(&bytes, format))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "body decoding task failed");
            Err(Status::internal("decoding the request body failed"))
        })
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
        let big = serde_json::json!({"m": "x".repeat(100_000)});
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

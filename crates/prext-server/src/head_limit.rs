//! The size limit of a request's head (request line and header fields), answered with a
//! `Status`.
//!
//! kube-apiserver serves with Go's `MaxHeaderBytes: 1 << 20` (`k8s.io/apiserver/pkg/server/
//! secure_serving.go`): a head over 1 MiB is refused 431, the URI counting as part of it.
//! prext enforces the same limit here, where the refusal can be a `Status`, and configures
//! hyper's own limits ([`HYPER_HEAD_BYTES`], in `tls.rs`) a little above it, so that hyper's
//! bare answers only meet heads beyond those. Two of hyper's limits stay below kube's: the
//! number of HTTP/1.1 header fields ([`HYPER_MAX_FIELDS`], its default 100; Go counts only
//! bytes: see there why), and an HTTP/1.1 URI over 65,534 bytes (hard-coded in hyper's
//! parser). hyper refuses those before any service sees the request; its answers to them, and
//! to a head over its buffer, get a `Status` body in [`crate::bare_errors`].
//!
//! On HTTP/2 the same URI limit (the `http` crate's, 65,534 bytes) is met inside the `h2`
//! crate, which resets that stream before hyper builds a request (curl reports
//! `REFUSED_STREAM`): no response is sent, so no `Status` can be, and the server goes on
//! serving. kube-apiserver (Go) would serve such a URI up to its 1 MiB head. Lifting it needs a
//! change in `h2` and `http`; the test `http2_uri_over_the_limit_is_refused_and_serving_goes_on`
//! (tests/tls.rs) holds the behaviour.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use prext_api::status::Status;

/// The most bytes of a request's head prext reads (kube-apiserver's `MaxHeaderBytes`).
pub const MAX_HEAD_BYTES: usize = 1 << 20;

/// hyper's limit on a request's head (HTTP/1.1 read buffer, HTTP/2 header list): above
/// [`MAX_HEAD_BYTES`], so that heads between the two are answered by [`check`].
pub const HYPER_HEAD_BYTES: usize = MAX_HEAD_BYTES + 64 * 1024;

/// hyper's limit on the number of HTTP/1.1 header fields, its default: up to this many are
/// parsed on the stack. Go has no such limit, but raising it makes hyper reserve room for that
/// many fields on the heap at every request head (as many as fit in [`HYPER_HEAD_BYTES`]:
/// 17 MiB per parse, which turned a 0.4 ms get into 9.5 ms in `prext-bench`), and no
/// Kubernetes client sends more than a few dozen. A head with more fields gets hyper's 431,
/// with a `Status` body ([`crate::bare_errors`]).
pub const HYPER_MAX_FIELDS: usize = 100;

/// Bytes of the head as sent on HTTP/1.1: `METHOD URI HTTP/1.1\r\n` and `name: value\r\n`
/// per field (HTTP/2 sends less; the same count applies).
pub fn head_bytes(request: &Request) -> usize {
    let line = request.method().as_str().len() + 1 + request.uri().to_string().len() + 11;
    request.headers().iter().fold(line, |n, (name, value)| {
        n.saturating_add(name.as_str().len() + 2 + value.len() + 2)
    })
}

/// Middleware: refuses a request whose head is over [`MAX_HEAD_BYTES`] with a 431 `Status`.
pub async fn check(request: Request, next: Next) -> Response {
    let size = head_bytes(&request);
    if size > MAX_HEAD_BYTES {
        tracing::debug!(size, "request head over the limit: answered 431");
        return crate::error::status_response(&Status::header_fields_too_large(size, MAX_HEAD_BYTES));
    }
    next.run(request).await
}

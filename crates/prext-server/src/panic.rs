//! Panics: a request whose handler panics is answered with a 500 `Status` instead of a dropped
//! connection (kube-apiserver's `WithPanicRecovery`), and a panic is logged as one line, with a
//! backtrace only when `RUST_BACKTRACE` asks for one.

use std::panic::AssertUnwindSafe;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures::FutureExt as _;
use prext_api::status::Status;

/// kube-apiserver's answer to a request that panicked (`filters.WithPanicRecovery`).
pub const PANIC_MESSAGE: &str = "This request caused apiserver to panic. Look in the logs for details.";

/// Middleware: runs the rest of the stack and turns a panic into a 500 `Status`. The panic
/// itself is logged by the hook ([`install_hook`]), once.
pub async fn recover(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(%method, %path, "request handler panicked: answered 500");
            crate::error::status_response(&Status::internal(PANIC_MESSAGE))
        }
    }
}

/// Replaces the default panic hook (several lines on stderr, and a full backtrace for every
/// panic when `RUST_BACKTRACE` is set) with one `ERROR` log line naming the location and the
/// message; the backtrace is added to that line only when `RUST_BACKTRACE` (or
/// `RUST_LIB_BACKTRACE`) is set to something else than `0`.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic payload)".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
        if backtrace_wanted() {
            let backtrace = std::backtrace::Backtrace::force_capture();
            tracing::error!(%thread, %location, %message, %backtrace, "panic");
        } else {
            tracing::error!(%thread, %location, %message, "panic");
        }
    }));
}

fn backtrace_wanted() -> bool {
    ["RUST_LIB_BACKTRACE", "RUST_BACKTRACE"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .is_some_and(|v| v != "0")
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_status() {
        let app = axum::Router::new()
            .route(
                "/boom",
                get(|| async {
                    if std::hint::black_box(true) {
                        panic!("boom");
                    }
                    "never"
                }),
            )
            .route("/ok", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(recover));
        let resp = app
            .clone()
            .oneshot(Request::get("/boom").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(resp.status(), 500);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let status: serde_json::Value = serde_json::from_slice(&body).expect("Status");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "InternalError");
        assert_eq!(status["message"], PANIC_MESSAGE);
        // The router still serves afterwards.
        let resp = app
            .oneshot(Request::get("/ok").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(resp.status(), 200);
    }
}

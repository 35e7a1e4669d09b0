//! hyper itself, serving HTTP/1.1 over an in-memory pipe through [`StatusBodies`]: its bare
//! answers become `Status` responses, everything else passes unchanged.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Sends `request` to a hyper HTTP/1.1 server (answering 200 `hello`) over a pipe of
/// `pipe` bytes (small pipes make every write partial) and returns all it answers.
async fn exchange(request: Vec<u8>, pipe: usize, max_buf: usize) -> String {
    let (client, server) = tokio::io::duplex(pipe);
    let served = tokio::spawn(async move {
        let service = hyper::service::service_fn(|_req| async {
            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"hello"))))
        });
        let _ = http1::Builder::new()
            .max_buf_size(max_buf)
            .keep_alive(false)
            .half_close(true)
            .serve_connection(TokioIo::new(StatusBodies::new(server)), service)
            .await;
    });
    let (mut read, mut write) = tokio::io::split(client);
    let writer = tokio::spawn(async move {
        // The server may answer and close before it has read everything.
        let _ = write.write_all(&request).await;
        let _ = write.shutdown().await;
    });
    let mut answer = Vec::new();
    read.read_to_end(&mut answer).await.expect("read the answer");
    writer.await.expect("writer");
    served.await.expect("server");
    String::from_utf8(answer).expect("UTF-8 answer")
}

fn status_of(answer: &str) -> serde_json::Value {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("content-length")
        .parse()
        .expect("a length");
    assert_eq!(length, body.len(), "{head}");
    serde_json::from_str(body).expect("a JSON body")
}

#[tokio::test]
async fn a_uri_over_hypers_limit_gets_a_414_status() {
    let uri = format!(
        "/apis/wgpolicyk8s.io/v1alpha2/policyreports?labelSelector={}",
        "a".repeat(100_000)
    );
    let request = format!("GET {uri} HTTP/1.1\r\nhost: prext\r\n\r\n").into_bytes();
    for pipe in [64, 1 << 20] {
        let answer = exchange(request.clone(), pipe, 2 << 20).await;
        assert!(answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{answer}");
        let status = status_of(&answer);
        assert_eq!(
            (&status["kind"], &status["status"], &status["code"]),
            (
                &serde_json::json!("Status"),
                &serde_json::json!("Failure"),
                &serde_json::json!(414)
            ),
            "{status}"
        );
        assert!(
            status["message"]
                .as_str()
                .unwrap_or_default()
                .contains("65534 bytes"),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_head_over_hypers_buffer_gets_a_431_status() {
    let request = format!(
        "GET / HTTP/1.1\r\nhost: prext\r\nx-filler: {}\r\n\r\n",
        "a".repeat(20_000)
    )
    .into_bytes();
    let answer = exchange(request, 256, 8_192).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert_eq!(status_of(&answer)["code"], 431);
}

#[tokio::test]
async fn other_answers_pass_unchanged() {
    let uri = format!("/?pad={}", "a".repeat(60_000));
    let request = format!("GET {uri} HTTP/1.1\r\nhost: prext\r\n\r\n").into_bytes();
    let answer = exchange(request, 64, 2 << 20).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
}

#[test]
fn only_whole_empty_heads_of_those_codes_are_replaced() {
    let bare = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
    assert!(replacement(bare).is_some());
    // A head with a body, a partial head, another code, body bytes: unchanged.
    for other in [
        &b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 5\r\n\r\n"[..],
        b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n",
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        b"{\"kind\":\"Status\",\"code\":414}",
    ] {
        assert!(replacement(other).is_none(), "{}", String::from_utf8_lossy(other));
    }
}

//! Request bodies and parameters built to make the server work hard or fail: each is refused
//! with a `Status` and the server goes on serving.

use serde_json::{json, Value};

use crate::common::http::{create, get, post, Req};
use crate::common::samples::{report, POLR};
use crate::common::TestServer;

/// `?watch=true&timeoutSeconds=9223372036854775807` once panicked the watch task (an `Instant`
/// overflow) and answered 200 with an empty body; the watch now runs (and ends on request).
#[tokio::test]
async fn huge_watch_timeouts_are_clamped_not_a_panic() {
    let server = TestServer::start();
    let client = server.client().await;
    create(&client, POLR, "h", "one", &[]).await;
    let path = format!(
        "{}?watch=true&timeoutSeconds={}",
        POLR.collection(Some("h")),
        i64::MAX
    );
    let req = http::Request::get(path)
        .body(kube::client::Body::empty())
        .expect("request");
    let resp = client.send(req).await.expect("watch starts");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        use http_body_util::BodyExt as _;
        let mut got = Vec::new();
        while !got.contains(&b'\n') {
            let frame = body.frame().await.expect("an event").expect("a frame");
            if let Ok(data) = frame.into_data() {
                got.extend_from_slice(&data);
            }
        }
        got
    })
    .await
    .expect("the first event within 10 s");
    let event: Value = serde_json::from_slice(&first[..first.iter().position(|b| *b == b'\n').unwrap_or(0)])
        .expect("an event line");
    assert_eq!(event["type"], "ADDED", "{event}");
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
}

/// `policyresults?property=%5C%3D1` (a key of one backslash) was a 500 "bad JSON path".
#[tokio::test]
async fn property_keys_with_path_syntax_are_plain_keys() {
    let server = TestServer::start();
    let client = server.client().await;
    for query in [
        "property=%5C%3D1",
        "property=%5C",
        "property=a%22b%3D1",
        "property=%24.x%3E%3D1",
    ] {
        let resp = get(
            &client,
            &format!("/apis/results.prext.io/v1alpha1/policyresults?{query}"),
        )
        .await;
        assert_eq!(resp.status, 200, "{query}: {}", resp.text());
        assert_eq!(resp.json()["items"], json!([]), "{query}");
    }
    assert!(!server.logs().contains("ERROR"), "{}", server.logs());
}

/// 100,000 nested flow sequences in 200 KB of YAML took 20 s of parsing; the nesting is now
/// refused before the parser runs, on bodies and on apply patches alike.
#[tokio::test]
async fn deeply_nested_yaml_is_refused_before_parsing() {
    let server = TestServer::start();
    let client = server.client().await;
    let n = 100_000;
    let deep = format!(
        "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata:\n  name: deep\nresults: {}{}\n",
        "[".repeat(n),
        "]".repeat(n)
    );
    let started = std::time::Instant::now();
    let status = Req::new(&client, http::Method::POST, &POLR.collection(Some("y")))
        .body_with("application/yaml", deep.clone().into_bytes())
        .send()
        .await
        .expect_status(400, "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .contains("nesting deeper than"),
        "{status}"
    );
    let status = Req::new(&client, http::Method::PATCH, &POLR.item(Some("y"), "deep"))
        .header("content-type", "application/apply-patch+yaml")
        .body_with("application/apply-patch+yaml", deep.into_bytes())
        .send()
        .await;
    let status = status.expect_status(400, "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .contains("nesting deeper than"),
        "{status}"
    );
    eprintln!("two deep YAML bodies refused in {:?}", started.elapsed());
    get(&client, &POLR.collection(Some("y"))).await.expect(200);
}

/// A 1.3 KB patch (`add /extra [0]` then 24 copies of `/extra` into itself) drove RSS to
/// 2.7 GB; the copies now count against the body limit (413) and nothing is stored.
#[tokio::test]
async fn amplifying_json_patches_are_refused() {
    let server = TestServer::start();
    let client = server.client().await;
    create(&client, POLR, "p", "amp", &[]).await;
    let mut ops = vec![
        json!({"op": "add", "path": "/metadata/annotations", "value": {}}),
        json!({"op": "add", "path": "/extra", "value": [0]}),
    ];
    ops.extend((0..24).map(|_| json!({"op": "copy", "from": "/extra", "path": "/extra/-"})));
    let patch = |ops: &Vec<Value>| {
        Req::new(&client, http::Method::PATCH, &POLR.item(Some("p"), "amp")).body_with(
            "application/json-patch+json",
            Value::Array(ops.clone()).to_string().into_bytes(),
        )
    };
    patch(&ops)
        .send()
        .await
        .expect_status(413, "RequestEntityTooLarge");
    let too_many: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/kind", "value": "PolicyReport"}))
        .collect();
    let status = patch(&too_many)
        .send()
        .await
        .expect_status(413, "RequestEntityTooLarge");
    assert_eq!(
        status["message"],
        "The allowed maximum operations in a JSON patch is 10000, got 10001"
    );
    let stored = get(&client, &POLR.item(Some("p"), "amp"))
        .await
        .expect(200)
        .json();
    assert!(stored.get("extra").is_none(), "nothing stored: {stored}");
}

/// 300,000 invalid results in a 0.9 MB body got a 39.4 MB 422 listing every cause; the causes
/// are now capped and the last one says how many were left out.
#[tokio::test]
async fn error_causes_are_capped() {
    let server = TestServer::start();
    let client = server.client().await;
    let mut body = report(POLR, "c", "many", &[]);
    body["results"] = Value::Array((0..300_000).map(|_| json!(1)).collect());
    let resp = post(&client, &POLR.collection(Some("c")), &body).await;
    assert!(
        resp.body.len() < 64 * 1024,
        "a small 422: {} bytes",
        resp.body.len()
    );
    let status = resp.expect_status(422, "Invalid");
    let causes = status["details"]["causes"].as_array().expect("causes").clone();
    assert_eq!(causes.len(), 101, "{status}");
    let last = causes.last().and_then(|c| c["message"].as_str()).unwrap_or("");
    assert!(last.ends_with("more errors not listed"), "{last}");
}

/// A continue token forged with resourceVersion i64::MAX was echoed as the list's
/// resourceVersion; a revision the store has not reached is now a 504 `Timeout`
/// (`NewTooLargeResourceVersionError`), as for any resourceVersion from the future.
#[tokio::test]
async fn forged_continue_tokens_from_the_future_are_refused() {
    let server = TestServer::start();
    let client = server.client().await;
    create(&client, POLR, "t", "one", &[]).await;
    let token = prext_api::continue_token::ContinueToken {
        revision: i64::MAX,
        namespace: "t".into(),
        name: "a".into(),
    }
    .encode();
    let resp = get(
        &client,
        &format!("{}?limit=1&continue={token}", POLR.collection(Some("t"))),
    )
    .await;
    let status = resp.expect_status(504, "Timeout");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .contains("Too large resource version"),
        "{status}"
    );
}

/// A request head (URI and header fields) over 1 MiB, kube-apiserver's `MaxHeaderBytes`
/// (`k8s.io/apiserver/pkg/server/secure_serving.go`, Go answering 431), was refused by hyper
/// with an empty 431; it is now a 431 `Status`, the URI counting as part of the head. Heads
/// under the limit are served.
#[tokio::test]
async fn oversized_request_heads_get_a_status() {
    use http::Method;
    let server = TestServer::start();
    let client = server.client().await;
    let path = POLR.collection(Some("h"));
    // A Status of code 431 with no reason: Kubernetes has none for this code
    // (`StatusReasonUnknown`, omitted when empty).
    let status_431 = |raw: crate::common::http::Raw| {
        let status = raw.expect(431).json();
        assert_eq!(
            (&status["kind"], &status["status"], &status["code"]),
            (&json!("Status"), &json!("Failure"), &json!(431)),
            "{status}"
        );
        assert!(status.get("reason").is_none(), "{status}");
        status
    };
    let over = status_431(
        Req::new(&client, Method::GET, &path)
            .header("x-filler", &"a".repeat(1_050_000))
            .send()
            .await,
    );
    let message = over["message"].as_str().unwrap_or_default();
    assert!(message.contains("limit of 1048576 bytes"), "{over}");
    // A long URI counts: 60,000 bytes of it (under hyper's own URI limit) tip the head over.
    let long_uri = format!("{path}?pad={}", "b".repeat(60_000));
    status_431(
        Req::new(&client, Method::GET, &long_uri)
            .header("x-filler", &"a".repeat(1_000_000))
            .send()
            .await,
    );
    // Under the limit the request is served.
    Req::new(&client, Method::GET, &path)
        .header("x-filler", &"a".repeat(1_000_000))
        .send()
        .await
        .expect(200);
    get(&client, &path).await.expect(200);
}

/// Go limits a request head by its bytes alone (`MaxHeaderBytes`, 1 MiB in kube-apiserver's
/// `k8s.io/apiserver/pkg/server/secure_serving.go`); hyper also limits HTTP/1.1 heads to 100
/// fields, which prext keeps (raising it costs every request: `head_limit::HYPER_MAX_FIELDS`).
/// Ordinary heads are served; a head of many fields, refused by hyper itself, gets a 431
/// `Status` (it was an empty 431), and the connection's next client is served. (kube-rs speaks
/// HTTP/1.1.)
#[tokio::test]
async fn heads_of_many_fields_get_a_status() {
    use http::Method;
    let server = TestServer::start();
    let client = server.client().await;
    let path = POLR.collection(Some("h"));
    let with_fields = |n: usize, value: &str| {
        (0..n).fold(Req::new(&client, Method::GET, &path), |req, i| {
            req.header(&format!("x-f-{i:05}"), value)
        })
    };
    with_fields(60, "v").send().await.expect(200);
    for (n, value) in [(300, "v".to_owned()), (12_000, "a".repeat(77))] {
        let status = with_fields(n, &value).send().await.expect(431).json();
        assert_eq!(
            (&status["kind"], &status["status"], &status["code"]),
            (&json!("Status"), &json!("Failure"), &json!(431)),
            "{status}"
        );
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains("more than 100 header fields"), "{status}");
    }
    get(&client, &path).await.expect(200);
}

//! Durability: a graceful restart keeps every object with its resourceVersion (and the
//! PKI), and a `kill -9` in the middle of concurrent writes loses no acknowledged create.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use common::http::{get, names, post};
use common::samples::{report, rv, CPOLR, EPHR, POLR};
use common::TestServer;

fn ca_data(server: &TestServer) -> String {
    let text = std::fs::read_to_string(&server.kubeconfig).expect("read kubeconfig");
    let kc: Value = serde_norway::from_str(&text).expect("kubeconfig YAML");
    kc["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("CA data")
        .to_string()
}

#[tokio::test]
async fn restart_keeps_objects_resource_versions_and_pki() {
    let mut server = TestServer::start();
    let client = server.client().await;
    let mut before = Vec::new();
    for (kind, ns, name) in [
        (POLR, "d1", "a"),
        (POLR, "d2", "b"),
        (CPOLR, "", "c"),
        (EPHR, "d1", "e"),
    ] {
        let obj = post(
            &client,
            &kind.collection(Some(ns)),
            &report(kind, ns, name, &[("keep", "yes")]),
        )
        .await
        .expect(201)
        .json();
        before.push((kind, ns, name, obj));
    }
    let list_before = get(&client, &POLR.collection(None)).await.expect(200).json();
    let ca_before = ca_data(&server);
    let max_rv = before.iter().map(|(_, _, _, o)| rv(o)).max().expect("objects");

    server.restart();
    assert_eq!(ca_data(&server), ca_before, "the CA survives a restart");
    let client = server.client().await;
    for (kind, ns, name, obj) in &before {
        let now = get(&client, &kind.item(Some(ns), name)).await.expect(200).json();
        assert_eq!(&now, obj, "{name} is unchanged, resourceVersion included");
    }
    let list_after = get(&client, &POLR.collection(None)).await.expect(200).json();
    assert_eq!(names(&list_after), names(&list_before));
    assert!(
        rv(&list_after) >= max_rv,
        "list RV does not go back after a restart"
    );

    let new = post(
        &client,
        &POLR.collection(Some("d1")),
        &report(POLR, "d1", "new", &[]),
    )
    .await
    .expect(201)
    .json();
    assert!(
        rv(&new) > max_rv,
        "revisions continue after a restart: {} <= {max_rv}",
        rv(&new)
    );
    let out = server.kubectl_ok(&["get", "polr", "-A", "-o", "name"]);
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[tokio::test]
async fn sigterm_ends_open_watches_cleanly_and_exits_zero() {
    let mut server = TestServer::start();
    let client = server.client().await;
    let coll = POLR.collection(Some("drain"));
    let req = http::Request::get(format!("{coll}?watch=1&timeoutSeconds=300"))
        .body(kube::client::Body::empty())
        .expect("request");
    let res = client.send(req).await.expect("open watch");
    assert_eq!(res.status(), http::StatusCode::OK);
    let body = tokio::spawn(res.into_body().collect_bytes());
    post(&client, &coll, &report(POLR, "drain", "x", &[]))
        .await
        .expect(201);

    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    })
    .await
    .expect("terminate");
    assert!(
        status.0.success(),
        "exit status after SIGTERM: {}\n{}",
        status.0,
        status.1.logs()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "open watches do not hold up shutdown"
    );
    let body = tokio::time::timeout(Duration::from_secs(60), body)
        .await
        .expect("watch ends with the server")
        .expect("join");
    let body = body.expect("the watch body ends cleanly, not with a reset");
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains(r#""type":"ADDED""#),
        "events before shutdown were delivered: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_loses_no_acknowledged_create() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 400;
    let mut server = TestServer::start();
    let client = server.client().await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let client = client.clone();
        let acked = acked.clone();
        let count = count.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let name = format!("w{w}-{i}");
                let body = report(POLR, "crash", &name, &[]);
                let req = http::Request::post(POLR.collection(Some("crash")))
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body.to_string().into_bytes()))
                    .expect("request");
                match client.send(req).await {
                    Ok(res) if res.status() == http::StatusCode::CREATED => {
                        acked.lock().expect("acked lock").push(name);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(res) if res.status().is_server_error() => return,
                    Ok(res) => panic!("unexpected status {} for {name}", res.status()),
                    Err(_) => return, // the server died under us
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::SeqCst) < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writers made no progress:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    for t in tasks {
        t.await.expect("writer task");
    }
    let acked = acked.lock().expect("acked lock").clone();
    assert!(acked.len() >= 100, "{} acknowledged creates", acked.len());
    assert!(
        acked.len() < WRITERS * PER_WRITER,
        "the kill happened during the writes"
    );

    server.start_again();
    let client = server.client().await;
    let list = get(&client, &POLR.collection(Some("crash")))
        .await
        .expect(200)
        .json();
    let present: std::collections::HashSet<String> = names(&list).into_iter().collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !present.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged creates lost after kill -9: {lost:?}",
        lost.len()
    );
    // Objects are whole: each one reads back with its results.
    for item in list["items"].as_array().expect("items") {
        assert_eq!(item["results"].as_array().map(Vec::len), Some(1), "{item}");
    }
}

//! prext on PostgreSQL, end to end with the real binary: two replicas on one database (a
//! watch on one sees writes through the other, revisions agree, optimistic concurrency holds
//! across them), and a database outage in the middle (503 with a Status, readiness fails,
//! discovery and liveness keep answering, recovery without restart, no acknowledged write
//! lost). The database is a throwaway cluster started from the PostgreSQL binaries on PATH.

mod common;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, WatchEvent, WatchParams};
use prext_store::testsuite::TempPostgres;
use serde_json::Value;

use common::http::{get, names, post, put};
use common::samples::{report, rv, POLR};
use common::TestServer;

fn polr(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "wgpolicyk8s.io".into(),
        version: "v1alpha2".into(),
        api_version: "wgpolicyk8s.io/v1alpha2".into(),
        kind: "PolicyReport".into(),
        plural: "policyreports".into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

async fn replica(pg: &TempPostgres, database: &str) -> TestServer {
    let url = pg.url(database);
    let password = pg.password_file();
    let password = password.to_str().expect("utf-8 path").to_string();
    tokio::task::spawn_blocking(move || {
        TestServer::start_with(&["--store", &url, "--store-password-file", &password])
    })
    .await
    .expect("start replica")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_revisions_watches_and_optimistic_concurrency() {
    let pg = TempPostgres::new().await;
    let db = pg.create_database().await;
    let a = replica(&pg, &db).await;
    let b = replica(&pg, &db).await;
    let (ca, cb) = (a.client().await, b.client().await);
    let coll = POLR.collection(Some("ha"));

    // A watch on B from B's current list revision.
    let start = get(&cb, &coll).await.expect(200).json();
    let from = rv(&start).to_string();
    let mut events = polr(&cb, "ha")
        .watch(&WatchParams::default().timeout(240), &from)
        .await
        .expect("watch on B")
        .boxed();

    // 20 creates through A, 8 at a time.
    let written: Vec<Value> = futures::stream::iter(0..20)
        .map(|i| {
            let ca = ca.clone();
            let coll = coll.clone();
            async move {
                post(&ca, &coll, &report(POLR, "ha", &format!("r{i:02}"), &[]))
                    .await
                    .expect(201)
                    .json()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut acked: Vec<u64> = written.iter().map(rv).collect();
    acked.sort();
    acked.dedup();
    assert_eq!(acked.len(), 20, "every create got its own revision");

    // B's watch sees every create, in revision order (B notices A's commits through the
    // database within about a second; the generous deadlines only guard against a hang on a
    // loaded machine, they measure nothing).
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while seen.len() < 20 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(45), events.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(o)))) => seen.push(
                o.metadata
                    .resource_version
                    .expect("rv")
                    .parse::<u64>()
                    .expect("numeric"),
            ),
            Ok(Ok(Some(WatchEvent::Bookmark(_)))) => {}
            other => panic!(
                "unexpected watch item on B after {} of 20 events: {other:?}\nB:\n{}\nA:\n{}",
                seen.len(),
                b.logs(),
                a.logs()
            ),
        }
    }
    assert_eq!(seen, acked, "B saw exactly A's writes, in commit order");

    // Both replicas list the same objects at the same revision.
    let la = get(&ca, &coll).await.expect(200).json();
    let lb = get(&cb, &coll).await.expect(200).json();
    assert_eq!(names(&la), names(&lb));
    assert_eq!(rv(&la), rv(&lb));

    // Optimistic concurrency across replicas: B updates, A's stale update conflicts.
    let item = POLR.item(Some("ha"), "r00");
    let mut obj = get(&ca, &item).await.expect(200).json();
    let mut via_b = obj.clone();
    via_b["summary"]["pass"] = 42.into();
    put(&cb, &item, &via_b).await.expect(200);
    obj["summary"]["pass"] = 7.into();
    put(&ca, &item, &obj).await.expect_status(409, "Conflict");
    assert_eq!(get(&ca, &item).await.expect(200).json()["summary"]["pass"], 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_is_503_and_recovers_without_restart() {
    let pg = TempPostgres::new().await;
    let db = pg.create_database().await;
    let server = replica(&pg, &db).await;
    let client = server.client().await;
    let coll = POLR.collection(Some("outage"));
    post(&client, &coll, &report(POLR, "outage", "before", &[]))
        .await
        .expect(201);

    pg.stop().await;
    let status = get(&client, &coll).await.expect_status(503, "ServiceUnavailable");
    assert!(
        status["message"].as_str().unwrap_or("").contains("unavailable"),
        "{status}"
    );
    post(&client, &coll, &report(POLR, "outage", "during", &[]))
        .await
        .expect_status(503, "ServiceUnavailable");
    get(&client, "/readyz").await.expect(503);
    get(&client, "/livez").await.expect(200);
    get(&client, "/apis/wgpolicyk8s.io/v1alpha2").await.expect(200);
    get(&client, "/apis").await.expect(200);

    pg.start().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = post(&client, &coll, &report(POLR, "outage", "after", &[])).await;
        if r.status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "prext did not recover: {}", r.text());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    get(&client, "/readyz").await.expect(200);
    let list = get(&client, &coll).await.expect(200).json();
    assert_eq!(
        names(&list),
        ["after", "before"],
        "the acknowledged writes are there, the refused one is not"
    );
}

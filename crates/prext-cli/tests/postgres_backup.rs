//! The documented PostgreSQL backup and restore (docs/deploy.md, "Backup and restore"):
//! `pg_dump` of a served database, `pg_restore` into a fresh database of the throwaway
//! cluster, then the documented revision jump. A server on the restored database serves the
//! same reports with a resourceVersion no lower than before, above every one the old
//! database handed out after the dump, and tells watchers from older ones to relist.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use prext_store::testsuite::TempPostgres;
use serde_json::{json, Value};

use common::http::{delete, get, patch, post};
use common::samples::{report, rv, Kind, CPOLR, POLR, REPS};
use common::TestServer;

const KINDS: [Kind; 3] = [POLR, CPOLR, REPS];

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

/// A PostgreSQL client tool: from `$PREXT_PG_BIN` when set (as the harness's server), else `PATH`.
fn pg_tool(name: &str) -> PathBuf {
    std::env::var_os("PREXT_PG_BIN")
        .map(|d| PathBuf::from(d).join(name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn run_pg_tool(pg: &TempPostgres, name: &str, args: &[&str]) {
    // The harness's superuser, as its store URLs name it (postgres://USER@HOST:PORT/DB).
    let url = pg.url("postgres");
    let user = url
        .strip_prefix("postgres://")
        .and_then(|rest| rest.split_once('@'))
        .map(|(user, _)| user.to_string())
        .expect("a user in the store URL");
    let out = Command::new(pg_tool(name))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &pg.port().to_string(),
            "--username",
            &user,
        ])
        .args(args)
        .env("PGPASSWORD", pg.password())
        .output()
        .unwrap_or_else(|e| panic!("run {name} (install the PostgreSQL client tools): {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every object of [`KINDS`], keyed by `(plural, namespace, name)`, and the list revision.
async fn everything(client: &kube::Client) -> (BTreeMap<(String, String, String), Value>, u64) {
    let mut all = BTreeMap::new();
    let mut list_rv = 0;
    for kind in KINDS {
        let list = get(client, &kind.collection(None)).await.expect(200).json();
        list_rv = list_rv.max(rv(&list));
        for item in list["items"].as_array().expect("items") {
            let meta = &item["metadata"];
            all.insert(
                (
                    kind.plural.to_string(),
                    meta["namespace"].as_str().unwrap_or_default().to_string(),
                    meta["name"].as_str().expect("name").to_string(),
                ),
                item.clone(),
            );
        }
    }
    (all, list_rv)
}

/// The SQL block of docs/deploy.md that follows `marker`.
fn documented_sql(marker: &str) -> String {
    let doc = include_str!("../../../docs/deploy.md");
    let after = doc
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("docs/deploy.md lacks {marker:?}"));
    let block = after.split("```sql\n").nth(1).expect("an sql block");
    block.split("```").next().expect("closed block").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_dump_and_pg_restore_serve_the_same_reports_and_never_reuse_a_revision() {
    let pg = TempPostgres::new().await;
    let db = pg.create_database().await;
    let mut old = replica(&pg, &db).await;
    let client = old.client().await;
    for (kind, ns, name) in [
        (POLR, "pg", "a"),
        (POLR, "pg", "b"),
        (CPOLR, "", "cluster-a"),
        (REPS, "pg", "rep-a"),
    ] {
        post(&client, &kind.collection(Some(ns)), &report(kind, ns, name, &[]))
            .await
            .expect(201);
    }
    patch(
        &client,
        &POLR.item(Some("pg"), "a"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"touched": "yes"}}}),
    )
    .await
    .expect(200);
    delete(&client, &POLR.item(Some("pg"), "b"), None)
        .await
        .expect(200);
    let (dumped, dumped_rv) = everything(&client).await;

    let dump = old.scratch().join("prext.dump");
    let dump_arg = dump.to_str().expect("utf-8").to_string();
    run_pg_tool(&pg, "pg_dump", &["--format=custom", "--file", &dump_arg, &db]);
    // A write after the dump: its revision was handed out, and the restore loses it.
    let late = post(
        &client,
        &POLR.collection(Some("pg")),
        &report(POLR, "pg", "late", &[]),
    )
    .await
    .expect(201)
    .json();
    assert!(old.terminate().success());

    let restored_db = pg.create_database().await;
    run_pg_tool(
        &pg,
        "pg_restore",
        &["--no-owner", "--dbname", &restored_db, &dump_arg],
    );
    let admin = pg.client(&restored_db).await;
    admin
        .batch_execute(&documented_sql("<!-- postgres-revision-jump -->"))
        .await
        .expect("the documented revision jump runs");

    let new = replica(&pg, &restored_db).await;
    let client = new.client().await;
    let (restored, restored_rv) = everything(&client).await;
    assert_eq!(restored, dumped, "the same reports, resourceVersions included");
    assert!(restored_rv >= dumped_rv, "{restored_rv} < {dumped_rv}");
    assert!(
        restored_rv > rv(&late),
        "above every revision handed out after the dump"
    );
    let created = post(
        &client,
        &POLR.collection(Some("pg")),
        &report(POLR, "pg", "after", &[]),
    )
    .await
    .expect(201)
    .json();
    assert!(rv(&created) > rv(&late));
    let patched = patch(
        &client,
        &POLR.item(Some("pg"), "a"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"after": "restore"}}}),
    )
    .await
    .expect(200)
    .json();
    assert!(
        rv(&patched) > rv(&created),
        "a restored object updates on top of the jump"
    );
    // Watches from before the restore are told to relist.
    let res = get(
        &client,
        &format!(
            "{}?watch=1&resourceVersion={}&timeoutSeconds=1",
            POLR.collection(Some("pg")),
            rv(&late)
        ),
    )
    .await
    .expect(200);
    let first: Value = serde_json::from_str(res.text().lines().next().expect("an event")).expect("JSON");
    assert_eq!(first["type"], "ERROR", "{first}");
    assert_eq!(first["object"]["code"], 410, "{first}");
    assert_eq!(first["object"]["reason"], "Expired", "{first}");
}

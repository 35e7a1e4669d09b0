//! `prext backup` and `prext restore` end to end: a backup taken while writers run holds
//! every write acknowledged before it started and is one consistent snapshot; a restore into
//! a fresh data dir serves it with resourceVersions that continue above every one the old
//! server handed out; clients resuming a watch (or a paginated list) from an old
//! resourceVersion are told 410 Expired and relist, as after etcd's
//! `snapshot restore --bump-revision --mark-compacted`; a running store is never overwritten.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{json, Value};

use common::background::Background;
use common::http::{delete, get, patch, post};
use common::samples::{report, rv, Kind, CPOLR, POLR, REPS};
use common::TestServer;

/// How long any single expected event or command may take on a loaded 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(60);

fn prext(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prext"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run prext")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The number after `word ` in `text` (e.g. `resourceVersion 42`).
fn number_after(text: &str, word: &str) -> u64 {
    text.split(word)
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {word:?} in {text:?}"))
}

/// Every object of `kinds` on the server, keyed by `(plural, namespace, name)`, and the
/// highest list resourceVersion seen.
async fn everything(
    client: &kube::Client,
    kinds: &[Kind],
) -> (BTreeMap<(String, String, String), Value>, u64) {
    let mut all = BTreeMap::new();
    let mut list_rv = 0;
    for kind in kinds {
        let list = get(client, &kind.collection(None)).await.expect(200).json();
        list_rv = list_rv.max(rv(&list));
        for item in list["items"].as_array().expect("items") {
            let meta = &item["metadata"];
            let key = (
                kind.plural.to_string(),
                meta["namespace"].as_str().unwrap_or_default().to_string(),
                meta["name"].as_str().expect("name").to_string(),
            );
            all.insert(key, item.clone());
        }
    }
    (all, list_rv)
}

/// The first event of a watch of `coll` from `resource_version`.
async fn first_watch_event(client: &kube::Client, coll: &str, resource_version: u64) -> Value {
    let res = get(
        client,
        &format!("{coll}?watch=1&resourceVersion={resource_version}&timeoutSeconds=1"),
    )
    .await
    .expect(200);
    let text = res.text();
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("the watch from {resource_version} sent no event"));
    serde_json::from_str(line).expect("watch event JSON")
}

fn assert_expired(event: &Value, what: &str) {
    assert_eq!(event["type"], "ERROR", "{what}: {event}");
    assert_eq!(event["object"]["kind"], "Status", "{what}: {event}");
    assert_eq!(event["object"]["code"], 410, "{what}: {event}");
    assert_eq!(event["object"]["reason"], "Expired", "{what}: {event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_under_writes_restores_every_acknowledged_write_and_expires_old_watches() {
    const WRITERS: usize = 4;
    let mut old = TestServer::start();
    let client = old.client().await;
    let kinds = [POLR, CPOLR, REPS];

    // Seed objects of several kinds, one updated and one deleted before the backup.
    for (kind, ns, name) in [
        (POLR, "seed", "a"),
        (POLR, "seed", "b"),
        (POLR, "seed", "c"),
        (CPOLR, "", "cluster-a"),
        (REPS, "seed", "rep-a"),
    ] {
        post(&client, &kind.collection(Some(ns)), &report(kind, ns, name, &[]))
            .await
            .expect(201);
    }
    patch(
        &client,
        &POLR.item(Some("seed"), "a"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"touched": "before-backup"}}}),
    )
    .await
    .expect(200);
    delete(&client, &POLR.item(Some("seed"), "b"), None)
        .await
        .expect(200);
    // A continue token handed out before the backup.
    let page = get(&client, &format!("{}?limit=1", POLR.collection(Some("seed"))))
        .await
        .expect(200)
        .json();
    let token = page["metadata"]["continue"]
        .as_str()
        .expect("continue token")
        .to_string();

    // Writers create reports until told to stop; each records what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (client, stop, acked, count) = (client.clone(), stop.clone(), acked.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w{w}-{i}");
                let created = post(
                    &client,
                    &POLR.collection(Some("load")),
                    &report(POLR, "load", &name, &[]),
                )
                .await
                .expect(201)
                .json();
                acked.lock().expect("acked").push((name, rv(&created)));
                count.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        }));
    }
    let wait_for_count = |n: usize| {
        let count = count.clone();
        async move {
            let deadline = tokio::time::Instant::now() + TIMEOUT;
            while count.load(Ordering::SeqCst) < n {
                assert!(tokio::time::Instant::now() < deadline, "writers made no progress");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for_count(50).await;

    // The backup runs while the writers go on.
    let acked_before: Vec<(String, u64)> = acked.lock().expect("acked").clone();
    let backup_file = old.scratch().join("prext-backup.db");
    let args = [
        "backup".to_string(),
        "--data-dir".into(),
        path(&old.data_dir()).into(),
        "--to".into(),
        path(&backup_file).into(),
    ];
    let out =
        tokio::task::spawn_blocking(move || prext(&args.iter().map(String::as_str).collect::<Vec<_>>()))
            .await
            .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "prext backup failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backup_rv = number_after(&stdout, "resourceVersion");
    let after_backup = count.load(Ordering::SeqCst);
    wait_for_count(after_backup + 30).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("writer");
    }
    let acked_all = acked.lock().expect("acked").clone();
    assert!(
        acked_all.iter().any(|(_, r)| *r > backup_rv),
        "writes went on during and after the backup"
    );

    let (old_objects, old_list_rv) = everything(&client, &kinds).await;
    let newest_old_rv = acked_all
        .iter()
        .map(|(_, r)| *r)
        .max()
        .unwrap_or(0)
        .max(old_list_rv);

    // A running store is never overwritten, and stays as it was.
    let out = prext(&[
        "restore",
        "--from",
        path(&backup_file),
        "--data-dir",
        path(&old.data_dir()),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "restore over a running store must fail");
    assert!(stderr.contains("in use"), "{stderr}");
    assert_eq!(everything(&client, &kinds).await.0, old_objects);
    assert!(old.terminate().success());

    // Restore into a fresh data dir (a new server's, whose PKI and kubeconfig it keeps).
    let mut new = TestServer::start();
    assert!(new.terminate().success());
    let out = prext(&[
        "restore",
        "--from",
        path(&backup_file),
        "--data-dir",
        path(&new.data_dir()),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "prext restore failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    new.start_again();
    let client = new.client().await;

    // Contents: exactly the old server's objects as of the backup's revision, unchanged.
    let (restored, new_list_rv) = everything(&client, &kinds).await;
    let expected: BTreeMap<_, _> = old_objects
        .iter()
        .filter(|(_, o)| rv(o) <= backup_rv)
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    assert_eq!(
        restored.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>()
    );
    assert_eq!(
        restored, expected,
        "every object reads back as it was, resourceVersion included"
    );
    let restored_names: BTreeSet<&str> = restored.keys().map(|(_, _, n)| n.as_str()).collect();
    let missing: Vec<&String> = acked_before
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !restored_names.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "writes acknowledged before the backup are missing: {missing:?}"
    );
    let load = restored.keys().filter(|(_, ns, _)| ns == "load").count();
    assert!(load >= acked_before.len() && load < acked_all.len(), "{load}");
    assert!(!restored_names.contains("b"), "deleted before the backup");
    assert_eq!(
        restored[&("policyreports".into(), "seed".into(), "a".into())]["metadata"]["labels"]["touched"],
        "before-backup"
    );

    // resourceVersions continue above every one the old server handed out.
    assert!(new_list_rv > newest_old_rv, "{new_list_rv} <= {newest_old_rv}");
    let created = post(
        &client,
        &POLR.collection(Some("load")),
        &report(POLR, "load", "after", &[]),
    )
    .await
    .expect(201)
    .json();
    assert!(
        rv(&created) > newest_old_rv,
        "{} <= {newest_old_rv}",
        rv(&created)
    );
    let patched = patch(
        &client,
        &POLR.item(Some("seed"), "a"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"touched": "after-restore"}}}),
    )
    .await
    .expect(200)
    .json();
    assert!(
        rv(&patched) > rv(&created),
        "restored objects update on top of the jump"
    );

    // Watches resumed from old resourceVersions, from before or after the backup, are told
    // to relist; so is a continue token of the old server.
    let coll = POLR.collection(Some("load"));
    for old_rv in [backup_rv - 1, backup_rv, backup_rv + 1, newest_old_rv] {
        assert_expired(
            &first_watch_event(&client, &coll, old_rv).await,
            &format!("watch from {old_rv}"),
        );
    }
    get(
        &client,
        &format!("{}?limit=1&continue={token}", POLR.collection(Some("seed"))),
    )
    .await
    .expect_status(410, "Expired");

    // An informer's relist: list, then watch from the list's resourceVersion, sees what follows.
    let gvk = GroupVersionKind::gvk(POLR.group, POLR.version, POLR.kind);
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "load",
        &ApiResource::from_gvk_with_plural(&gvk, POLR.plural),
    );
    let mut stale = api
        .watch(&WatchParams::default().timeout(5), &newest_old_rv.to_string())
        .await
        .expect("watch")
        .boxed();
    match tokio::time::timeout(TIMEOUT, stale.try_next()).await {
        Ok(Ok(Some(WatchEvent::Error(e)))) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected a 410 watch error, got {other:?}"),
    }
    let list = api.list(&ListParams::default()).await.expect("relist");
    assert_eq!(
        list.items.len(),
        load + 1,
        "the relist has the restored objects and the new one"
    );
    let list_rv = list.metadata.resource_version.expect("list RV");
    let mut stream = api
        .watch(&WatchParams::default().timeout(30), &list_rv)
        .await
        .expect("watch from the relist")
        .boxed();
    let next = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(report(POLR, "load", "after-relist", &[])).expect("object"),
        )
        .await
        .expect("create");
    loop {
        match tokio::time::timeout(TIMEOUT, stream.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(o)))) => {
                assert_eq!(o.metadata.name.as_deref(), Some("after-relist"));
                assert_eq!(o.metadata.resource_version, next.metadata.resource_version);
                break;
            }
            Ok(Ok(Some(WatchEvent::Bookmark(_)))) => {}
            other => panic!("expected the ADDED event, got {other:?}"),
        }
    }
}

#[test]
fn scheduled_backups_keep_the_newest_and_each_restores() {
    let server = TestServer::start();
    let dir = server.scratch().join("backups");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prext"));
    cmd.args([
        "backup",
        "--data-dir",
        path(&server.data_dir()),
        "--to-dir",
        path(&dir),
        "--every",
        "1s",
        "--keep",
        "2",
    ]);
    let mut bg = Background::spawn(cmd);
    for _ in 0..3 {
        bg.expect_line(TIMEOUT, "a scheduled backup", |l| l.starts_with("backed up"));
    }
    let sent = Command::new("kill")
        .args(["-TERM", &bg.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    assert!(bg.wait(TIMEOUT).success(), "SIGTERM ends the schedule cleanly");
    let backups: Vec<_> = std::fs::read_dir(&dir)
        .expect("backups dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(backups.len(), 2, "the newest two are kept: {backups:?}");
    for (i, b) in backups.iter().enumerate() {
        let target = server.scratch().join(format!("restored-{i}"));
        let out = prext(&["restore", "--from", path(b), "--data-dir", path(&target)]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = prext(&["backup", "--store", "postgres://prext@db/prext", "--to", "x.db"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
}

/// The chart's backup sidecar runs exactly these flags: they parse, and the first backup is
/// made at once (the pod's volumes replaced by temporary directories).
#[test]
fn the_charts_backup_sidecar_flags_work() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/prext");
    let template = std::fs::read_to_string(root.join("templates/statefulset.yaml")).expect("template");
    let values: Value =
        serde_norway::from_str(&std::fs::read_to_string(root.join("values.yaml")).expect("values"))
            .expect("values YAML");
    let backup = &values["store"]["sqlite"]["backup"];
    let sidecar = template
        .split("- name: backup\n")
        .nth(1)
        .and_then(|rest| rest.split("args:\n").nth(1))
        .and_then(|rest| rest.split("resources:").next())
        .expect("the sidecar's args");
    let server = TestServer::start();
    let dir = server.scratch().join("backups");
    let args: Vec<String> = sidecar
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|a| {
            a.replace("{{ $backup.every }}", backup["every"].as_str().expect("every"))
                .replace("{{ $backup.keep }}", &backup["keep"].to_string())
                .replace("/var/lib/prext", path(&server.data_dir()))
                .replace("/backups", path(&dir))
        })
        .collect();
    assert_eq!(args[0], "backup", "{args:?}");
    assert!(args.iter().all(|a| !a.contains("{{")), "{args:?}");
    let mut bg = Background::spawn({
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_prext"));
        cmd.args(&args);
        cmd
    });
    bg.expect_line(TIMEOUT, "the first scheduled backup", |l| {
        l.starts_with("backed up")
    });
    let sent = Command::new("kill")
        .args(["-TERM", &bg.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    assert!(bg.wait(TIMEOUT).success());
    assert_eq!(std::fs::read_dir(&dir).expect("backups dir").count(), 1);
}

//! Tests of backup and restore on real stores: consistency under concurrent writes, the
//! revision jump and compaction mark of a restore, and the refusals.

use std::collections::BTreeMap;
use std::sync::Arc;

use prext_api::{report, resources};
use serde_json::json;

use super::*;
use crate::sqlite::{SqliteOptions, SqliteStore};
use crate::{ObjectKey, ObjectWrite, Store};

const POLR: &str = "policyreports.wgpolicyk8s.io";

fn report(name: &str) -> ObjectWrite {
    let body = json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "results": [{"policy": "p", "result": "fail", "severity": "high"}],
    });
    let def = resources::find("wgpolicyk8s.io", "v1alpha2", "policyreports").expect("policyreports");
    ObjectWrite {
        key: ObjectKey::new(POLR, "ns", name),
        uid: format!("uid-{name}"),
        labels: BTreeMap::new(),
        created: "2024-05-01T10:00:00Z".into(),
        deleting: false,
        index: report::index(def, &body),
        body,
    }
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("open store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_writes_holds_every_write_acknowledged_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("prext.db");
    let store = Arc::new(open(&db));
    for i in 0..50 {
        store
            .create(report(&format!("before-{i}")))
            .await
            .expect("create");
    }
    let acknowledged = store.revision().await.expect("revision");
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                store
                    .create(report(&format!("during-{i}")))
                    .await
                    .expect("create");
            }
        })
    };
    let dest = dir.path().join("not/yet/there/backup.db");
    let (src, to) = (db.clone(), dest.clone());
    let info = tokio::task::spawn_blocking(move || backup(&src, &to))
        .await
        .expect("join")
        .expect("backup");
    writer.await.expect("writer");
    assert!(info.revision >= acknowledged, "{info:?} < {acknowledged}");
    assert!(info.objects >= 50 && info.bytes > 0, "{info:?}");
    for leftover in [".partial", ".partial-wal", ".partial-shm", ".partial-journal"] {
        assert!(!sibling(&dest, leftover).exists(), "{leftover}");
    }
    assert!(
        !sibling(&dest, "-wal").exists(),
        "a backup is one self-contained file"
    );

    // The backup is one snapshot: exactly the objects written up to its revision.
    let conn = Connection::open_with_flags(&dest, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open backup");
    let (count, max_rev): (i64, i64) = conn
        .query_row("SELECT count(*), max(revision) FROM objects", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("count");
    assert_eq!(count, info.objects);
    assert_eq!(max_rev, info.revision, "every write is one new object here");
    assert_eq!(
        count, info.revision,
        "no write missing below the backup's revision"
    );
    let before: i64 = conn
        .query_row(
            "SELECT count(*) FROM objects WHERE name LIKE 'before-%'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(before, 50);
    drop(conn);

    let err = backup(&db, &dest).expect_err("existing destination");
    assert!(err.to_string().contains("already exists"), "{err}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_jumps_the_revision_and_marks_the_history_compacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a/prext.db");
    std::fs::create_dir_all(db.parent().expect("parent")).expect("mkdir");
    let store = open(&db);
    for i in 0..10 {
        store.create(report(&format!("r{i}"))).await.expect("create");
    }
    let dest = dir.path().join("backup.db");
    let info = backup(&db, &dest).expect("backup");
    assert_eq!(info.revision, 10);
    // Writes after the backup: their revisions were handed out to clients.
    let late = store.create(report("late")).await.expect("create");
    assert_eq!(late.revision, 11);

    // A served database is no backup: its WAL would be left behind.
    let elsewhere = dir.path().join("b/prext.db");
    let err = restore(&db, &elsewhere, 100).expect_err("a live database");
    assert!(err.to_string().contains("not a backup"), "{err}");
    assert!(!elsewhere.exists());

    // The store is held: restoring over it is refused, and changes nothing.
    let err = restore(&dest, &db, 100).expect_err("held store");
    assert!(
        matches!(err, Error::Unavailable(ref m) if m.contains("in use")),
        "{err}"
    );
    assert_eq!(store.revision().await.expect("revision"), 11);
    store.close().await;

    let restored = restore(&dest, &db, 100).expect("restore");
    assert_eq!(restored.backup_revision, 10);
    assert_eq!(restored.revision, 110);
    assert_eq!(restored.objects, 10);
    let previous = restored.previous.clone().expect("the old database moved aside");
    assert!(previous.is_file());

    let store = open(&db);
    assert_eq!(store.revision().await.expect("revision"), 110);
    assert_eq!(store.oldest_revision().await.expect("oldest"), 110);
    let gone = store.get(&ObjectKey::new(POLR, "ns", "late")).await.expect("get");
    assert!(gone.is_none(), "the write after the backup is not in it");
    let kept = store
        .get(&ObjectKey::new(POLR, "ns", "r3"))
        .await
        .expect("get")
        .expect("r3");
    assert_eq!(kept.revision, 4, "objects keep their resourceVersions");
    for old in [0, 5, 10, 11, 109] {
        let err = store.changes(old, 10).await.expect_err("compacted");
        assert!(
            matches!(err, Error::Compacted { oldest: 110, .. }),
            "{old}: {err}"
        );
    }
    assert!(store.changes(110, 10).await.expect("changes").is_empty());
    let next = store.create(report("after")).await.expect("create");
    assert_eq!(next.revision, 111, "never a revision handed out before");
    // Updating and deleting restored objects, whose own change rows are gone, works too.
    let updated = store.update(report("r3"), 4).await.expect("update r3");
    assert_eq!(updated.revision, 112);
    store
        .delete(&ObjectKey::new(POLR, "ns", "r4"), crate::Preconditions::default())
        .await
        .expect("delete r4");
    let changes = store.changes(110, 10).await.expect("changes");
    let revisions: Vec<i64> = changes.iter().map(|c| c.revision).collect();
    assert_eq!(revisions, [111, 112, 113]);
    store.close().await;

    // The old database is intact where it was moved.
    let old = open(&previous);
    assert_eq!(old.revision().await.expect("revision"), 11);
    old.close().await;

    // A store no server has open backs up too.
    let info = backup(&previous, &dir.path().join("closed.db")).expect("backup of a closed store");
    assert_eq!((info.revision, info.objects), (11, 11));
}

#[test]
fn restore_refuses_a_zero_jump_and_files_that_are_not_prext_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("prext.db");
    let junk = dir.path().join("junk.db");
    Connection::open(&junk)
        .and_then(|c| c.execute_batch("CREATE TABLE t (x)"))
        .expect("junk db");
    let err = restore(&junk, &target, 0).expect_err("zero bump");
    assert!(err.to_string().contains("at least 1"), "{err}");
    let err = restore(&junk, &target, 5).expect_err("not prext");
    assert!(err.to_string().contains("not a prext database"), "{err}");
    assert!(!target.exists(), "a refused restore writes nothing");
    let err = backup(&dir.path().join("missing.db"), &dir.path().join("b.db")).expect_err("missing");
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
}

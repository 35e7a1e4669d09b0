//! A full disk (issue 15, point 6): the SQLite database on a 32 MiB tmpfs is filled through the
//! API. The write that finds no space is refused with a 507 Status saying the disk is full (not
//! a transient 503), deletes still commit (the disk reserve is released for them), and writes
//! come back after deletes, without a restart.
//!
//! Mounting a tmpfs needs root, which CI has. Elsewhere the test fails, unless
//! `PREXT_SKIP_ROOT_TESTS=1` says to skip it (it then says so on stderr).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::http::{delete, get, post};
use crate::common::samples::POLR;
use crate::common::TestServer;
use crate::quota::fat_report;

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        if out.status.success() {
            return Some(Tmpfs(dir.to_path_buf()));
        }
        let why = String::from_utf8_lossy(&out.stderr);
        if std::env::var("PREXT_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
            eprintln!("SKIPPED: cannot mount a tmpfs ({why}) and PREXT_SKIP_ROOT_TESTS=1");
            return None;
        }
        panic!("mounting a tmpfs needs root ({why}); set PREXT_SKIP_ROOT_TESTS=1 to skip");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_is_507_deletes_still_work_and_writes_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_mount) = Tmpfs::mount(dir.path(), "32m") else {
        return;
    };
    let store = format!("sqlite:{}", dir.path().join("prext.db").display());
    let server = TestServer::start_with(&[
        "--store",
        &store,
        "--history-revisions",
        "1",
        "--history-age-seconds",
        "0",
        "--compaction-interval-seconds",
        "1",
    ]);
    assert!(dir.path().join("prext.db.reserve").is_file());
    let client = server.client().await;
    let collection = POLR.collection(Some("d"));

    let mut created = Vec::new();
    let refused = loop {
        assert!(created.len() < 1000, "a 32 MiB disk never filled");
        let name = format!("r-{}", created.len());
        let resp = post(&client, &collection, &fat_report("d", &name)).await;
        if resp.status == 201 {
            created.push(name);
        } else {
            break resp;
        }
    };
    assert_eq!(refused.status, 507, "{}\n{}", refused.text(), server.logs());
    let status = refused.expect_status(507, "InsufficientStorage");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("disk holding the report store is full"),
        "{status}"
    );
    assert!(
        !dir.path().join("prext.db.reserve").exists(),
        "the reserve was released"
    );
    // Reads go on; the refused report is not there.
    get(&client, &collection).await.expect(200);
    get(&client, &POLR.item(Some("d"), &format!("r-{}", created.len())))
        .await
        .expect_status(404, "NotFound");

    // Deletes commit on the full disk.
    // Each of these ~100 KB reports (200 result rows) costs about 0.6 MB of WAL to delete:
    // the default 8 MiB reserve covers several of them (many more ordinary reports).
    let deleted = 4;
    for (i, name) in created.iter().take(deleted).enumerate() {
        let resp = delete(&client, &POLR.item(Some("d"), name), None).await;
        assert_eq!(
            resp.status,
            200,
            "delete {i} of {}: {}\n{}",
            created.len(),
            resp.text(),
            server.logs()
        );
    }
    // Writes come back: the pages the deletes freed inside the database file take them.
    let mut attempts = 0;
    loop {
        let resp = post(&client, &collection, &fat_report("d", "after")).await;
        if resp.status == 201 {
            break;
        }
        assert_eq!(resp.status, 507, "{}\n{}", resp.text(), server.logs());
        resp.expect_status(507, "InsufficientStorage");
        attempts += 1;
        assert!(
            attempts < 60,
            "writes did not come back after deleting every report:\n{}",
            server.logs()
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    drop(server);
}

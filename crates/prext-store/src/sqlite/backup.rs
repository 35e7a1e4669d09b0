//! Online backup and offline restore of a SQLite store.
//!
//! [`backup`] copies a database, served or not, into one self-contained file with
//! `VACUUM INTO`: it reads one WAL snapshot (a read transaction), so the copy holds exactly the
//! writes committed before it started, and writers go on meanwhile (WAL readers never block
//! the writer). The copy is written under a temporary name, synced, checked and renamed, so a
//! file at the destination is always a complete backup.
//!
//! [`restore`] puts a backup in place of a store that no server holds (it takes the store's
//! lock, see `lock.rs`), and does what etcd's `snapshot restore --bump-revision N
//! --mark-compacted` does: the revision counter jumps `N` past the backup's, and the change
//! history is marked compacted at that point. Clients may hold resourceVersions handed out
//! after the backup was taken; with the jump, none of them is ever handed out again for a
//! different state, and a watch or a continue token from any of them is answered 410 Expired,
//! so informers relist instead of silently missing what the restore undid.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::db_error;
use super::lock::DbLock;
use super::schema;
use crate::{Error, Result};

/// What [`restore`] uses when told no jump: etcd's documented example value. It exceeds any
/// number of writes a server can make between a backup and its restore.
pub const DEFAULT_REVISION_BUMP: i64 = 1_000_000_000;

/// A finished backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The newest revision the backup holds.
    pub revision: i64,
    /// Stored objects.
    pub objects: i64,
    /// Size of the backup file.
    pub bytes: u64,
}

/// A finished restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreInfo {
    /// The newest revision of the backup.
    pub backup_revision: i64,
    /// The restored store's revision (and compaction point): `backup_revision + bump`.
    pub revision: i64,
    /// Stored objects.
    pub objects: i64,
    /// Where the database that was at the target before was moved, if there was one.
    pub previous: Option<PathBuf>,
}

/// Copies the database at `source` into a new file `dest`, consistently, while a server may
/// be writing to it. Refuses to overwrite an existing `dest`.
pub fn backup(source: &Path, dest: &Path) -> Result<BackupInfo> {
    if dest.exists() {
        return Err(Error::internal(format!("{} already exists", dest.display())));
    }
    if !source.is_file() {
        return Err(Error::unavailable(format!("no database at {}", source.display())));
    }
    // Read-write without CREATE: a read-only connection to a WAL database needs its -shm file
    // to exist, which it does not when no server has the database open. Nothing is written.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(source, flags).map_err(db_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(db_error)?;
    check_prext_database(&conn, source)?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    }
    let tmp = sibling(dest, ".partial");
    let _ = std::fs::remove_file(&tmp);
    let tmp_str = utf8(&tmp)?;
    let copied = conn
        .execute("VACUUM INTO ?1", [tmp_str])
        .map_err(db_error)
        .and_then(|_| finish_backup(&tmp));
    drop(conn);
    let info = match copied {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, dest).map_err(|e| io("rename", dest, e))?;
    sync_dir(dest)?;
    Ok(info)
}

/// Makes the copy at `tmp` a standalone rollback-journal database, checks it and syncs it.
fn finish_backup(tmp: &Path) -> Result<BackupInfo> {
    let conn = Connection::open_with_flags(tmp, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(db_error)?;
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .map_err(db_error)?;
    quick_check(&conn, tmp)?;
    let (revision, _) = meta(&conn)?;
    let objects = count_objects(&conn)?;
    drop(conn);
    let file = File::open(tmp).map_err(|e| io("open", tmp, e))?;
    file.sync_all().map_err(|e| io("sync", tmp, e))?;
    let bytes = file.metadata().map_err(|e| io("stat", tmp, e))?.len();
    Ok(BackupInfo {
        revision,
        objects,
        bytes,
    })
}

/// Puts the backup `from` in place as the database `target`, bumping its revision by `bump`
/// (at least 1) and marking every older revision compacted.
///
/// Fails with [`Error::Unavailable`] if a server holds `target`. A database already at
/// `target` (with its WAL) is moved aside to `target.before-restore-<unix seconds>`, never
/// deleted.
pub fn restore(from: &Path, target: &Path, bump: i64) -> Result<RestoreInfo> {
    if bump < 1 {
        return Err(Error::Internal(
            "the revision bump must be at least 1: a restored store must not hand out a revision twice"
                .into(),
        ));
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    }
    let _lock = DbLock::acquire(target)?;
    // A live database's WAL would not be copied with it: only `backup` files, which are
    // self-contained, are restored.
    if std::fs::metadata(sibling(from, "-wal")).is_ok_and(|m| m.len() > 0) {
        return Err(Error::internal(format!(
            "{} has a write-ahead log beside it: it is a live database, not a backup; \
             make one with `prext backup`",
            from.display()
        )));
    }
    {
        let conn = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db_error)?;
        check_prext_database(&conn, from)?;
        quick_check(&conn, from)?;
    }
    let tmp = sibling(target, ".restoring");
    let _ = std::fs::remove_file(&tmp);
    std::fs::copy(from, &tmp).map_err(|e| io("copy to", &tmp, e))?;
    let bumped = bump_revision(&tmp, bump).and_then(|info| {
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("sync", &tmp, e))?;
        Ok(info)
    });
    let (backup_revision, revision, objects) = match bumped {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let previous = move_aside(target)?;
    std::fs::rename(&tmp, target).map_err(|e| io("rename", target, e))?;
    sync_dir(target)?;
    Ok(RestoreInfo {
        backup_revision,
        revision,
        objects,
        previous,
    })
}

/// Brings the copy's schema up to date, then jumps its revision and compaction point by
/// `bump` and drops the change history, in one transaction.
fn bump_revision(path: &Path, bump: i64) -> Result<(i64, i64, i64)> {
    let mut conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(db_error)?;
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(db_error)?;
    schema::migrate(&mut conn)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let (old, _) = meta(&tx)?;
    let new = old
        .checked_add(bump)
        .ok_or_else(|| Error::internal(format!("revision {old} + {bump} overflows")))?;
    tx.execute(
        "UPDATE meta SET revision = ?1, compacted_revision = ?1 WHERE id = 1",
        [new],
    )
    .map_err(db_error)?;
    // The findings of the changes the copy's indexer had not applied yet, before they go.
    super::indexer::finish(&tx, old, new)?;
    tx.execute("DELETE FROM changes", []).map_err(db_error)?;
    let objects = count_objects(&tx)?;
    tx.commit().map_err(db_error)?;
    Ok((old, new, objects))
}

/// Moves the database at `target` and its WAL files aside; returns where the database went.
fn move_aside(target: &Path) -> Result<Option<PathBuf>> {
    if !target.exists() {
        // A WAL without its database is garbage that SQLite would apply to the new file.
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(sibling(target, suffix));
        }
        return Ok(None);
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = sibling(target, &format!(".before-restore-{secs}"));
    for suffix in ["-wal", "-shm"] {
        let from = sibling(target, suffix);
        if from.exists() {
            let to = sibling(&aside, suffix);
            std::fs::rename(&from, &to).map_err(|e| io("move aside", &from, e))?;
        }
    }
    std::fs::rename(target, &aside).map_err(|e| io("move aside", target, e))?;
    Ok(Some(aside))
}

/// Fails unless `conn` is a prext database this build can open.
fn check_prext_database(conn: &Connection, path: &Path) -> Result<()> {
    let version: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get(0))
        .optional()
        .map_err(|e| Error::internal(format!("{} is not a prext database: {e}", path.display())))?
        .flatten();
    match version {
        None => Err(Error::internal(format!(
            "{} is not a prext database (no schema version)",
            path.display()
        ))),
        Some(v) if v > schema::latest_version() => Err(Error::internal(format!(
            "{} has schema version {v}, newer than this prext supports ({}); use a newer prext",
            path.display(),
            schema::latest_version()
        ))),
        Some(_) => meta(conn).map(drop),
    }
}

fn quick_check(conn: &Connection, path: &Path) -> Result<()> {
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(db_error)?;
    if check == "ok" {
        Ok(())
    } else {
        Err(Error::internal(format!("{} is damaged: {check}", path.display())))
    }
}

fn meta(conn: &Connection) -> Result<(i64, i64)> {
    conn.query_row(
        "SELECT revision, compacted_revision FROM meta WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(db_error)
}

fn count_objects(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT count(*) FROM objects", [], |r| r.get(0))
        .map_err(db_error)
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| Error::internal(format!("{} is not a UTF-8 path", path.display())))
}

/// Syncs the directory of `path`, so that a rename in it survives a crash.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync", dir, e))
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::unavailable(format!("cannot {what} {}: {e}", path.display()))
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;

//! The single-server lock: SQLite serves exactly one prext replica, so a second server opening
//! the same database file must fail instead of interleaving revisions with the first.
//!
//! The lock is an OS advisory lock (`flock` on Unix) on `<database>.lock`, held for the life of
//! the store and released by the kernel when the process dies, so a crash never leaves a
//! stale lock behind. A separate file is used because SQLite itself takes POSIX locks on the
//! database file.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// An exclusive lock on a database, released on drop.
#[derive(Debug)]
pub(crate) struct DbLock {
    _file: File,
}

impl DbLock {
    /// Takes the lock of the database at `db`, or fails at once if another store holds it.
    pub(crate) fn acquire(db: &Path) -> Result<DbLock> {
        // The lock belongs to the file, not to the name it is opened by: a symlink (or another
        // relative path) to the same database must find the same lock.
        let resolved = resolve(db);
        let db = resolved.as_path();
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::unavailable(format!("cannot open lock file {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::unavailable(format!(
                    "database {} is in use by another prext server (lock file {} is held); \
                     the SQLite backend serves a single replica",
                    db.display(),
                    path.display()
                )))
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::unavailable(format!("cannot lock {}: {e}", path.display())))
            }
        }
        // For humans wondering who holds it; the lock itself is what matters.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(DbLock { _file: file })
    }
}

/// The database's real path: symlinks followed, also to a database not created yet (the
/// directory resolved, the file name kept).
fn resolve(db: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(db) {
        return real;
    }
    let target = match std::fs::read_link(db) {
        Ok(t) => db.parent().map_or(t.clone(), |p| p.join(t)),
        Err(_) => db.to_owned(),
    };
    match (target.parent(), target.file_name()) {
        (Some(dir), Some(file)) => std::fs::canonicalize(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .map(|d| d.join(file))
        .unwrap_or(target.clone()),
        _ => target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("a.db");
        let first = DbLock::acquire(&db).expect("first lock");
        assert!(dir.path().join("a.db.lock").is_file());
        let err = DbLock::acquire(&db).expect_err("second lock");
        assert!(
            matches!(err, Error::Unavailable(ref m) if m.contains("in use by another prext server")),
            "{err}"
        );
        drop(first);
        DbLock::acquire(&db).expect("lock after release");
    }

    #[test]
    fn a_symlink_to_a_locked_database_finds_the_same_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("a.db");
        std::fs::write(&db, b"").expect("db file");
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&db, &link).expect("symlink");
        let _first = DbLock::acquire(&db).expect("first lock");
        let err = DbLock::acquire(&link).expect_err("through the symlink");
        assert!(
            matches!(err, Error::Unavailable(ref m) if m.contains("in use by another prext server")),
            "{err}"
        );
        // Also before the database exists: a dangling symlink names its target's lock.
        let later = dir.path().join("later.db");
        let dangling = dir.path().join("dangling.db");
        std::os::unix::fs::symlink(&later, &dangling).expect("symlink");
        let _held = DbLock::acquire(&dangling).expect("lock through the symlink");
        assert!(DbLock::acquire(&later).is_err(), "the same lock");
    }
}

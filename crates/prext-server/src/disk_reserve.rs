//! The disk reserve of an SQLite store: a file of `--store-disk-reserve-bytes` written next to
//! the database at start-up and removed when a write fails because the disk is full, so that
//! the deletes which free space can still commit.
//!
//! Why it is needed: in WAL mode a delete does not write in place, it appends the pages it
//! changes to the WAL first, so on a disk with no byte left a delete fails like a create.
//! Once the reserve is released, deletes (and the checkpoint that folds them into the
//! database) have room; the pages they free are reused by later writes inside the database
//! file (SQLite keeps its file size). The reserve is written again before the next write that
//! grows the store, as soon as the disk has room for it.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The default reserve: room for the WAL frames of many deletes.
pub const DEFAULT_BYTES: u64 = 8 << 20;

/// A reserve file.
#[derive(Debug, Clone)]
pub struct Reserve {
    path: PathBuf,
    bytes: u64,
}

impl Reserve {
    /// The reserve of the SQLite database at `db` (`DB.reserve`).
    pub fn for_database(db: &Path, bytes: u64) -> Self {
        let mut name = db.as_os_str().to_owned();
        name.push(".reserve");
        Self {
            path: PathBuf::from(name),
            bytes,
        }
    }

    /// Writes the reserve (real blocks: zeros written, not a sparse file) unless it is
    /// already whole. On failure (a full disk) nothing is left behind.
    pub fn fill(&self) -> std::io::Result<()> {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() == self.bytes) {
            return Ok(());
        }
        let written = (|| {
            let mut file = std::fs::File::create(&self.path)?;
            let chunk = vec![0u8; 64 << 10];
            let mut left = self.bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                file.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            // No fsync: the file system allocates the blocks at write() (that is where a full
            // disk answers ENOSPC); flushing 8 MiB at every start-up would only cost I/O.
            Ok(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        written
    }

    /// Removes the reserve, giving its space to the database.
    pub fn release(&self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => tracing::warn!(
                path = %self.path.display(),
                bytes = self.bytes,
                "the disk is full: released the disk reserve so deletes can free space"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot release the disk reserve")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_releases_and_fills_again() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = Reserve::for_database(&dir.path().join("prext.db"), 100_000);
        reserve.fill().unwrap();
        let path = dir.path().join("prext.db.reserve");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 100_000);
        reserve.release();
        assert!(!path.exists());
        reserve.fill().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 100_000);
    }
}

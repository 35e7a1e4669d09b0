//! The syncer thread: makes the writer's commits durable off the writer thread.
//!
//! The writer's connection runs with `synchronous = NORMAL` (`schema.rs`): a commit writes its
//! WAL frames, so readers see it and a killed process loses nothing (the frames are in the
//! page cache), but it does not wait for the disk. The writer hands each batch's answers and
//! revision to this thread and goes on with the next batch while the disk writes the last
//! one. This thread `fdatasync`s the WAL file and only then publishes the revision and
//! answers the requests: an acknowledged write is on disk, as with `synchronous = FULL`, but
//! the writer no longer idles through every fsync (on the benchmark's 2-core machine the
//! fsyncs were a third of the writer's time). Batches that queue up while a sync runs share
//! the next one.
//!
//! Order holds: batches are answered and published in commit order, and WAL recovery replays
//! a prefix of the frames (each frame's checksum chains to the one before it), so no batch
//! can survive a power cut that an earlier batch did not. Other connections see a commit as
//! soon as the writer makes it, before it is synced (as a reader of any database may see a
//! write before its writer is answered); a power cut in that window (not a crash of the
//! process) can take back a write that was read but never acknowledged.
//!
//! A failed `fdatasync` leaves the disk's state unknown (Linux may drop the pages it failed to
//! write and report success next time), so, as PostgreSQL does, the process aborts instead of
//! answering: the database is then recovered from what the disk holds.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};

use super::writer::Reply;
use crate::Result;

/// Answers waiting for their batch to be durable.
pub(crate) type Answers = Vec<(oneshot::Sender<Result<Reply>>, Result<Reply>)>;

/// A committed (or refused) batch on its way to its callers.
struct Batch {
    /// The newest revision the batch committed, if it committed any.
    revision: Option<i64>,
    answers: Answers,
}

/// The running syncer thread; [`Syncer::stop`] drains and ends it.
#[derive(Debug)]
pub(crate) struct Syncer {
    tx: Option<mpsc::Sender<Batch>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread for the database at `db`, publishing durable revisions on `published`.
    pub(crate) fn start(db: &Path, published: watch::Sender<i64>) -> std::io::Result<Syncer> {
        let (tx, rx) = mpsc::channel();
        let files = Files::of(db);
        let thread = std::thread::Builder::new()
            .name("prext-sqlite-syncer".into())
            .spawn(move || run(&rx, &files, &published))?;
        Ok(Syncer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hands over a batch that committed up to `revision` (`None`: it committed nothing, so
    /// its answers, refusals or errors, need no sync but keep their place in line).
    pub(crate) fn answer(&self, revision: Option<i64>, answers: Answers) {
        if let Some(tx) = &self.tx {
            // The thread only stops when this sender is dropped.
            let _ = tx.send(Batch { revision, answers });
        }
    }

    /// Answers everything handed over, then ends the thread.
    pub(crate) fn stop(mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The files a commit's frames may be in.
struct Files {
    wal: PathBuf,
    db: PathBuf,
}

impl Files {
    fn of(db: &Path) -> Files {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Files {
            wal: PathBuf::from(wal),
            db: db.to_owned(),
        }
    }

    /// Flushes the WAL to the disk (the database file instead if there is no WAL: its frames
    /// were copied back and it was removed, which only closing does).
    fn sync(&self) -> std::io::Result<()> {
        let open = |path: &Path| OpenOptions::new().read(true).write(true).open(path);
        match open(&self.wal) {
            Ok(file) => file.sync_data(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => open(&self.db)?.sync_data(),
            Err(e) => Err(e),
        }
    }
}

fn run(rx: &mpsc::Receiver<Batch>, files: &Files, published: &watch::Sender<i64>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        group.extend(rx.try_iter());
        let newest = group.iter().filter_map(|b| b.revision).max();
        if let Some(revision) = newest {
            if let Err(e) = files.sync() {
                tracing::error!(error = %e, path = %files.wal.display(),
                    "syncing the WAL failed: the writes of the last commits may not be on disk; \
                     aborting so that the database is recovered from what is");
                std::process::abort();
            }
            published.send_replace(revision);
        }
        for batch in group {
            for (reply, answer) in batch.answers {
                // The caller may have gone away; the write stands regardless.
                let _ = reply.send(answer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(n: i64) -> (oneshot::Receiver<Result<Reply>>, Answers) {
        let (tx, rx) = oneshot::channel();
        (rx, vec![(tx, Ok(Reply::Compacted(n, true)))])
    }

    #[test]
    fn answers_in_order_after_publishing_and_drains_on_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("prext.db");
        std::fs::write(&db, b"").expect("db file");
        std::fs::write(dir.path().join("prext.db-wal"), b"frames").expect("wal file");
        let (published_tx, published) = watch::channel(0);
        let syncer = Syncer::start(&db, published_tx).expect("start");
        let mut waiting = Vec::new();
        for n in 1..=51 {
            let (rx, answers) = reply(n);
            // Every third batch committed nothing (all its requests were refused).
            let revision = (n % 3 != 0).then_some(n);
            syncer.answer(revision, answers);
            waiting.push((n, rx));
        }
        syncer.stop();
        for (n, mut rx) in waiting {
            match rx.try_recv() {
                Ok(Ok(Reply::Compacted(r, _))) => assert_eq!(r, n),
                other => panic!("batch {n} not answered: {other:?}"),
            }
        }
        assert_eq!(
            *published.borrow(),
            50,
            "the newest committed revision is published, not a refused batch's"
        );
    }

    #[test]
    fn without_a_wal_the_database_file_is_synced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("prext.db");
        let files = Files::of(&db);
        assert_eq!(files.wal, dir.path().join("prext.db-wal"));
        assert!(files.sync().is_err(), "neither file exists");
        std::fs::write(&db, b"").expect("db file");
        files.sync().expect("the database file");
    }
}

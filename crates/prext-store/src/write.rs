//! The write-queue front both backends share: the op types a writer receives, the queue that
//! submits them and waits for the answer, and the decision to accept or refuse a write against
//! the key's current row.
//!
//! Every write of a store goes through one writer (SQLite's thread, PostgreSQL's task) that
//! runs queued requests in batches, one transaction each. What is the same for both backends is
//! here: [`Op`], [`Reply`], [`Request`], [`Limits`] and [`OpError`]; [`WriteQueue`], which
//! prepares a write in the caller's task ([`Prepare`]), queues it and answers the [`Store`]
//! write calls (compaction step by step included); [`accept_create`], [`accept_update`] and
//! [`accept_delete`], the one place a write is refused (exists, not found, conflict) from the
//! key's current row. Each backend keeps
//! its SQL, its connection handling and its writer loop.
//!
//! [`Store`]: crate::Store

use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

use crate::prepared::ObjectHead;
use crate::{Error, ObjectKey, ObjectWrite, Preconditions, Result, StoredObject};

/// A write as a backend prepares it in the caller's task, before its writer sees it.
pub(crate) trait Prepare: Sized {
    /// Serializes what the writer will store. Fails (writing nothing) when the write cannot
    /// be stored.
    fn prepare(obj: ObjectWrite) -> Result<Self>;

    /// The columns every backend stores alike (key, uid, body, ...).
    fn head(&self) -> &ObjectHead;
}

/// A write to perform, `P` being the backend's prepared object.
#[derive(Debug)]
pub(crate) enum Op<P> {
    Create(P),
    /// Replace the object written at the given revision.
    Update(P, i64),
    Delete(ObjectKey, Preconditions),
    /// One compaction step: drop up to `batch` change rows at or below `newest - keep`.
    Compact {
        keep: i64,
        batch: usize,
    },
}

impl<P: Prepare> Op<P> {
    /// The object the op writes (none for compaction) and whether checking it needs the
    /// stored body (a delete answers the object's last state).
    pub(crate) fn key(&self) -> Option<(&ObjectKey, bool)> {
        match self {
            Op::Create(obj) | Op::Update(obj, _) => Some((&obj.head().key, false)),
            Op::Delete(key, _) => Some((key, true)),
            Op::Compact { .. } => None,
        }
    }
}

/// The answer to an [`Op`].
#[derive(Debug)]
pub(crate) enum Reply {
    Object(StoredObject),
    /// The compaction point reached, and whether compaction is complete.
    Compacted(i64, bool),
}

/// A queued write and where to send its answer.
#[derive(Debug)]
pub(crate) struct Request<P> {
    pub(crate) op: Op<P>,
    pub(crate) reply: oneshot::Sender<Result<Reply>>,
}

/// How much one transaction may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Requests per batch.
    pub(crate) ops: usize,
    /// Bytes of bodies per batch.
    pub(crate) bytes: usize,
}

/// Why one write did not happen; `S` is the backend's storage error.
#[derive(Debug)]
pub(crate) enum OpError<S> {
    /// The request is refused; the rest of the batch carries on.
    Rejected(Error),
    /// The database failed; the batch is rolled back.
    Storage(S),
}

/// What a write is checked against: the key's current row, as a backend reads it.
pub(crate) trait CurrentRow {
    fn uid(&self) -> &str;
    fn revision(&self) -> i64;
    /// The object carries a deletionTimestamp.
    fn deleting(&self) -> bool;
}

/// The accept/refuse decision of a create: the key must be free. A refused write writes
/// nothing and takes no revision (so for the update and delete below).
pub(crate) fn accept_create<C: CurrentRow>(current: Option<&C>) -> Result<()> {
    match current {
        None => Ok(()),
        Some(cur) => Err(Error::AlreadyExists {
            being_deleted: cur.deleting(),
        }),
    }
}

/// The decision of an update of the object `uid` based on the revision `expected`: it must
/// exist, with that uid, at that revision. Returns the row it replaces.
pub(crate) fn accept_update<C: CurrentRow>(uid: &str, expected: i64, current: Option<C>) -> Result<C> {
    let cur = current.ok_or(Error::NotFound)?;
    crate::check_update(uid, expected, cur.uid(), cur.revision()).map_err(Error::Conflict)?;
    Ok(cur)
}

/// The decision of a delete: the object must exist and meet the preconditions. Returns the
/// row it removes.
pub(crate) fn accept_delete<C: CurrentRow>(pre: &Preconditions, current: Option<C>) -> Result<C> {
    let cur = current.ok_or(Error::NotFound)?;
    pre.check(cur.uid(), cur.revision()).map_err(Error::Conflict)?;
    Ok(cur)
}

/// The sending side of a writer's queue: every write call of a store goes through it.
#[derive(Debug)]
pub(crate) struct WriteQueue<P> {
    sender: Mutex<Option<mpsc::Sender<Request<P>>>>,
    /// Names the backend in the error of a stopped writer.
    backend: &'static str,
}

impl<P: Prepare> WriteQueue<P> {
    /// A queue of `capacity` requests, and the receiving end for the writer.
    pub(crate) fn new(capacity: usize, backend: &'static str) -> (Self, mpsc::Receiver<Request<P>>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let queue = WriteQueue {
            sender: Mutex::new(Some(tx)),
            backend,
        };
        (queue, rx)
    }

    /// Queues a write and waits until it is committed (or refused).
    pub(crate) async fn write(&self, op: Op<P>) -> Result<Reply> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(closed_error)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Request { op, reply })
            .await
            .map_err(|_| self.writer_gone())?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    async fn write_object(&self, op: Op<P>) -> Result<StoredObject> {
        match self.write(op).await? {
            Reply::Object(obj) => Ok(obj),
            Reply::Compacted(..) => Err(Error::Internal(
                "the writer answered a write with a compaction".into(),
            )),
        }
    }

    /// [`Store::create`](crate::Store::create): prepared here, in the caller's task, to keep
    /// the writer's batches short.
    pub(crate) async fn create(&self, obj: ObjectWrite) -> Result<StoredObject> {
        self.write_object(Op::Create(P::prepare(obj)?)).await
    }

    /// [`Store::update`](crate::Store::update).
    pub(crate) async fn update(&self, obj: ObjectWrite, expected_revision: i64) -> Result<StoredObject> {
        self.write_object(Op::Update(P::prepare(obj)?, expected_revision))
            .await
    }

    /// [`Store::delete`](crate::Store::delete).
    pub(crate) async fn delete(&self, key: &ObjectKey, pre: Preconditions) -> Result<StoredObject> {
        self.write_object(Op::Delete(key.clone(), pre)).await
    }

    /// [`Store::compact`](crate::Store::compact), `batch` change rows per step, so that
    /// writes interleave with a long compaction.
    pub(crate) async fn compact(&self, keep: i64, batch: usize) -> Result<i64> {
        loop {
            match self.write(Op::Compact { keep, batch }).await? {
                Reply::Compacted(point, true) => return Ok(point),
                Reply::Compacted(_, false) => {}
                Reply::Object(_) => {
                    return Err(Error::Internal(
                        "the writer answered a compaction with an object".into(),
                    ))
                }
            }
        }
    }

    /// Fails if the store is closed or its writer has stopped (the writer part of
    /// [`Store::ping`](crate::Store::ping)).
    pub(crate) fn alive(&self) -> Result<()> {
        let open = self
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|tx| !tx.is_closed());
        match open {
            None => Err(closed_error()),
            Some(false) => Err(self.writer_gone()),
            Some(true) => Ok(()),
        }
    }

    /// Whether [`WriteQueue::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    /// Stops taking writes: the writer drains what is queued and ends. Returns whether the
    /// queue was still open.
    pub(crate) fn close(&self) -> bool {
        self.sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some()
    }

    fn writer_gone(&self) -> Error {
        Error::unavailable(format!("the {} writer has stopped", self.backend))
    }
}

/// The error of any call after [`Store::close`](crate::Store::close).
pub(crate) fn closed_error() -> Error {
    Error::Unavailable("the store is closed".into())
}

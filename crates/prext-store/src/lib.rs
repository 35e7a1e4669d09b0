//! prext's storage layer: the [`Store`] trait every backend implements, the types that cross
//! it, and the backends themselves.
//!
//! Contract, shared by every backend and checked by the conformance suite
//! ([`testsuite`], behind the `testsuite` feature):
//! - one global revision (the `resourceVersion`), strictly increasing, allocated by the database
//!   inside the writing transaction, so revisions become visible in commit order;
//! - every write also appends to the change log (the watch history) and rewrites the report's
//!   result rows, in the same transaction;
//! - an acknowledged write is durable;
//! - a list is read from one snapshot and reports that snapshot's revision.
//!
//! What both backends share beside this contract: `write` (the write-queue front: the op
//! types, submission, the accept/refuse decision of a write against its key's current row),
//! `rows` (change-row parsing, the SQL columns of result queries), `prepared` (what of a
//! write is computed in the caller's task) and `stamp` (the resourceVersion in a body). Each
//! backend (`sqlite`, `postgres`) keeps its SQL, its connections and its writer loop.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use prext_api::fields::FieldSelector;
use prext_api::labels::LabelSelector;
use prext_api::report::ReportIndex;

pub mod findings;
pub mod findings_index;
mod open;
pub mod postgres;
mod prepared;
pub mod results;
mod rows;
pub mod sqlite;
pub mod stamp;
#[cfg(feature = "testsuite")]
pub mod testsuite;
mod write;

/// Errors of the storage layer. The server turns each into a `Status` in one place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("object not found")]
    NotFound,
    /// Create of a name that exists. `being_deleted` when it carries a deletionTimestamp.
    #[error("object already exists")]
    AlreadyExists { being_deleted: bool },
    /// The stored resourceVersion or uid differs from the one the write was based on.
    #[error("conflict: {0}")]
    Conflict(#[source] Conflict),
    /// The requested revision is older than the retained history.
    #[error("revision {requested} is older than the oldest retained revision {oldest}")]
    Compacted { requested: i64, oldest: i64 },
    /// The database cannot be reached or refused the operation for a transient reason.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// Anything else: a bug or a corrupt database.
    #[error("storage failure: {0}")]
    Internal(#[source] Cause),
    /// The disk holding the database is full (SQLITE_FULL, ENOSPC, PostgreSQL SQLSTATE 53100).
    /// Not transient: retrying does not help until space is freed.
    #[error("disk full: {0}")]
    DiskFull(#[source] Cause),
    /// The store is at or over its configured quota (`--store-quota-bytes`); writes that grow
    /// it are refused until deletes or compaction bring it back under.
    #[error("store size {size} bytes is at or over the quota of {quota} bytes")]
    QuotaExceeded { size: u64, quota: u64 },
    /// A findings read waited for the findings indexer to reach the store revision it must
    /// see (`requested`) and gave up at `current` (see [`findings_index`]).
    #[error("the findings index is at revision {current}, behind revision {requested}")]
    IndexBehind { requested: i64, current: i64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use open::{open, open_url, redact, OpenError, OpenOptions, StoreUrl};

/// Where an object lives: `(resource, namespace, name)`.
/// `resource` is `plural.group`; `namespace` is empty for cluster-scoped kinds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(resource: impl Into<String>, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// A complete object to write. The server has set every field but `metadata.resourceVersion`,
/// which the store stamps with the revision it allocates.
#[derive(Debug, Clone)]
pub struct ObjectWrite {
    pub key: ObjectKey,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// `metadata.creationTimestamp`, RFC 3339.
    pub created: String,
    /// `metadata.deletionTimestamp` is set (the object waits for its finalizers).
    pub deleting: bool,
    pub body: serde_json::Value,
    /// The report's summary and results, extracted for the result table.
    pub index: ReportIndex,
}

/// An object as stored: its body is the exact JSON served, `resourceVersion` included.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub key: ObjectKey,
    pub uid: String,
    pub revision: i64,
    pub body: Bytes,
}

/// Preconditions of a delete (`DeleteOptions.preconditions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<i64>,
}

impl Preconditions {
    /// Checks the preconditions against an object's `uid` and `revision`.
    pub fn check(&self, uid: &str, revision: i64) -> Result<(), Conflict> {
        if let Some(expected) = self.uid.as_deref().filter(|u| *u != uid) {
            return Err(Conflict::Uid {
                expected: expected.to_string(),
                actual: uid.to_string(),
            });
        }
        if let Some(expected) = self.resource_version.filter(|rv| *rv != revision) {
            return Err(Conflict::ResourceVersion {
                expected,
                actual: revision,
            });
        }
        Ok(())
    }
}

/// Checks an update of the object `uid`, based on revision `expected`, against the stored
/// object's `stored_uid` and `stored_revision`.
pub fn check_update(
    uid: &str,
    expected: i64,
    stored_uid: &str,
    stored_revision: i64,
) -> Result<(), Conflict> {
    if uid != stored_uid {
        return Err(Conflict::Uid {
            expected: uid.to_string(),
            actual: stored_uid.to_string(),
        });
    }
    if expected != stored_revision {
        return Err(Conflict::Modified {
            expected,
            actual: stored_revision,
        });
    }
    Ok(())
}

/// What a conditional write conflicted with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The object's uid is not the one expected (a precondition, or the object was
    /// deleted and created again under the same name).
    #[error("uid precondition {expected} does not match the object's uid {actual}")]
    Uid { expected: String, actual: String },
    /// A delete's resourceVersion precondition does not hold.
    #[error("resourceVersion precondition {expected} does not match the object's {actual}")]
    ResourceVersion { expected: i64, actual: i64 },
    /// An update based on revision `expected` of an object now at `actual`.
    #[error("the object was modified: expected revision {expected}, found {actual}")]
    Modified { expected: i64, actual: i64 },
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub resource: String,
    /// `None` lists across all namespaces.
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// At most this many objects; the stream then ends with [`ListItem::More`] if more match.
    pub limit: Option<usize>,
    /// Resume strictly after this `(namespace, name)` (keyset pagination).
    pub after: Option<(String, String)>,
}

/// One element of a list stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ListItem {
    Object(StoredObject),
    /// More objects match after the last one sent (only with a limit).
    More,
}

/// A list being read: the snapshot's revision, then objects in `(namespace, name)` order.
pub struct ListStream {
    pub revision: i64,
    pub items: tokio::sync::mpsc::Receiver<Result<ListItem>>,
}

impl Error {
    /// [`Error::Unavailable`] with this cause.
    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        Error::Unavailable(cause.into())
    }

    /// [`Error::Internal`] with this cause.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        Error::Internal(cause.into())
    }

    /// [`Error::DiskFull`] with this cause.
    pub fn disk_full(cause: impl Into<Cause>) -> Self {
        Error::DiskFull(cause.into())
    }
}

/// Why a store was unavailable or failed: what it was doing (the message, which reads as a
/// `str`) and the driver's or the system's error underneath, when there is one (its
/// [`source`](std::error::Error::source)).
#[derive(Debug, Clone)]
pub struct Cause {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Cause {
    /// A cause with no underlying error.
    pub fn new(message: impl Into<String>) -> Self {
        Cause {
            message: message.into(),
            source: None,
        }
    }

    /// A cause whose underlying error is `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Cause {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// The same cause, its message prefixed with what was being done (`"{what}: {message}"`).
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        Cause {
            message: format!("{what}: {}", self.message),
            source: self.source,
        }
    }

    /// What the store was doing and what went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl std::ops::Deref for Cause {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl PartialEq<str> for Cause {
    fn eq(&self, other: &str) -> bool {
        self.message == other
    }
}

impl PartialEq<&str> for Cause {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Cause::new(message)
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Cause::new(message)
    }
}

/// The type of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One entry of the change log. For `Deleted`, `body` is the last state stamped with the
/// deletion revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub revision: i64,
    pub event: EventType,
    pub key: ObjectKey,
    pub body: Bytes,
    pub labels: BTreeMap<String, String>,
    /// Labels before this change (`None` for `Added`), so selector watches can see transitions.
    pub prev_labels: Option<BTreeMap<String, String>>,
}

/// A storage backend.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The object at `key`, if any.
    async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>>;

    /// Starts a list from one snapshot.
    async fn list(&self, opts: ListOptions) -> Result<ListStream>;

    /// Creates the object; [`Error::AlreadyExists`] if the key is taken.
    async fn create(&self, obj: ObjectWrite) -> Result<StoredObject>;

    /// Replaces the object if its stored revision is `expected_revision`;
    /// [`Error::Conflict`] otherwise, [`Error::NotFound`] if it is gone.
    async fn update(&self, obj: ObjectWrite, expected_revision: i64) -> Result<StoredObject>;

    /// Removes the object if the preconditions hold. Returns the removed object, its body
    /// stamped with the deletion revision.
    async fn delete(&self, key: &ObjectKey, pre: Preconditions) -> Result<StoredObject>;

    /// The newest committed revision.
    async fn revision(&self) -> Result<i64>;

    /// The oldest revision a watch can start from (changes after it are all retained).
    async fn oldest_revision(&self) -> Result<i64>;

    /// Up to `limit` changes with a revision greater than `after`, in revision order.
    /// [`Error::Compacted`] if changes after `after` were already dropped.
    async fn changes(&self, after: i64, limit: usize) -> Result<Vec<Change>>;

    /// Wakes up (with the newest revision) whenever changes are committed.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<i64>;

    /// Drops change-log entries no longer needed: keeps at least `keep` newest revisions.
    /// Returns the new oldest revision.
    async fn compact(&self, keep: i64) -> Result<i64>;

    /// How many objects each resource (`plural.group`) holds, for metrics.
    async fn object_counts(&self) -> Result<Vec<(String, i64)>>;

    /// Checks that the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    /// The bytes the stored data occupies, as counted against `--store-quota-bytes`
    /// (SQLite: pages in use, free pages excluded; PostgreSQL: `pg_database_size`).
    /// `None` when the backend cannot tell.
    async fn size_bytes(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Gives back memory held only for speed (page caches, idle connections) while the server
    /// is idle; later calls work as before, the first ones a little slower. Default: nothing.
    async fn release_memory(&self) {}

    /// Flushes and closes; later calls fail with [`Error::Unavailable`].
    async fn close(&self);

    /// One page of the results matching a query, read from one snapshot (see
    /// [`results`] for the semantics).
    async fn query_results(&self, query: results::ResultQuery) -> Result<results::ResultPage> {
        let _ = query;
        Err(Error::Unavailable(
            "result queries are not supported by this backend".into(),
        ))
    }

    /// One page of findings (see [`findings`]), read from one snapshot.
    async fn query_findings(&self, query: findings::FindingQuery) -> Result<findings::FindingPage> {
        let _ = query;
        Err(Error::Unavailable(
            "findings are not supported by this backend".into(),
        ))
    }

    /// The open findings over time, by group, from one snapshot.
    async fn finding_trends(&self, query: findings::TrendQuery) -> Result<findings::Trends> {
        let _ = query;
        Err(Error::Unavailable(
            "findings are not supported by this backend".into(),
        ))
    }

    /// Drops resolved findings resolved before `before` (Unix ms). Returns how many.
    async fn prune_findings(&self, before: i64) -> Result<u64> {
        let _ = before;
        Ok(0)
    }

    /// Counts of the results matching a filter, grouped by columns, from one snapshot.
    async fn summarize_results(&self, query: results::SummaryQuery) -> Result<results::Summary> {
        let _ = query;
        Err(Error::Unavailable(
            "result queries are not supported by this backend".into(),
        ))
    }
}

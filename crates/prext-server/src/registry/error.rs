//! The registry's error: what a verb refused and why, typed; `crate::error` words it as a
//! Kubernetes `Status` (the only place that does).

use prext_api::status::Status;
use prext_api::ResourceDef;

use super::ObjectRef;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("{} {name:?} not found", def.plural)]
    NotFound { def: &'static ResourceDef, name: String },
    /// The write was based on a resourceVersion that is no longer current (a pinned version
    /// that differs, or a race lost more often than retried).
    #[error("{} {name:?} was modified", def.plural)]
    Modified { def: &'static ResourceDef, name: String },
    /// A `DeleteOptions` precondition does not hold.
    #[error("{} {name:?}: precondition failed", def.plural)]
    Precondition {
        def: &'static ResourceDef,
        name: String,
        #[source]
        failed: prext_store::Conflict,
    },
    /// Every generated name tried was taken.
    #[error("failed to generate a unique name for {}", def.plural)]
    NameGeneration { def: &'static ResourceDef },
    /// A rule of the API refused the request (validation, metadata, options, admission); the
    /// rule has said why as a `Status`.
    #[error("{}", .0.message)]
    Rejected(Box<Status>),
    /// A `continue` token that does not decode.
    #[error("invalid continue token: {0}")]
    InvalidContinue(String),
    /// A `continue` token older than the retained history.
    #[error("the continue token is older than the retained history")]
    ContinueExpired,
    /// An exact resourceVersion that is not the current one (`resourceVersionMatch=Exact`).
    #[error("resourceVersion {requested} is not the current {current}")]
    TooOldRevision { requested: i64, current: i64 },
    /// A resourceVersion this server has not reached, even after waiting.
    #[error("resourceVersion {requested} is not reached yet")]
    TooLargeRevision { requested: i64 },
    /// The store refused or failed an operation on one object.
    #[error("storage operation on {} {name:?} failed", def.plural)]
    Store {
        def: &'static ResourceDef,
        name: String,
        #[source]
        source: prext_store::Error,
    },
    /// The store failed an operation that concerns no single object.
    #[error("storage operation failed")]
    Storage(#[source] prext_store::Error),
}

/// The registry's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Status> for Error {
    fn from(s: Status) -> Self {
        Error::Rejected(Box::new(s))
    }
}

impl Error {
    pub(crate) fn not_found(target: &ObjectRef) -> Self {
        Error::NotFound {
            def: target.def,
            name: target.name.clone(),
        }
    }

    pub(crate) fn modified(target: &ObjectRef) -> Self {
        Error::Modified {
            def: target.def,
            name: target.name.clone(),
        }
    }

    pub(crate) fn store(target: &ObjectRef, source: prext_store::Error) -> Self {
        Error::Store {
            def: target.def,
            name: target.name.clone(),
            source,
        }
    }

    /// The object is gone (or was never there): what deletecollection ignores.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Store { source, .. } => matches!(source, prext_store::Error::NotFound),
            Error::Rejected(s) => s.code == 404,
            _ => false,
        }
    }
}

//! PostgreSQL errors mapped to the store's [`Error`]: what a retry or a recovering server can
//! fix is [`Error::Unavailable`], anything else [`Error::Internal`].

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::{Cause, Error};

/// Whether a SQLSTATE means "try again later": connection trouble, shutdown, timeouts,
/// serialization failures and deadlocks, exhausted resources, a read-only (standby) server,
/// or credentials the server refuses (the store cannot serve until that is fixed either).
pub(crate) fn is_transient_state(code: &SqlState) -> bool {
    let code = code.code();
    let class = code.get(..2).unwrap_or("");
    matches!(class, "08" | "28" | "53" | "55" | "57" | "58")
        || [
            &SqlState::READ_ONLY_SQL_TRANSACTION,
            &SqlState::T_R_SERIALIZATION_FAILURE,
            &SqlState::T_R_DEADLOCK_DETECTED,
            &SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN,
        ]
        .iter()
        .any(|s| s.code() == code)
}

/// Whether a SQLSTATE means the transaction was rolled back and retrying it as a whole is safe
/// and likely to succeed (serialization failure, deadlock).
pub(crate) fn is_retryable_state(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
}

/// Whether the error lost the connection (or never had one): the statement did not run, or
/// its outcome is unknown.
pub(crate) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        return db.code().code().starts_with("08") || db.code().code().starts_with("57P");
    }
    // tokio-postgres keeps its error kinds private; the I/O cause and the kind's fixed
    // message are what it exposes.
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    let kind = e.to_string();
    [
        "error communicating with the server",
        "error connecting to server",
        "error performing TLS handshake",
        "timeout waiting for server",
    ]
    .iter()
    .any(|k| kind.starts_with(k))
}

/// Maps a tokio-postgres error (kept as the cause's source).
pub(crate) fn pg_error(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let message = format!("postgres: {} (SQLSTATE {})", db.message(), db.code().code());
        let disk_full = db.code() == &tokio_postgres::error::SqlState::DISK_FULL;
        let transient = is_transient_state(db.code());
        let cause = Cause::with_source(message, e);
        if disk_full {
            return Error::DiskFull(cause);
        }
        return if transient {
            Error::Unavailable(cause)
        } else {
            Error::Internal(cause)
        };
    }
    let transient = is_connection_error(&e) || e.to_string() == "authentication error";
    let message = match std::error::Error::source(&e) {
        Some(cause) => format!("postgres: {e}: {cause}"),
        None => format!("postgres: {e}"),
    };
    let cause = Cause::with_source(message, e);
    if transient {
        Error::Unavailable(cause)
    } else {
        Error::Internal(cause)
    }
}

/// Maps an error of getting a pooled connection.
pub(crate) fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => pg_error(e),
        PoolError::Timeout(kind) => {
            Error::unavailable(format!("postgres: timed out getting a connection ({kind:?})"))
        }
        PoolError::Closed => super::closed_error(),
        PoolError::NoRuntimeSpecified => Error::Internal("postgres: pool without a runtime".into()),
        PoolError::PostCreateHook(e) => {
            let message = format!("postgres: new connection refused: {e}");
            Error::Unavailable(Cause::with_source(message, e))
        }
    }
}

/// The error of an operation the client gave up waiting for.
pub(crate) fn timed_out(what: &str) -> Error {
    Error::unavailable(format!("postgres: timed out waiting for {what}"))
}

/// A copy of a storage error, to answer every request of a failed batch.
pub(crate) fn duplicate(e: &Error) -> Error {
    match e {
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        Error::Internal(m) => Error::Internal(m.clone()),
        Error::DiskFull(m) => Error::DiskFull(m.clone()),
        other => Error::internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_states() {
        for code in [
            SqlState::CONNECTION_FAILURE,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::QUERY_CANCELED,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::DISK_FULL,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::INVALID_PASSWORD,
        ] {
            assert!(is_transient_state(&code), "{code:?}");
        }
        for code in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::SYNTAX_ERROR,
            SqlState::UNDEFINED_TABLE,
            SqlState::INVALID_TEXT_REPRESENTATION,
            SqlState::UNTRANSLATABLE_CHARACTER,
            SqlState::INSUFFICIENT_PRIVILEGE,
        ] {
            assert!(!is_transient_state(&code), "{code:?}");
        }
        assert!(is_retryable_state(&SqlState::T_R_SERIALIZATION_FAILURE));
        assert!(is_retryable_state(&SqlState::T_R_DEADLOCK_DETECTED));
        assert!(!is_retryable_state(&SqlState::ADMIN_SHUTDOWN));
    }

    #[test]
    fn pool_errors() {
        use deadpool_postgres::TimeoutType;
        assert!(matches!(
            pool_error(PoolError::Timeout(TimeoutType::Wait)),
            Error::Unavailable(_)
        ));
        assert!(matches!(pool_error(PoolError::Closed), Error::Unavailable(_)));
        assert!(matches!(
            duplicate(&Error::Unavailable("x".into())),
            Error::Unavailable(m) if m == "x"
        ));
        assert!(matches!(duplicate(&Error::NotFound), Error::Internal(_)));
    }
}

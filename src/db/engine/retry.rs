//! When a failed statement may run again, and how long to wait first.
//!
//! A statement is retried on another connection only when it provably did not run: it failed
//! before its request was queued (the connection was already closed, preparing it failed on a
//! broken connection, no connection could be opened), or the server said it was ending the
//! session (57P01-57P03), which aborts whatever the session was running. A connection lost with
//! the outcome unknown is reported, never retried: the statement may have committed. SQL errors
//! are never retried.

use std::time::Duration;

use crate::error::{DatabaseErrorFields, PoolError};

/// What one attempt at a statement ended with, for the retry loop.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The statement did not run; another connection may succeed.
    Retry(PoolError),
    Final(PoolError),
    /// The connection was lost after the statement was sent: it may have run. The caller finds
    /// out whether the server ended the session first (then it did not run), else it is final.
    Lost(PoolError),
}

impl Failure {
    pub fn into_error(self) -> PoolError {
        match self {
            Failure::Retry(e) | Failure::Final(e) | Failure::Lost(e) => e,
        }
    }
}

/// Whether the statement's request had reached the connection when the error came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Preparing or connecting: the statement itself was not sent.
    BeforeSend,
    /// The statement was queued on the connection: it may have run.
    Sent,
}

/// The wait before retry number `retry` (0-based): the first is immediate (a dead pooled
/// connection says nothing about the next one), then `retry_delay` doubling.
pub fn backoff(retry_delay: Duration, retry: u32) -> Duration {
    let policy = crate::backoff::Backoff {
        base: retry_delay,
        first_immediate: true,
        cap: None,
    };
    policy.wait(retry, 0.0)
}

/// SQLSTATEs with which the server ends the session, aborting what it was running.
pub fn session_ended(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03")
}

/// Our error for a tokio-postgres error, and whether it means the connection itself failed.
pub fn convert(err: &tokio_postgres::Error) -> (PoolError, bool) {
    if let Some(db) = err.as_db_error() {
        let code = db.code().code().to_string();
        let connection_level = code.starts_with("08") || session_ended(&code);
        let fields = DatabaseErrorFields {
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            hint: db.hint().map(str::to_string),
            position: match db.position() {
                Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p as usize),
                _ => None,
            },
            schema: db.schema().map(str::to_string),
            table: db.table().map(str::to_string),
            column: db.column().map(str::to_string),
            constraint: db.constraint().map(str::to_string),
            severity: db.severity().to_string(),
            code,
        };
        return (PoolError::Database(Box::new(fields)), connection_level);
    }
    if err.is_closed() {
        return (
            PoolError::ConnectionFailed("the connection to the database was closed".into()),
            true,
        );
    }
    // I/O, TLS, protocol and authentication-method failures all end the connection.
    (
        PoolError::ConnectionFailed(format!("database connection failed: {err}")),
        true,
    )
}

/// Whether `err` is the server saying it ended the session (57P01-57P03).
pub fn is_session_end(err: &PoolError) -> bool {
    matches!(err, PoolError::Database(fields) if session_ended(&fields.code))
}

/// Classifies a failure of one attempt.
pub fn classify(err: &tokio_postgres::Error, stage: Stage) -> Failure {
    let (converted, connection_level) = convert(err);
    let ended = err
        .as_db_error()
        .is_some_and(|db| session_ended(db.code().code()));
    match (connection_level, stage) {
        (false, _) => Failure::Final(converted),
        (true, Stage::BeforeSend) => Failure::Retry(converted),
        (true, Stage::Sent) if ended => Failure::Retry(converted),
        (true, Stage::Sent) => Failure::Lost(PoolError::ConnectionFailed(format!(
            "the connection to the database was lost while the statement was running; \
             it may or may not have completed ({converted})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_is_immediate_then_doubling() {
        let delay = Duration::from_millis(100);
        assert_eq!(backoff(delay, 0), Duration::ZERO);
        assert_eq!(backoff(delay, 1), Duration::from_millis(100));
        assert_eq!(backoff(delay, 2), Duration::from_millis(200));
        assert_eq!(backoff(delay, 4), Duration::from_millis(800));
        assert!(
            backoff(delay, 60) > Duration::from_secs(3600),
            "saturates, no overflow"
        );
    }

    #[test]
    fn session_ending_codes() {
        for code in ["57P01", "57P02", "57P03"] {
            assert!(session_ended(code));
        }
        assert!(!session_ended("57014")); // query_canceled: the session goes on
    }
}

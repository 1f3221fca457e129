//! When a failed statement may run again, and how long to wait first.
//!
//! A statement is retried on another connection only when it provably did not run: none of it
//! reached the server, the server read none of it (it had ended the session), the server aborted
//! it while ending the session (57P01-57P03), a cancel meant for another statement stopped it, or
//! it ran inside a transaction another statement opened and that transaction was rolled back. A
//! connection lost with the outcome unknown is reported, never retried: the statement may have
//! committed. SQL errors are never retried.

use std::time::Duration;

use crate::db::engine::wire::exchange::Failed;
use crate::db::engine::wire::startup::ConnectError;
use crate::error::{DatabaseErrorFields, PoolError};

/// What one attempt at a statement ended with, for the retry loop.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The statement did not run; another connection may succeed.
    Retry(PoolError),
    Final(PoolError),
}

impl Failure {
    pub fn into_error(self) -> PoolError {
        match self {
            Failure::Retry(e) | Failure::Final(e) => e,
        }
    }
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

/// Why an exchange has no answer, as the retry loop sees it.
pub fn unanswered(failed: Failed) -> Failure {
    let connection = |message: String| PoolError::ConnectionFailed(message);
    match failed {
        Failed::NotSent(why) | Failed::NotRun(why) => Failure::Retry(connection(why)),
        Failed::EndedByServer(fields) => Failure::Retry(PoolError::Database(fields)),
        Failed::Cancelled => Failure::Retry(connection(
            "a cancel meant for another statement on its connection stopped it".into(),
        )),
        Failed::RolledBack => Failure::Retry(connection(
            "it ran inside a transaction another statement left open on its connection, \
             which was rolled back"
                .into(),
        )),
        Failed::Lost(why) => Failure::Final(connection(why)),
        Failed::TimedOut => Failure::Final(PoolError::StatementTimeout(String::new())),
        Failed::LeftTransactionOpen => Failure::Final(PoolError::StatementRefused(
            "the statement left its connection inside a transaction; it was rolled back. \
             Transactions belong in transaction(), which keeps one connection for them"
                .into(),
        )),
        Failed::Copy => Failure::Final(PoolError::StatementRefused(
            "COPY FROM STDIN and COPY TO STDOUT are not supported through query(); \
             use a connection of your own for COPY"
                .into(),
        )),
    }
}

/// An error the server answered (the session goes on): the caller's, never retried, but for a
/// prepared statement whose result shape changed under it (the cache forgets it; it did not run).
pub fn answered(fields: Box<DatabaseErrorFields>) -> Failure {
    if is_stale_plan(&fields) {
        return Failure::Retry(PoolError::Database(fields));
    }
    Failure::Final(PoolError::Database(fields))
}

/// "cached plan must not change result type": a table changed under a prepared statement, which
/// the server refused to run.
pub fn is_stale_plan(fields: &DatabaseErrorFields) -> bool {
    fields.code == "0A000"
        && fields
            .message
            .contains("cached plan must not change result type")
}

/// A connection that could not be opened.
pub fn not_opened(err: &ConnectError) -> Failure {
    let error = PoolError::ConnectionFailed(format!("could not connect to the database: {err}"));
    if err.retryable() {
        Failure::Retry(error)
    } else {
        Failure::Final(error)
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
    fn only_what_provably_did_not_run_is_retried() {
        for retried in [
            Failed::NotSent("x".into()),
            Failed::NotRun("x".into()),
            Failed::Cancelled,
            Failed::RolledBack,
        ] {
            assert!(matches!(unanswered(retried), Failure::Retry(_)));
        }
        for final_ in [
            Failed::Lost("x".into()),
            Failed::TimedOut,
            Failed::LeftTransactionOpen,
            Failed::Copy,
        ] {
            assert!(matches!(unanswered(final_), Failure::Final(_)));
        }
        let refused = unanswered(Failed::LeftTransactionOpen).into_error();
        assert_eq!(refused.code(), "STATEMENT_REFUSED");
    }

    #[test]
    fn server_errors_are_final_but_a_stale_plan() {
        let unique = Box::new(DatabaseErrorFields {
            code: "23505".into(),
            ..Default::default()
        });
        assert!(matches!(answered(unique), Failure::Final(_)));
        let stale = Box::new(DatabaseErrorFields {
            code: "0A000".into(),
            message: "cached plan must not change result type".into(),
            ..Default::default()
        });
        assert!(matches!(answered(stale), Failure::Retry(_)));
    }
}

//! How this pool's statements run: prepared and cached, or in one flight for a transaction
//! pooler; and how long they may take.
//!
//! Past `statementTimeout` a statement is cancelled on the server (a CancelRequest on a
//! connection of its own, as libpq's `PQcancel`), by its connection's task (`wire::driver`).
//! The connection then has the grace of `connectionTimeout` to answer: if the statement's reply
//! comes in that time the connection is fine (and a reply that beat the cancel is returned: the
//! work was done); if nothing comes, the network or the server stopped answering, and the
//! connection is discarded so that nothing else waits on it. Either way the caller hears within
//! `statementTimeout + connectionTimeout` (plus at most one tick of the pool's watch, for a
//! statement written while its connection's task slept: `pool.rs`).

use std::time::{Duration, Instant};

use crate::db::engine::config::{PoolConfig, Pooler};
use crate::db::engine::retry::{self, Failure};
use crate::db::engine::wire::exchange::Failed;
use crate::error::PoolError;

#[derive(Clone, Copy, Debug)]
pub struct StatementPolicy {
    /// No named statements; each statement's Parse/Bind/Describe/Execute/Sync in one flight.
    pub one_flight: bool,
    pub timeout: Option<Duration>,
    /// How long a cancelled statement's connection has to answer before it is discarded.
    pub grace: Duration,
}

impl StatementPolicy {
    pub fn from_config(config: &PoolConfig) -> Self {
        StatementPolicy {
            one_flight: config.pooler == Pooler::Transaction,
            timeout: config.statement_timeout,
            grace: config.connection_timeout,
        }
    }

    /// When a statement queued now must have been answered.
    pub fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|limit| Instant::now() + limit)
    }

    /// Why an exchange has no answer, as the retry loop sees it.
    pub fn unanswered(&self, failed: Failed) -> Failure {
        match failed {
            Failed::TimedOut => Failure::Final(PoolError::StatementTimeout(format!(
                "the statement ran past statementTimeout ({} ms) and was cancelled",
                self.timeout.unwrap_or_default().as_millis()
            ))),
            other => retry::unanswered(other),
        }
    }
}

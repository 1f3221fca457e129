//! How this pool's statements run: prepared and cached, or in one flight for a transaction
//! pooler; and how long they may take.
//!
//! Past `statementTimeout` a statement is cancelled on the server (a CancelRequest on a
//! connection of its own, as libpq's `PQcancel`). The connection then has the grace of
//! `connectionTimeout` to answer: if the statement's reply comes in that time the connection is
//! fine (and a reply that beat the cancel is returned: the work was done); if nothing comes, the
//! network or the server stopped answering, and the connection is discarded so that nothing else
//! waits on it. Either way the caller hears within `statementTimeout + connectionTimeout`.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::db::engine::config::{PoolConfig, Pooler};
use crate::db::engine::connect::ConnectOptions;
use crate::db::engine::connection::Conn;
use crate::db::engine::retry::Failure;
use crate::error::PoolError;

#[derive(Clone, Debug)]
pub struct StatementPolicy {
    /// No named statements; each statement's Parse/Bind/Describe/Execute/Sync in one flight.
    pub one_flight: bool,
    pub timeout: Option<Duration>,
    /// How long a cancelled statement's connection has to answer before it is discarded.
    pub grace: Duration,
    connect: ConnectOptions,
}

impl StatementPolicy {
    pub fn from_config(config: &PoolConfig) -> Self {
        StatementPolicy {
            one_flight: config.pooler == Pooler::Transaction,
            timeout: config.statement_timeout,
            grace: config.connection_timeout,
            connect: config.connect_options.clone(),
        }
    }

    /// Runs `work` (requests on `conn`) within the statement timeout; see the module comment.
    /// `work` comes boxed: a statement's future stays small while it waits for its reply.
    pub async fn bounded<T>(&self, conn: &Conn, mut work: Work<'_, T>) -> Result<T, Failure> {
        let Some(limit) = self.timeout else {
            return work.await;
        };
        match tokio::time::timeout(limit, work.as_mut()).await {
            Ok(result) => result,
            Err(_) => Box::pin(self.cancel_then_wait(conn, work, limit)).await,
        }
    }

    async fn cancel_then_wait<T>(
        &self,
        conn: &Conn,
        mut work: Work<'_, T>,
        limit: Duration,
    ) -> Result<T, Failure> {
        let grace_ends = Instant::now() + self.grace;
        let _ =
            tokio::time::timeout_at(grace_ends.into(), self.connect.cancel(conn.cancel_token()))
                .await;
        match tokio::time::timeout_at(grace_ends.into(), work.as_mut()).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(timed_out(limit)),
            Err(_) => {
                conn.discard();
                Err(timed_out(limit))
            }
        }
    }
}

/// A statement's requests, boxed.
pub type Work<'a, T> = Pin<Box<dyn Future<Output = Result<T, Failure>> + Send + 'a>>;

fn timed_out(limit: Duration) -> Failure {
    Failure::Final(PoolError::StatementTimeout(format!(
        "the statement ran past statementTimeout ({} ms) and was cancelled",
        limit.as_millis()
    )))
}

//! The database pool as the rest of the library sees it: every statement's path (a lease, the
//! retry policy, the count in the stats), health, gauges and close.
//!
//! Every statement is counted exactly once, here, whoever called it. Connections are shared by
//! pipelining (`pool.rs`) and speak the protocol through our own layer (`wire/`);
//! docs/architecture.md says why.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::db::auth::context::RoleContext;
use crate::db::codec::output::QueryOutput;
use crate::db::codec::params::Param;
use crate::db::codec::rows::ValueStyle;
use crate::db::engine::config::PoolConfig;
use crate::db::engine::execute;
use crate::db::engine::policy::StatementPolicy;
use crate::db::engine::pool::{
    AcquireError, Lease, LeaseKind, Occupancy, Pool, PoolOptions, Postgres,
};
use crate::db::engine::request;
use crate::db::engine::retry::{backoff, Failure};
use crate::db::engine::snapshot::PoolSnapshot;
use crate::db::engine::wire::exchange::{Expect, Sink};
use crate::error::PoolError;
use crate::stats::OutcomeCounters;

pub struct DbPool {
    config: PoolConfig,
    policy: StatementPolicy,
    pool: Pool,
    counters: OutcomeCounters,
    acquire_timeouts: AtomicU64,
    /// Submissions waiting for a runner (`db::submit`'s queue): callers waiting too, for what
    /// `POOL_TIMEOUT` says.
    queued_submissions: AtomicUsize,
}

impl DbPool {
    pub fn new(config: PoolConfig) -> Self {
        let pool = Pool::with_manager(
            PoolOptions {
                max_connections: config.max_connections as usize,
                min_connections: config.min_connections as usize,
                pipeline_depth: config.pipeline_depth as usize,
                connect_timeout: config.connection_timeout,
                idle_timeout: config.idle_timeout,
                watch_every: config.statement_timeout.map(watch_period),
                max_lifetime: config.max_lifetime,
            },
            Postgres {
                options: config.connect_options.clone(),
                grace: config.connection_timeout,
            },
        );
        DbPool {
            policy: StatementPolicy::from_config(&config),
            config,
            pool,
            counters: OutcomeCounters::default(),
            acquire_timeouts: AtomicU64::new(0),
            queued_submissions: AtomicUsize::new(0),
        }
    }

    /// The submission queue's length changed by one (`queued`: grew).
    pub fn count_queued(&self, queued: bool) {
        if queued {
            self.queued_submissions.fetch_add(1, Ordering::Relaxed);
        } else {
            self.queued_submissions.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Whether a statement could get a connection now without waiting for one to be given back.
    pub fn has_room(&self) -> bool {
        self.pool.has_room()
    }

    pub fn policy(&self) -> &StatementPolicy {
        &self.policy
    }

    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// Whether the login role is a superuser (known once a connection is open).
    pub fn superuser_login(&self) -> Option<bool> {
        self.pool.superuser_login()
    }

    /// Runs one statement, with the retry policy of `retry.rs`, and counts it.
    pub async fn query(
        &self,
        sql: &str,
        params: &[Param],
        style: ValueStyle,
        role: Option<&RoleContext>,
    ) -> Result<QueryOutput, PoolError> {
        self.query_since(Instant::now(), 0, sql, params, style, role)
            .await
    }

    /// `query` for a statement that has been waiting since `started` (in the submission queue),
    /// and already tried `retries` times: `connectionTimeout` and the latency count from then.
    pub async fn query_since(
        &self,
        started: Instant,
        mut retries: u32,
        sql: &str,
        params: &[Param],
        style: ValueStyle,
        role: Option<&RoleContext>,
    ) -> Result<QueryOutput, PoolError> {
        let deadline = started + self.config.connection_timeout;
        let result = loop {
            let attempt = match self.lease(LeaseKind::Shared, deadline).await {
                Ok(lease) => {
                    let waited = started.elapsed();
                    crate::faults::trip(crate::faults::Fault::Statement);
                    let conn = lease.conn();
                    execute::run(conn, &self.policy, sql, params, style, role, Expect::Idle)
                        .await
                        .map(|mut output| {
                            output.set_waited(waited);
                            output
                        })
                }
                Err(failure) => Err(failure),
            };
            match attempt {
                Ok(output) => break Ok(output),
                Err(Failure::Final(err)) => break Err(err),
                Err(Failure::Retry(err)) => {
                    let now = Instant::now();
                    if retries >= self.config.max_retries || now >= deadline {
                        break Err(err);
                    }
                    let wait = backoff(self.config.retry_delay, retries);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait.min(deadline - now)).await;
                    }
                    retries += 1;
                }
            }
        };
        self.record(result.is_ok(), started);
        result
    }

    /// Counts one statement that started at `started` (a transaction's statements count too).
    pub fn record(&self, ok: bool, started: Instant) {
        self.counters
            .record(ok, started.elapsed().as_secs_f64() * 1000.0);
    }

    /// A lease, with the pool's reasons for not giving one turned into errors.
    pub async fn lease(&self, kind: LeaseKind, deadline: Instant) -> Result<Lease, Failure> {
        if !self.config.has_connection_string {
            return Err(Failure::Final(
                crate::db::engine::config::no_connection_string(),
            ));
        }
        match self.pool.acquire(kind, deadline).await {
            Ok(lease) => Ok(lease),
            Err(AcquireError::Closed) => Err(Failure::Final(PoolError::PoolClosed)),
            Err(AcquireError::Connect(failure)) => Err(failure),
            Err(AcquireError::TimedOut {
                pool_full,
                last_connect_error,
                occupancy,
            }) => {
                self.acquire_timeouts.fetch_add(1, Ordering::Relaxed);
                if pool_full {
                    self.pool.timings().count_timeout();
                }
                let waited_ms = self.config.connection_timeout.as_millis() as u64;
                Err(Failure::Final(if pool_full {
                    PoolError::PoolTimeout {
                        waited_ms,
                        occupancy: Box::new(Occupancy {
                            waiting: occupancy.waiting
                                + self.queued_submissions.load(Ordering::Relaxed),
                            ..occupancy
                        }),
                    }
                } else {
                    let reason = last_connect_error
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    PoolError::ConnectionFailed(format!(
                        "could not connect to the database within {waited_ms} ms \
                         (server unreachable or refusing connections){reason}"
                    ))
                }))
            }
        }
    }

    /// `SELECT 1` within `connectionTimeout`; never counted as a user statement.
    pub async fn health_check(&self) -> Result<Duration, PoolError> {
        if self.is_closed() {
            return Err(PoolError::PoolClosed);
        }
        let started = Instant::now();
        let deadline = started + self.config.connection_timeout;
        let probe = async {
            let lease = self
                .lease(LeaseKind::Shared, deadline)
                .await
                .map_err(Failure::into_error)?;
            let mut bytes = bytes::BytesMut::new();
            request::unnamed_text(&mut bytes, "SELECT 1", &[], &[]).map_err(PoolError::Internal)?;
            request::sync(&mut bytes);
            let sinks = vec![Sink::Discard];
            let answer = request::exchange(lease.conn(), &bytes, sinks, Expect::Idle, None)
                .await
                .map_err(|failed| self.policy.unanswered(failed).into_error())?;
            if let Some(error) = answer.error {
                return Err(PoolError::Database(error));
            }
            Ok(started.elapsed())
        };
        match tokio::time::timeout_at(deadline.into(), probe).await {
            Ok(result) => result,
            Err(_) => Err(PoolError::ConnectionFailed(format!(
                "no answer from the database within {} ms",
                self.config.connection_timeout.as_millis()
            ))),
        }
    }

    pub fn snapshot(&self) -> PoolSnapshot {
        let gauges = self.pool.gauges();
        let (wait_time, use_time) = self.pool.timings().histograms();
        PoolSnapshot {
            wait_time,
            use_time,
            total_connections: gauges.total,
            idle_connections: gauges.idle,
            waiting_requests: gauges.waiting,
            acquire_timeouts: self.acquire_timeouts.load(Ordering::Relaxed),
            outcomes: self.counters.snapshot(),
        }
    }

    pub fn reset_stats(&self) {
        self.counters.reset();
        self.acquire_timeouts.store(0, Ordering::Relaxed);
        self.pool.timings().reset_histograms();
    }

    /// Stops admitting statements, lets running ones finish, closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// How often the pool looks for statements past their deadline that no connection task has
/// seen yet (one written directly while its task slept): a tenth of `statementTimeout`, between
/// 5 ms and a second.
fn watch_period(statement_timeout: Duration) -> Duration {
    (statement_timeout / 10).clamp(Duration::from_millis(5), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    /// Futures are moved when napi spawns them and when they are boxed; keep a statement's small.
    #[test]
    fn statement_future_stays_small() {
        let config =
            super::PoolConfig::from_json("{}", r#"{"DATABASE_URL":"postgres://u@localhost/db"}"#)
                .unwrap();
        let pool = super::DbPool::new(config);
        let fut = pool.query("select 1", &[], super::ValueStyle::Driver, None);
        assert!(
            std::mem::size_of_val(&fut) < 2048,
            "{}",
            std::mem::size_of_val(&fut)
        );
    }
}

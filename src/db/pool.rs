//! The database pool: one sqlx `PgPool`, the statement path every query takes, and its stats.
//!
//! Shape of a statement: acquire (bounded by `connectionTimeout`), prepare (cached per
//! connection; tells us the parameter types), encode the parameters as those types, execute,
//! and write the rows as JSON. Every statement is counted exactly once, here, whoever called it.
//!
//! Dead connections. sqlx's `test_before_acquire` pings before every use, an extra round trip per
//! query. Instead a connection is pinged only when it sat idle for a while, or when it went idle
//! before the pool last saw a connection die (a server restart or `pg_terminate_backend` usually
//! kills them all at once). A statement that still meets a dead connection is retried on a fresh
//! one only when it provably did not run: the failure came before it was sent (acquire, prepare),
//! or the server reported it was shutting the session down (57P01-57P03), which aborts the
//! statement's transaction. A connection lost with the outcome unknown is reported, not retried.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnection, PgDatabaseError, PgPool, PgPoolOptions};
use sqlx::{Arguments, AssertSqlSafe, Either, Executor, Postgres, SqlSafeStr, Statement};

use super::config::PoolConfig;
use super::params::{encode_all, Param};
use super::rows::{check_columns, RowEncoder, ValueStyle};
use crate::error::{DatabaseErrorFields, PoolError};
use crate::stats::{OutcomeCounters, OutcomeSnapshot};

/// A connection idle longer than this is pinged before use (NAT and firewalls drop quiet sockets).
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(30);

/// One statement's reply as JSON text: `{"columns":[…],"rows":[[…],…],"rowCount":n}`.
pub struct QueryOutput {
    pub json: String,
}

/// The role a user client's statements run as, and the JWT claims they see.
#[derive(Debug, Clone)]
pub struct RoleContext {
    pub role: String,
    /// JSON text for `request.jwt.claims`.
    pub claims: String,
}

/// `BEGIN`, then the role and claims for this transaction only (`set_config(..., true)`), in one
/// simple-query message: one round trip instead of two. The values are written as escape-string
/// literals (`ident::quote_literal`), the one place a caller-influenced value is not bound as a
/// parameter; the simple-query protocol has no parameters, and saving the round trip is worth a
/// quarter of a user client's statement time.
async fn begin_as(conn: &mut PgConnection, role: &RoleContext) -> Result<(), sqlx::Error> {
    let (Some(role_literal), Some(claims_literal)) = (
        super::ident::quote_literal(&role.role),
        super::ident::quote_literal(&role.claims),
    ) else {
        return Err(sqlx::Error::Protocol(
            "a role or claims value contains a NUL character".into(),
        ));
    };
    let sql = format!(
        "BEGIN; SELECT set_config('role', {role_literal}, true), set_config('request.jwt.claims', {claims_literal}, true)"
    );
    conn.execute(AssertSqlSafe(sql)).await?;
    Ok(())
}

/// Live gauges and counters for `getStats()`.
#[derive(Debug)]
pub struct PoolSnapshot {
    pub total_connections: u32,
    pub idle_connections: u32,
    pub waiting_requests: u64,
    pub acquire_timeouts: u64,
    pub outcomes: OutcomeSnapshot,
}

/// What one attempt at a statement ended with, before the retry loop decides.
enum AttemptError {
    /// The statement did not run; another connection may succeed.
    Retry(PoolError),
    Final(PoolError),
}

pub struct DbPool {
    config: PoolConfig,
    /// Created on first use, so that initializing (and importing) opens no connection.
    pool: OnceLock<PgPool>,
    closed: AtomicBool,
    counters: OutcomeCounters,
    waiting: AtomicUsize,
    acquire_timeouts: AtomicU64,
    checked_out: Arc<AtomicUsize>,
    /// µs since `epoch` when a dead connection was last seen; 0 = never.
    dead_seen_at_us: Arc<AtomicU64>,
    epoch: Instant,
}

impl DbPool {
    pub fn new(config: PoolConfig) -> Self {
        DbPool {
            config,
            pool: OnceLock::new(),
            closed: AtomicBool::new(false),
            counters: OutcomeCounters::default(),
            waiting: AtomicUsize::new(0),
            acquire_timeouts: AtomicU64::new(0),
            checked_out: Arc::new(AtomicUsize::new(0)),
            dead_seen_at_us: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The sqlx pool; must be called from inside the tokio runtime (it spawns maintenance).
    fn pool(&self) -> &PgPool {
        let mut created = false;
        let pool = self.pool.get_or_init(|| {
            created = true;
            let dead_seen_at_us = self.dead_seen_at_us.clone();
            let epoch = self.epoch;
            PgPoolOptions::new()
                .max_connections(self.config.max_connections)
                .min_connections(self.config.min_connections)
                .acquire_timeout(self.config.connection_timeout)
                .idle_timeout(self.config.idle_timeout)
                .test_before_acquire(false)
                .before_acquire(move |conn: &mut PgConnection, meta| {
                    let idle_since_us =
                        epoch.elapsed().saturating_sub(meta.idle_for).as_micros() as u64;
                    let dead_seen = dead_seen_at_us.load(Ordering::Relaxed);
                    let suspect = dead_seen != 0 && idle_since_us <= dead_seen;
                    let check = suspect || meta.idle_for > PING_WHEN_IDLE_FOR;
                    Box::pin(async move {
                        if check {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_lazy_with(self.config.connect_options.clone())
        });
        if created {
            self.fill_min_connections(pool.clone());
        }
        pool
    }

    /// A lazy sqlx pool only tops up `min_connections` after it reaps one, so on first use the
    /// pool opens them here: checking out `min` connections at once forces each to be opened.
    fn fill_min_connections(&self, pool: PgPool) {
        let min = self.config.min_connections;
        if min == 0 {
            return;
        }
        tokio::spawn(async move {
            let held = futures::future::join_all((0..min).map(|_| pool.acquire())).await;
            drop(held);
        });
    }

    fn note_dead_connection(&self) {
        let now = self.epoch.elapsed().as_micros() as u64;
        self.dead_seen_at_us.store(now.max(1), Ordering::Relaxed);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Runs one statement, with the retry policy described at the top of this module, and counts it.
    pub async fn query(
        &self,
        sql: &str,
        params: &[Param],
        style: ValueStyle,
        role: Option<&RoleContext>,
    ) -> Result<QueryOutput, PoolError> {
        let started = Instant::now();
        let result = self
            .run_with_retries(sql, params, style, role, started)
            .await;
        if let Err(PoolError::PoolTimeout { .. } | PoolError::ConnectionFailed(_)) = &result {
            if started.elapsed() >= self.config.connection_timeout {
                self.acquire_timeouts.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.counters
            .record(result.is_ok(), started.elapsed().as_secs_f64() * 1000.0);
        result
    }

    async fn run_with_retries(
        &self,
        sql: &str,
        params: &[Param],
        style: ValueStyle,
        role: Option<&RoleContext>,
        started: Instant,
    ) -> Result<QueryOutput, PoolError> {
        let deadline = started + self.config.connection_timeout;
        let mut retries = 0;
        loop {
            match self.attempt(sql, params, style, role, deadline).await {
                Ok(output) => return Ok(output),
                Err(AttemptError::Final(err)) => return Err(err),
                Err(AttemptError::Retry(err)) => {
                    let now = Instant::now();
                    if retries >= self.config.max_retries || now >= deadline {
                        return Err(err);
                    }
                    // The first retry is immediate: a dead pooled connection says nothing about
                    // the next one. Later ones back off from retryDelay, within the deadline.
                    if retries > 0 {
                        let backoff = self.config.retry_delay * 2u32.saturating_pow(retries - 1);
                        tokio::time::sleep(backoff.min(deadline - now)).await;
                    }
                    retries += 1;
                }
            }
        }
    }

    async fn acquire(&self, deadline: Instant) -> Result<CheckedOut, AttemptError> {
        if self.is_closed() {
            return Err(AttemptError::Final(PoolError::PoolClosed));
        }
        let pool = self.pool();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let waiting = WaitingGuard::enter(&self.waiting);
        // Boxed: sqlx's acquire future embeds a whole connect attempt and is large to move around.
        let acquired = tokio::time::timeout(remaining, Box::pin(pool.acquire())).await;
        drop(waiting);
        let timed_out = || {
            // All connections busy → POOL_TIMEOUT; room in the pool but none could be opened →
            // the server is unreachable.
            if self.checked_out.load(Ordering::Relaxed) >= self.config.max_connections as usize {
                PoolError::PoolTimeout {
                    waited_ms: self.config.connection_timeout.as_millis() as u64,
                    max_connections: self.config.max_connections,
                }
            } else {
                PoolError::ConnectionFailed(format!(
                    "could not connect to the database within {} ms (server unreachable or refusing connections)",
                    self.config.connection_timeout.as_millis()
                ))
            }
        };
        match acquired {
            Ok(Ok(conn)) => Ok(CheckedOut::new(conn, self.checked_out.clone())),
            Err(_) | Ok(Err(sqlx::Error::PoolTimedOut)) => Err(AttemptError::Final(timed_out())),
            Ok(Err(sqlx::Error::PoolClosed)) => Err(AttemptError::Final(PoolError::PoolClosed)),
            Ok(Err(err)) => {
                let (err, connection_level) = convert_error(err);
                if connection_level {
                    Err(AttemptError::Retry(err))
                } else {
                    Err(AttemptError::Final(err))
                }
            }
        }
    }

    async fn attempt(
        &self,
        sql: &str,
        params: &[Param],
        style: ValueStyle,
        role: Option<&RoleContext>,
        deadline: Instant,
    ) -> Result<QueryOutput, AttemptError> {
        if role.is_some_and(|r| r.role.contains('\0') || r.claims.contains('\0')) {
            return Err(AttemptError::Final(PoolError::InvalidToken(
                "invalid access token: its role or claims contain a NUL character".into(),
            )));
        }
        let mut conn = self.acquire(deadline).await?;
        let Some(role) = role else {
            return self.run_statement(&mut conn, sql, params, style).await;
        };

        // As PostgREST: a transaction whose role and claims are local to it, so nothing carries
        // over to the connection's next borrower. Nothing of the statement is sent before this
        // succeeds, so a connection failure here is retryable.
        if let Err(err) = begin_as(&mut conn, role).await {
            self.roll_back(&mut conn).await;
            return Err(self.after_failure(&mut conn, err, true));
        }
        let result = self.run_statement(&mut conn, sql, params, style).await;
        if result.is_err() {
            self.roll_back(&mut conn).await;
            return result;
        }
        if let Err(err) = conn.execute(AssertSqlSafe("COMMIT")).await {
            // The statement ran; whether its transaction committed is not known to us.
            self.roll_back(&mut conn).await;
            return Err(match self.after_failure(&mut conn, err, false) {
                AttemptError::Retry(e) | AttemptError::Final(e) => AttemptError::Final(e),
            });
        }
        result
    }

    /// Ends a failed transaction; a connection that cannot even do that is not reused.
    async fn roll_back(&self, conn: &mut CheckedOut) {
        if conn.execute(AssertSqlSafe("ROLLBACK")).await.is_err() {
            conn.inner.close_on_drop();
        }
    }

    /// Prepares, binds and runs one statement on a checked-out connection.
    async fn run_statement(
        &self,
        conn: &mut CheckedOut,
        sql: &str,
        params: &[Param],
        style: ValueStyle,
    ) -> Result<QueryOutput, AttemptError> {
        // Nothing has been sent for this statement yet: any connection failure here is retryable.
        let statement = match conn
            .prepare_with(AssertSqlSafe(sql.to_string()).into_sql_str(), &[])
            .await
        {
            Ok(statement) => statement,
            Err(err) => return Err(self.after_failure(conn, err, true)),
        };
        check_columns(statement.columns()).map_err(AttemptError::Final)?;
        let types = match statement.parameters() {
            Some(Either::Left(types)) => types,
            _ => &[],
        };
        let encoded = encode_all(params, types).map_err(AttemptError::Final)?;
        let mut arguments = PgArguments::default();
        for value in encoded {
            arguments
                .add(value)
                .map_err(|e| AttemptError::Final(PoolError::Internal(e.to_string())))?;
        }

        let encoder = RowEncoder::new(statement.columns(), style);
        let mut out = String::with_capacity(256);
        out.push_str("{\"columns\":");
        out.push_str(encoder.columns_json());
        out.push_str(",\"rows\":[");
        let mut rows_written = 0u64;
        let mut row_count = 0u64;
        let outcome: Result<(), sqlx::Error> = async {
            let mut stream = conn.fetch_many(statement.query_with(arguments));
            while let Some(item) = stream.try_next().await? {
                match item {
                    Either::Left(done) => row_count += done.rows_affected(),
                    Either::Right(row) => {
                        if rows_written > 0 {
                            out.push(',');
                        }
                        encoder
                            .write_row(&row, &mut out)
                            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                        rows_written += 1;
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(err) = outcome {
            if let sqlx::Error::Decode(inner) = err {
                return Err(AttemptError::Final(PoolError::Internal(inner.to_string())));
            }
            return Err(self.after_failure(conn, err, false));
        }
        out.push_str("],\"rowCount\":");
        out.push_str(&row_count.max(rows_written).to_string());
        out.push('}');
        Ok(QueryOutput { json: out })
    }

    /// Classifies a failure on a checked-out connection, and retires the connection if it broke.
    fn after_failure(
        &self,
        conn: &mut CheckedOut,
        err: sqlx::Error,
        before_send: bool,
    ) -> AttemptError {
        let session_ended = matches!(&err, sqlx::Error::Database(db)
            if db.try_downcast_ref::<PgDatabaseError>()
                .is_some_and(|e| matches!(e.code(), "57P01" | "57P02" | "57P03")));
        let (converted, connection_level) = convert_error(err);
        if !connection_level {
            return AttemptError::Final(converted);
        }
        conn.inner.close_on_drop();
        self.note_dead_connection();
        if before_send || session_ended {
            AttemptError::Retry(converted)
        } else {
            AttemptError::Final(PoolError::ConnectionFailed(format!(
                "the connection to the database was lost while the statement was running; \
                 it may or may not have completed ({converted})"
            )))
        }
    }

    /// `SELECT 1` within `connectionTimeout`; never fails, never counted as a user statement.
    pub async fn health_check(&self) -> Result<Duration, PoolError> {
        if self.is_closed() {
            return Err(PoolError::PoolClosed);
        }
        let started = Instant::now();
        let deadline = started + self.config.connection_timeout;
        let probe = async {
            let mut conn = match self.acquire(deadline).await {
                Ok(conn) => conn,
                Err(AttemptError::Retry(e) | AttemptError::Final(e)) => return Err(e),
            };
            match conn.execute(AssertSqlSafe("SELECT 1")).await {
                Ok(_) => Ok(started.elapsed()),
                Err(err) => match self.after_failure(&mut conn, err, false) {
                    AttemptError::Retry(e) | AttemptError::Final(e) => Err(e),
                },
            }
        };
        match tokio::time::timeout(self.config.connection_timeout, probe).await {
            Ok(result) => result,
            Err(_) => Err(PoolError::ConnectionFailed(format!(
                "no answer from the database within {} ms",
                self.config.connection_timeout.as_millis()
            ))),
        }
    }

    pub fn snapshot(&self) -> PoolSnapshot {
        let (total, idle) = match self.pool.get() {
            Some(pool) if !pool.is_closed() => (pool.size(), pool.num_idle() as u32),
            _ => (0, 0),
        };
        PoolSnapshot {
            total_connections: total,
            idle_connections: idle.min(total),
            waiting_requests: self.waiting.load(Ordering::Relaxed) as u64,
            acquire_timeouts: self.acquire_timeouts.load(Ordering::Relaxed),
            outcomes: self.counters.snapshot(),
        }
    }

    pub fn reset_stats(&self) {
        self.counters.reset();
        self.acquire_timeouts.store(0, Ordering::Relaxed);
    }

    /// Stops admitting statements, waits for checked-out connections to come back, closes all.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(pool) = self.pool.get() {
            pool.close().await;
        }
    }
}

/// Counts callers waiting for a connection, also when their future is dropped mid-wait.
struct WaitingGuard<'a>(&'a AtomicUsize);
impl<'a> WaitingGuard<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        WaitingGuard(counter)
    }
}
impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A pooled connection that keeps the checked-out count true on every path.
struct CheckedOut {
    inner: PoolConnection<Postgres>,
    counter: Arc<AtomicUsize>,
}
impl CheckedOut {
    fn new(inner: PoolConnection<Postgres>, counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        CheckedOut { inner, counter }
    }
}
impl Drop for CheckedOut {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}
impl std::ops::Deref for CheckedOut {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.inner
    }
}
impl std::ops::DerefMut for CheckedOut {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.inner
    }
}

/// Maps a sqlx error to ours, and says whether it means the connection itself failed.
fn convert_error(err: sqlx::Error) -> (PoolError, bool) {
    match err {
        sqlx::Error::Database(db) => match db.try_downcast::<PgDatabaseError>() {
            Ok(pg) => {
                let code = pg.code().to_string();
                let connection_level =
                    code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03");
                let fields = DatabaseErrorFields {
                    message: pg.message().to_string(),
                    detail: pg.detail().map(str::to_string),
                    hint: pg.hint().map(str::to_string),
                    position: match pg.position() {
                        Some(sqlx::postgres::PgErrorPosition::Original(p)) => Some(p),
                        _ => None,
                    },
                    schema: pg.schema().map(str::to_string),
                    table: pg.table().map(str::to_string),
                    column: pg.column().map(str::to_string),
                    constraint: pg.constraint().map(str::to_string),
                    severity: format!("{:?}", pg.severity()).to_uppercase(),
                    code,
                };
                (PoolError::Database(Box::new(fields)), connection_level)
            }
            Err(other) => (PoolError::Internal(other.to_string()), false),
        },
        sqlx::Error::Io(e) => (
            PoolError::ConnectionFailed(format!("database connection failed: {e}")),
            true,
        ),
        sqlx::Error::Tls(e) => (
            PoolError::ConnectionFailed(format!("TLS with the database failed: {e}")),
            true,
        ),
        sqlx::Error::Protocol(e) => (
            PoolError::ConnectionFailed(format!("protocol error talking to the database: {e}")),
            true,
        ),
        sqlx::Error::PoolClosed => (PoolError::PoolClosed, false),
        sqlx::Error::Configuration(e) => (
            PoolError::InvalidConfig(format!("connection options: {e}")),
            false,
        ),
        other => (PoolError::Internal(other.to_string()), false),
    }
}

#[cfg(test)]
mod tests {
    /// Futures are moved when napi spawns them and when they are boxed; a statement's future
    /// once embedded a whole connect attempt (15 KB) and the copies showed up in profiles.
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

//! One open connection: a tokio-postgres `Client` that many statements share at once, and the
//! statements prepared on it.
//!
//! tokio-postgres pipelines by itself: each request is queued to the connection task the first
//! time its future is polled, and responses are matched to requests in order. What it cannot do
//! is keep a group of requests together (a user client's `BEGIN; set_config…`, its statement and
//! `COMMIT`) when other tasks queue onto the same connection at the same moment. So every request
//! is queued under `enqueue`, a lock held only for that first, synchronous poll; a group is
//! queued under one hold, and nothing can land between its parts.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;
use tokio_postgres::{CancelToken, Client, Statement};

/// Prepared statements kept per connection; past this, the cache starts over (Postgres frees a
/// statement when its handle is dropped, so the server side shrinks with it).
const STATEMENT_CACHE_CAPACITY: usize = 512;

pub struct Conn {
    pub id: u64,
    client: Client,
    cancel: CancelToken,
    /// The task that drives the socket; aborted to drop a connection that stopped answering.
    task: Option<AbortHandle>,
    enqueue: Mutex<()>,
    statements: Mutex<HashMap<Box<str>, Statement>>,
    /// Set when the session's state is unknown (an abandoned or broken transaction): the pool
    /// closes the connection instead of lending it again.
    retired: AtomicBool,
    /// Statements running on this connection, and those of them whose connection was lost with
    /// the outcome unknown (see `ended_by_server`).
    running: AtomicUsize,
    lost: AtomicUsize,
    end: Arc<SessionEnd>,
}

/// How the session ended, shared by the connection's task and its `Conn`.
#[derive(Default)]
pub struct SessionEnd {
    /// The connection task has finished (and recorded why).
    finished: AtomicBool,
    /// The server ended this session (57P01-57P03): it aborted what it was running and read
    /// nothing after, so no statement still waiting for its reply ran.
    by_server: AtomicBool,
    /// Woken when a statement settles or the task finishes.
    changed: tokio::sync::Notify,
}

impl SessionEnd {
    /// Called by the connection task as it ends; `result` is what the connection returned (an
    /// error the server sent while no statement was waiting arrives here).
    pub fn finished(&self, result: &Result<(), tokio_postgres::Error>) {
        if let Err(err) = result {
            if err
                .as_db_error()
                .is_some_and(|db| crate::db::engine::retry::session_ended(db.code().code()))
            {
                self.by_server.store(true, Ordering::Release);
            }
        }
        self.finished.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }
}

impl Conn {
    pub fn new(id: u64, client: Client, task: Option<AbortHandle>, end: Arc<SessionEnd>) -> Self {
        Conn {
            id,
            cancel: client.cancel_token(),
            client,
            task,
            enqueue: Mutex::new(()),
            statements: Mutex::new(HashMap::new()),
            retired: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            lost: AtomicUsize::new(0),
            end,
        }
    }

    /// Counts a statement as running here until the guard drops.
    pub fn track_statement(&self) -> Running<'_> {
        self.running.fetch_add(1, Ordering::AcqRel);
        Running { conn: self }
    }

    /// The server said it ended this session.
    pub fn mark_ended_by_server(&self) {
        self.end.by_server.store(true, Ordering::Release);
    }

    /// For a statement whose connection was lost after it was sent: waits (at most `limit`)
    /// until the connection task has finished and every other statement on this connection has
    /// settled or is lost too, so that whoever received the server's goodbye has said so; then
    /// tells whether the server ended the session (then this statement never ran).
    pub async fn ended_by_server(&self, limit: Duration) -> bool {
        self.lost.fetch_add(1, Ordering::AcqRel);
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.end.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let task_done = self.end.finished.load(Ordering::Acquire) || self.task.is_none();
            if task_done
                && self.lost.load(Ordering::Acquire) >= self.running.load(Ordering::Acquire)
            {
                break;
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                break;
            }
        }
        self.lost.fetch_sub(1, Ordering::AcqRel);
        self.end.by_server.load(Ordering::Acquire)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The server or the network ended the session (the connection task has finished), or the
    /// connection was retired.
    pub fn is_closed(&self) -> bool {
        self.retired.load(Ordering::Acquire) || self.client.is_closed()
    }

    /// Lends this connection to nobody again; it closes once its current holder lets go.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Closes the socket now: every request still on it fails, and the pool replaces it. For a
    /// connection that stopped answering, whose requests would otherwise wait forever.
    pub fn discard(&self) {
        self.retire();
        if let Some(task) = &self.task {
            task.abort();
        }
    }

    /// What a CancelRequest for this session needs.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The prepared statement for `sql`, preparing it on first use on this connection.
    pub async fn prepare_cached(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.cache().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.queued(self.client.prepare(sql)).await?;
        let mut cache = self.cache();
        if cache.len() >= STATEMENT_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(sql.into(), statement.clone());
        Ok(statement)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Statement>> {
        self.statements.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wraps a request future (or a join of several) so that its first poll, which queues the
    /// request(s) on the connection, happens under the enqueue lock.
    pub fn queued<F: Future>(&self, future: F) -> Queued<'_, F> {
        Queued {
            lock: &self.enqueue,
            future: Box::pin(future),
            first_poll_done: false,
        }
    }
}

/// A statement counted as running on a connection; see `Conn::track_statement`.
pub struct Running<'a> {
    conn: &'a Conn,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.conn.running.fetch_sub(1, Ordering::AcqRel);
        self.conn.end.changed.notify_waiters();
    }
}

/// See `Conn::queued`.
pub struct Queued<'a, F> {
    lock: &'a Mutex<()>,
    future: Pin<Box<F>>,
    first_poll_done: bool,
}

impl<F: Future> Future for Queued<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.first_poll_done {
            return self.future.as_mut().poll(cx);
        }
        self.first_poll_done = true;
        let lock = self.lock;
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.future.as_mut().poll(cx)
    }
}

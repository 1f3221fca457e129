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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};

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
}

impl Conn {
    pub fn new(id: u64, client: Client, task: Option<AbortHandle>) -> Self {
        Conn {
            id,
            cancel: client.cancel_token(),
            client,
            task,
            enqueue: Mutex::new(()),
            statements: Mutex::new(HashMap::new()),
            retired: AtomicBool::new(false),
        }
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

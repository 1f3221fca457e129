//! The crossing between JS and the engine, batched both ways.
//!
//! A napi-rs `async fn` costs a promise, a deferred and a wake-up of the Node thread per call
//! (8.5 µs of CPU at 50 callers, measured). Here a call is a synchronous `submit` that queues the
//! work and returns; replies go back through `crate::crossing` (one wake-up of the Node thread
//! per batch).
//!
//! A statement that can go out at once (a connection has room, nobody waits before it, it is
//! prepared there) is written by the submitting thread itself and answered by the connection's
//! task (`engine::immediate`): no task at all. Any other submission waits as data, not as a
//! task: at most `max_runners` tasks run statements (enough to fill every connection's
//! pipeline), and each takes the next submission when it finishes one. So 50,000 statements
//! queued behind a blocked database cost their SQL, their parameters and a few dozen bytes each,
//! and they still go out first come, first served.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::FutureExt;

use super::rest::{self, RestReply};
use crate::crossing::{Notify, Replies};
use crate::db::auth::context::RoleContext;
use crate::db::codec::output::{QueryOutput, Reply};
use crate::db::codec::params::Param;
use crate::db::codec::rows::ValueStyle;
use crate::db::engine::guard::{self, Caller, Scope};
use crate::db::engine::retry::Failure;
use crate::db::engine::transaction::{Transaction, TxOptions};
use crate::db::engine::DbPool;
use crate::db::rest::cache::SchemaCache;
use crate::error::PoolError;

/// Statements in flight below which the submitting thread starts one itself (`may_start_now`):
/// measured with `npm run bench` at 1, 10 and 50 callers (bench/RESULTS.md, 2026-12-06).
const START_NOW_BELOW: usize = 4;

/// The reply of a submission that returns nothing but success.
const OK_REPLY: &str = r#"{"ok":true}"#;

/// What a submission asks for.
pub enum Work {
    Statement {
        sql: String,
        params: Vec<Param>,
        style: ValueStyle,
    },
    /// A query-builder request in the fetch adapter's wire form (`rest::parse::ApiRequest`).
    Request { request: String, anonymous: bool },
    /// Begins a transaction known from then on by this submission's id.
    Begin { options: TxOptions },
    /// A statement inside transaction `tx`.
    TxStatement {
        tx: u32,
        sql: String,
        params: Vec<Param>,
        style: ValueStyle,
    },
    /// A query-builder request inside transaction `tx`.
    TxRequest {
        tx: u32,
        request: String,
        anonymous: bool,
    },
    /// Commits or rolls back transaction `tx`.
    End { tx: u32, commit: bool },
}

/// An open transaction; its statements take turns (one connection, one statement at a time).
type OpenTransaction = Arc<tokio::sync::Mutex<Option<Transaction>>>;

pub struct Submission {
    pub id: u32,
    pub work: Work,
    pub role: Option<RoleContext>,
    /// When JS submitted it: `connectionTimeout` counts from here, queueing included.
    pub submitted: Instant,
    /// Attempts made already (a statement started at once that may run again).
    pub retries: u32,
}

pub struct Dispatcher {
    pool: Arc<DbPool>,
    /// What builder requests learned of the schema (`reloadSchema()` forgets it).
    schema: Arc<SchemaCache>,
    queue: Mutex<VecDeque<Submission>>,
    runners: AtomicUsize,
    max_runners: usize,
    replies: Replies,
    transactions: Mutex<HashMap<u32, OpenTransaction>>,
    /// Set by `close`: new work is refused; what was accepted still runs.
    closing: AtomicBool,
    /// Woken when a runner stops or a statement started at once is answered.
    runner_stopped: tokio::sync::Notify,
    /// Statements started at once and not yet answered.
    started_now: AtomicUsize,
    /// Runners waiting inside a submission (a lease, a prepare, a transaction's turn).
    waiting_runners: AtomicUsize,
    /// The runtime, entered by the submitting thread to start a statement at once.
    runtime: Option<tokio::runtime::Handle>,
    /// Telemetry traces statements: their replies say how long they waited for a connection.
    with_wait: AtomicBool,
}

impl Dispatcher {
    pub fn new(pool: Arc<DbPool>, schema: Arc<SchemaCache>, notify: Box<dyn Notify>) -> Arc<Self> {
        let config = pool.config();
        let max_runners = (config.max_connections as usize)
            .saturating_mul(config.pipeline_depth as usize)
            .max(1);
        Arc::new(Dispatcher {
            pool,
            schema,
            queue: Mutex::new(VecDeque::new()),
            runners: AtomicUsize::new(0),
            max_runners,
            replies: Replies::new(notify),
            transactions: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
            runner_stopped: tokio::sync::Notify::new(),
            started_now: AtomicUsize::new(0),
            waiting_runners: AtomicUsize::new(0),
            runtime: napi::bindgen_prelude::within_runtime_if_available(
                tokio::runtime::Handle::try_current,
            )
            .ok(),
            with_wait: AtomicBool::new(false),
        })
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Submission>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Statements' replies say how long they waited for a connection (`"waitMs"`), or not.
    pub fn set_with_wait(&self, on: bool) {
        self.with_wait.store(on, Ordering::Relaxed);
    }

    fn with_wait(&self) -> bool {
        self.with_wait.load(Ordering::Relaxed)
    }

    /// Where replies go (the Supabase HTTP services answer through it too).
    pub fn replies(&self) -> &Replies {
        &self.replies
    }

    /// Statements submitted and not yet picked up by a runner.
    pub fn queued(&self) -> usize {
        self.queue().len()
    }

    /// Queues a submission; starts a runner if fewer than `max_runners` are running.
    ///
    /// Work inside an open transaction skips the queue: it needs no lease (its transaction holds
    /// a connection already), and it must never wait for a runner, since the runners may all be
    /// waiting for the very connection that this transaction can only give back once its
    /// statements have run. There are at most `maxConnections` open transactions.
    pub fn submit(self: &Arc<Self>, submission: Submission) {
        if self.closing.load(Ordering::Acquire)
            && matches!(
                submission.work,
                Work::Statement { .. } | Work::Request { .. } | Work::Begin { .. }
            )
        {
            // Work of a transaction begun before close still runs: it ends what was accepted.
            self.replies
                .reply(submission.id, &PoolError::PoolClosed.to_envelope());
            return;
        }
        if matches!(
            submission.work,
            Work::TxStatement { .. } | Work::TxRequest { .. } | Work::End { .. }
        ) {
            let this = self.clone();
            napi::bindgen_prelude::spawn(async move { this.respond(&submission).await });
            return;
        }
        if let Work::Statement { sql, params, .. } = &submission.work {
            let caller = Caller {
                scope: Scope::Shared,
                user: submission.role.is_some(),
            };
            // Checked once here, wherever the statement then runs (and however often).
            if let Err(refused) = guard::check(sql, params, caller) {
                self.pool.record(false, submission.submitted);
                self.replies.reply(submission.id, &refused.to_envelope());
                return;
            }
        }
        let submission = match &submission.work {
            Work::Statement { .. } if self.may_start_now() => match self.start_now(submission) {
                None => return,
                Some(submission) => submission,
            },
            _ => submission,
        };
        self.enqueue(submission);
    }

    /// Queues a submission for the runners.
    fn enqueue(self: &Arc<Self>, submission: Submission) {
        self.queue().push_back(submission);
        self.pool.count_queued(true);
        self.ensure_runner();
    }

    /// Starts a runner when submissions are queued, every runner is waiting (for a lease, a
    /// prepare, a transaction) and fewer than `max_runners` run. A runner that is not waiting
    /// empties the queue quickly, since what can go out at once is sent without waiting for
    /// its answer; so a burst of submissions from one drain does not spawn a task each, and a
    /// runner that starts waiting while a connection has room calls this too, so the queue
    /// behind it still moves.
    fn ensure_runner(self: &Arc<Self>) {
        if self.queue().is_empty() {
            return;
        }
        let started = self
            .runners
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                let waiting = self.waiting_runners.load(Ordering::Acquire);
                (n < self.max_runners && waiting >= n).then_some(n + 1)
            })
            .is_ok();
        if started {
            let this = self.clone();
            napi::bindgen_prelude::spawn(async move { this.run().await });
        }
    }

    /// Whether a statement may be started by the submitting thread: nothing queued before it,
    /// and few in flight. Under load Node's thread is busy with JS, and tokio's threads take the
    /// work (and batch the writes of a connection's pipeline); lightly loaded, Node's thread
    /// would only wait, and writing the statement itself saves the wake-up of a tokio thread.
    fn may_start_now(&self) -> bool {
        let in_flight =
            self.started_now.load(Ordering::Relaxed) + self.runners.load(Ordering::Relaxed);
        in_flight < START_NOW_BELOW && self.queue().is_empty()
    }

    /// Starts a statement from this thread when it can go out at once; gives it back when it
    /// must wait for a runner (None: it is under way, or answered).
    fn start_now(self: &Arc<Self>, submission: Submission) -> Option<Submission> {
        let Some(runtime) = &self.runtime else {
            return Some(submission);
        };
        let Work::Statement { sql, params, style } = &submission.work else {
            return Some(submission);
        };
        let _entered = runtime.enter();
        let role = submission.role.as_ref();
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.pool.ready_now(sql, params, *style, role)
        }));
        let ready = match attempt {
            Ok(None) => return Some(submission),
            Ok(Some(Ok(ready))) => ready,
            Ok(Some(Err(failure))) => {
                self.settle_now(submission, Err(failure));
                return None;
            }
            Err(panic) => {
                let failure = Failure::Final(PoolError::from_panic(panic));
                self.settle_now(submission, Err(failure));
                return None;
            }
        };
        self.started_now.fetch_add(1, Ordering::AcqRel);
        let this = self.clone();
        ready.send(move |result| {
            this.settle_now(submission, result);
            if this.started_now.fetch_sub(1, Ordering::AcqRel) == 1 {
                this.runner_stopped.notify_waiters();
            }
        });
        None
    }

    /// Replies to a statement started at once, or queues it for a runner when it did not run
    /// and may run again.
    fn settle_now(
        self: &Arc<Self>,
        mut submission: Submission,
        result: Result<QueryOutput, Failure>,
    ) {
        let config = self.pool.config();
        let error = match result {
            Ok(mut output) => {
                self.pool.record(true, submission.submitted);
                // Started where it was submitted: its place was had at once.
                output.set_waited(std::time::Duration::ZERO);
                self.send(submission.id, output.into_reply_with_wait(self.with_wait()));
                return;
            }
            Err(Failure::Retry(err)) => {
                let in_time = submission.submitted.elapsed() < config.connection_timeout;
                if config.max_retries > 0 && in_time {
                    submission.retries = 1;
                    self.enqueue(submission);
                    return;
                }
                err
            }
            Err(Failure::Final(err)) => err,
        };
        self.pool.record(false, submission.submitted);
        self.replies.reply(submission.id, &error.to_envelope());
    }

    async fn run(self: Arc<Self>) {
        loop {
            let next = self.queue().pop_front();
            if next.is_some() {
                self.pool.count_queued(false);
            }
            let Some(submission) = next else {
                self.runners.fetch_sub(1, Ordering::AcqRel);
                // A submission may have been queued after our look and before the count fell;
                // if no runner would take it, this one does.
                if self.queue().is_empty()
                    || self
                        .runners
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                            (n < self.max_runners).then_some(n + 1)
                        })
                        .is_err()
                {
                    self.runner_stopped.notify_waiters();
                    return;
                }
                continue;
            };
            // A statement that can go out at once is sent without waiting for its answer (the
            // connection's task replies), and the runner takes the next one: no wake-up of
            // this task per statement.
            let submission = match &submission.work {
                // A statement that already failed once goes the way that counts its retries.
                Work::Statement { .. } if submission.retries == 0 => {
                    match self.start_now(submission) {
                        None => continue,
                        Some(submission) => submission,
                    }
                }
                _ => submission,
            };
            self.waiting_runners.fetch_add(1, Ordering::AcqRel);
            // While this one waits, another runner may use a connection that has room: not
            // when every connection is taken (it would only wait for a lease too).
            if self.pool.has_room() {
                self.ensure_runner();
            }
            self.respond(&submission).await;
            self.waiting_runners.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Runs a submission and replies: a builder request with its body beside the batch.
    async fn respond(&self, submission: &Submission) {
        let request = match &submission.work {
            Work::Request { .. } | Work::TxRequest { .. } => self.execute_request(submission),
            _ => {
                let executed = std::panic::AssertUnwindSafe(self.execute(submission))
                    .catch_unwind()
                    .await;
                match executed {
                    Ok(Ok(reply)) => self.send(submission.id, reply),
                    Ok(Err(err)) => self.replies.reply(submission.id, &err.to_envelope()),
                    Err(panic) => self
                        .replies
                        .reply(submission.id, &PoolError::from_panic(panic).to_envelope()),
                }
                return;
            }
        };
        match std::panic::AssertUnwindSafe(request).catch_unwind().await {
            Ok(Ok(RestReply::WithBody { head, body })) => {
                self.replies.reply_with_body(submission.id, &head, body)
            }
            Ok(Ok(RestReply::Whole(json))) => self.replies.reply(submission.id, &json),
            Ok(Err(err)) => self.replies.reply(submission.id, &err.to_envelope()),
            Err(panic) => self
                .replies
                .reply(submission.id, &PoolError::from_panic(panic).to_envelope()),
        }
    }

    async fn execute_request(&self, submission: &Submission) -> Result<RestReply, PoolError> {
        let pool = &self.pool;
        match &submission.work {
            Work::Request { request, anonymous } => Ok(rest::run(
                pool,
                &self.schema,
                request,
                submission.role.as_ref(),
                *anonymous,
            )
            .await),
            Work::TxRequest {
                tx,
                request,
                anonymous,
            } => {
                let open = self.transaction(*tx)?;
                let guard = open.lock().await;
                let tx = guard.as_ref().ok_or_else(ended)?;
                Ok(rest::run_in(pool, &self.schema, tx, request, *anonymous).await)
            }
            _ => Err(PoolError::Internal("not a builder request".into())),
        }
    }

    /// Sends a statement's reply: JSON, or packed (its buffer and text beside the batch).
    fn send(&self, id: u32, reply: Reply) {
        match reply {
            Reply::Whole(json) => self.replies.reply(id, &json),
            Reply::Packed { head, buffer, text } => {
                self.replies.reply_packed(id, &head, buffer, text)
            }
        }
    }

    async fn execute(&self, submission: &Submission) -> Result<Reply, PoolError> {
        let role = submission.role.as_ref();
        let pool = &self.pool;
        match &submission.work {
            // The guard passed it in `submit`.
            Work::Statement { sql, params, style } => pool
                .query_since(
                    submission.submitted,
                    submission.retries,
                    sql,
                    params,
                    *style,
                    role,
                )
                .await
                .map(|output| output.into_reply_with_wait(self.with_wait())),
            Work::Begin { options } => {
                let tx = Transaction::begin(pool, role, *options).await?;
                self.open_transactions()
                    .insert(submission.id, Arc::new(tokio::sync::Mutex::new(Some(tx))));
                Ok(Reply::Whole(OK_REPLY.into()))
            }
            Work::TxStatement {
                tx,
                sql,
                params,
                style,
            } => {
                let open = self.transaction(*tx)?;
                let guard = open.lock().await;
                let tx = guard.as_ref().ok_or_else(ended)?;
                tx.query_raw(pool, sql, params, *style)
                    .await
                    .map(QueryOutput::into_reply)
            }
            Work::Request { .. } | Work::TxRequest { .. } => Err(PoolError::Internal(
                "a builder request replies with a body".into(),
            )),
            Work::End { tx, commit } => {
                let open = self.open_transactions().remove(tx).ok_or_else(ended)?;
                let taken = open.lock().await.take();
                taken.ok_or_else(ended)?.finish(pool, *commit).await?;
                Ok(Reply::Whole(OK_REPLY.into()))
            }
        }
    }

    fn open_transactions(&self) -> MutexGuard<'_, HashMap<u32, OpenTransaction>> {
        self.transactions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn transaction(&self, id: u32) -> Result<OpenTransaction, PoolError> {
        self.open_transactions().get(&id).cloned().ok_or_else(ended)
    }

    /// Refuses new statements, requests and transactions from now on (`POOL_CLOSED`), and
    /// resolves once every one already accepted has run: `initialize()` replaces a pool without
    /// failing what its callers had already asked of it. Statements of open transactions still
    /// run; the pool's own close waits for those transactions to end.
    pub async fn close(&self) {
        self.closing.store(true, Ordering::Release);
        loop {
            let stopped = self.runner_stopped.notified();
            let mut stopped = std::pin::pin!(stopped);
            stopped.as_mut().enable();
            if self.queue().is_empty()
                && self.runners.load(Ordering::Acquire) == 0
                && self.started_now.load(Ordering::Acquire) == 0
            {
                return;
            }
            stopped.await;
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Every reply since the last drain: their ids, the replies as one JSON array text, and
    /// the builder bodies they refer to.
    pub fn drain(&self) -> crate::crossing::Drained {
        self.replies.drain()
    }
}

fn ended() -> PoolError {
    PoolError::InvalidArgument("the transaction has already ended".into())
}

//! Pool mechanics: how many connections are open, which one a statement goes to, who waits.
//!
//! A statement takes a *shared* lease: a place in one connection's pipeline, up to
//! `pipelineDepth` statements in flight per connection. A transaction takes an *exclusive* lease:
//! the connection to itself until it ends. Choosing a connection for a shared lease:
//! - an idle connection first (the most recently used, so surplus ones can age out);
//! - else the busy connection whose pipeline is moving best: fewest statements in flight, plus a
//!   penalty for the time since it last completed one, in units of the pool's typical statement
//!   time. Only moving pipelines qualify: a connection that has completed nothing since it got
//!   busy (its first statement may be the slow one; unless that was under `YOUNG` ago), or
//!   nothing for `stall_after`, takes no more work while it is so: a fast statement waits for room elsewhere rather than queue behind a
//!   slow one;
//! - and when no connection is idle and the pool is below `maxConnections`, a new one is opened.
//!
//! Waiting callers are served first come, first served. When the first in line needs an exclusive
//! lease and none is idle, one connection stops taking new statements and is handed over as soon
//! as its pipeline drains: a transaction waits at most one flight.
//!
//! A lease returns its place when dropped, on every path (a finished statement, an error, a
//! caller that went away). Dead connections (the server ended the session, the network dropped)
//! are removed as soon as nothing holds them.
//!
//! The mechanics know connections only through `Manager` and `Pooled` (deadpool's `Manager`
//! idea): `Postgres` opens real ones (`connect.rs`, `connection.rs`); the unit tests below open
//! stand-ins, so every rule here is tested without a server.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::db::engine::connect::ConnectOptions;
use crate::db::engine::connection::Conn;
pub use crate::db::engine::occupancy::Occupancy;
use crate::db::engine::retry::{self, Failure};
use crate::db::engine::timings::{PoolTimings, Timing};
use crate::db::engine::wire::channel::Channel;
use crate::db::engine::wire::driver::Driver;
use crate::db::engine::wire::startup::{self, Session};

/// How the pool opens its connections.
pub trait Manager: Send + Sync + 'static {
    type Conn: Pooled;
    /// A connection just opened, before the pool names it.
    type Opened: Send + 'static;
    fn open(&self) -> impl std::future::Future<Output = Result<Self::Opened, OpenError>> + Send;
    /// The opened connection as the pool's connection `id`, with the task driving its socket
    /// (which `close()` waits for) and what it said of the login role.
    fn adopt(&self, id: u64, opened: Self::Opened) -> Adopted<Self::Conn>;
}

/// What the pool needs of a connection.
pub trait Pooled: Send + Sync + 'static {
    fn id(&self) -> u64;
    /// Closed for good (the server ended it, the network dropped it, it was retired).
    fn is_closed(&self) -> bool;
    /// Called every `watch_every`: a chance to notice a statement past its deadline.
    fn watch(&self, _now: Instant) {}
}

pub struct Adopted<C> {
    pub conn: C,
    pub task: Option<tokio::task::JoinHandle<()>>,
    /// The server's `is_superuser` for the login role, when it reported one.
    pub superuser: Option<bool>,
}

/// Why a connection could not be opened: how the retry policy sees it, and the text for stats
/// and timeouts (`last_connect_error`).
pub struct OpenError {
    pub failure: Failure,
    pub message: String,
}

/// Real Postgres connections: a session opened by `wire::startup`, driven by its task.
pub struct Postgres {
    pub options: ConnectOptions,
    /// How long a cancelled statement's connection has to answer (`connectionTimeout`).
    pub grace: Duration,
}

impl Manager for Postgres {
    type Conn = Conn;
    type Opened = Session;

    async fn open(&self) -> Result<Session, OpenError> {
        let startup = self.options.startup();
        let opened = match startup.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, startup::open(startup))
                .await
                .unwrap_or_else(|_| Err(startup::ConnectError::timed_out(limit))),
            None => startup::open(startup).await,
        };
        opened.map_err(|err| OpenError {
            failure: retry::not_opened(&err),
            message: err.to_string(),
        })
    }

    fn adopt(&self, id: u64, session: Session) -> Adopted<Conn> {
        let superuser = session.parameters.get("is_superuser").map(|v| v == "on");
        let channel = Arc::new(Channel::new(Some(session.stream.direct_writer())));
        let driver = Driver::new(
            channel.clone(),
            session.stream,
            session.read_buf,
            session.cancel,
            self.grace,
        );
        let task = tokio::spawn(async move {
            driver.run().await;
        });
        Adopted {
            conn: Conn::new(id, channel),
            task: Some(task),
            superuser,
        }
    }
}

impl Pooled for Conn {
    fn id(&self) -> u64 {
        self.id
    }

    fn is_closed(&self) -> bool {
        Conn::is_closed(self)
    }

    fn watch(&self, now: Instant) {
        Conn::watch(self, now)
    }
}

/// Never treat a pipeline as stuck sooner than this, however fast statements usually are.
const MIN_STALL: Duration = Duration::from_millis(2);
/// A pipeline that has completed nothing for this long is stuck whatever the typical time.
const MAX_STALL: Duration = Duration::from_millis(50);
/// A connection that got busy this recently may take more statements before its first one is
/// back: statements submitted together (a batch of callers woken by one drain) share pipelines.
const YOUNG: Duration = Duration::from_micros(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    Shared,
    Exclusive,
}

pub struct PoolOptions {
    pub max_connections: usize,
    pub min_connections: usize,
    pub pipeline_depth: usize,
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    /// How often connections are asked to look for statements past their deadline.
    pub watch_every: Option<Duration>,
    /// A connection past it (plus its own jitter of up to half) takes no new work and closes
    /// once its work is done; `None`: connections live until idle reaping or failure.
    pub max_lifetime: Option<Duration>,
}

/// What a caller waiting for a connection is told when it gives up.
pub enum AcquireError {
    Closed,
    /// The deadline passed; `pool_full` tells busy (POOL_TIMEOUT) from unreachable.
    TimedOut {
        pool_full: bool,
        last_connect_error: Option<String>,
        occupancy: Occupancy,
    },
    /// Opening a connection failed while nothing else could serve this caller.
    Connect(Failure),
}

pub struct Pool<M: Manager = Postgres> {
    inner: Arc<Inner<M>>,
}

struct Inner<M: Manager> {
    options: PoolOptions,
    manager: M,
    state: Mutex<State<M>>,
    /// Exponentially weighted statement time in µs: the unit of a pipeline's stall penalty.
    typical_us: AtomicU64,
    /// What the server said of the login role: 0 not known yet, 1 not a superuser, 2 superuser.
    superuser_login: std::sync::atomic::AtomicU8,
    timings: PoolTimings,
}

struct Slot<C> {
    conn: Arc<C>,
    in_flight: usize,
    exclusive: bool,
    /// Reserved for the exclusive waiter at the head of the line: takes no new statements.
    draining: bool,
    /// When a statement on this connection last completed, within the current busy spell; None
    /// while it is idle or has completed nothing since it got busy. Only a pipeline that is
    /// seen to move takes more statements: one whose first statement has not come back yet may
    /// be the slow one.
    last_progress: Option<Instant>,
    /// When the current busy spell began (a statement leased on an idle connection), or when
    /// a transaction took it.
    busy_since: Instant,
    idle_since: Instant,
    /// Past this it takes no new work and closes when its work is done (`max_lifetime`).
    retire_at: Option<Instant>,
}

impl<C: Pooled> Slot<C> {
    fn is_idle(&self) -> bool {
        self.in_flight == 0 && !self.exclusive
    }

    fn is_retired(&self, now: Instant) -> bool {
        self.retire_at.is_some_and(|at| now >= at)
    }

    /// May take new work: not held whole, open, and within its lifetime.
    fn is_usable(&self, now: Instant) -> bool {
        !self.exclusive && !self.conn.is_closed() && !self.is_retired(now)
    }
}

struct Waiter<M: Manager> {
    kind: LeaseKind,
    reply: oneshot::Sender<Result<Lease<M>, AcquireError>>,
}

struct State<M: Manager> {
    slots: Vec<Slot<M::Conn>>,
    opening: usize,
    waiters: VecDeque<Waiter<M>>,
    closed: bool,
    started: bool,
    next_id: u64,
    last_connect_error: Option<String>,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// The tasks driving each connection's socket; `close()` waits for them to end.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A place on a connection: a pipeline slot (shared) or the whole connection (exclusive).
pub struct Lease<M: Manager = Postgres> {
    pool: Arc<Inner<M>>,
    conn: Arc<M::Conn>,
    kind: LeaseKind,
    started: Instant,
    /// False once released by hand under the pool's lock (see `Inner::hand_over`).
    armed: bool,
    /// Whether its time counts toward the pool's typical statement time.
    timed: bool,
}

impl<M: Manager> Lease<M> {
    pub fn conn(&self) -> &M::Conn {
        &self.conn
    }

    /// Gives the place back without counting its time: nothing ran on it.
    pub fn unused(mut self) {
        self.timed = false;
    }

    /// The connection, to hold beside the lease.
    pub fn conn_handle(&self) -> Arc<M::Conn> {
        self.conn.clone()
    }
}

impl<M: Manager> Drop for Lease<M> {
    fn drop(&mut self) {
        if self.armed {
            let held = self.started.elapsed();
            // Held from grant to return, whether or not a statement ran on it.
            self.pool.timings.record(Timing::Use, held);
            let elapsed = self.timed.then_some(held);
            self.pool.release(self.conn.id(), self.kind, elapsed);
        }
    }
}

/// Live gauges of the connections, for stats.
pub struct Gauges {
    pub total: u32,
    pub idle: u32,
    pub waiting: u64,
}

impl<M: Manager> Pool<M> {
    pub fn with_manager(options: PoolOptions, manager: M) -> Self {
        Pool {
            inner: Arc::new(Inner {
                options,
                manager,
                state: Mutex::new(State {
                    slots: Vec::new(),
                    opening: 0,
                    waiters: VecDeque::new(),
                    closed: false,
                    started: false,
                    next_id: 1,
                    last_connect_error: None,
                    close_waiters: Vec::new(),
                    tasks: Vec::new(),
                }),
                typical_us: AtomicU64::new(200),
                superuser_login: std::sync::atomic::AtomicU8::new(0),
                timings: PoolTimings::default(),
            }),
        }
    }

    /// A lease of `kind`, waiting until `deadline` at most. Must be called inside the runtime.
    pub async fn acquire(
        &self,
        kind: LeaseKind,
        deadline: Instant,
    ) -> Result<Lease<M>, AcquireError> {
        let asked = Instant::now();
        let granted = self.acquire_by(kind, deadline).await;
        if granted.is_ok() {
            self.inner.timings.record(Timing::Wait, asked.elapsed());
        }
        granted
    }

    async fn acquire_by(
        &self,
        kind: LeaseKind,
        deadline: Instant,
    ) -> Result<Lease<M>, AcquireError> {
        let receiver = {
            let mut state = self.inner.lock();
            if state.closed {
                return Err(AcquireError::Closed);
            }
            self.inner.start(&mut state);
            // Behind anyone already waiting: first come, first served.
            if state.waiters.is_empty() {
                if let Some(lease) = self.inner.try_lease(&mut state, kind) {
                    return Ok(lease);
                }
            }
            let (reply, receiver) = oneshot::channel();
            state.waiters.push_back(Waiter { kind, reply });
            self.inner.dispatch(&mut state);
            receiver
        };
        match tokio::time::timeout_at(deadline.into(), receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AcquireError::Closed),
            Err(_) => {
                let state = self.inner.lock();
                Err(AcquireError::TimedOut {
                    pool_full: state.slots.len() >= self.inner.options.max_connections,
                    last_connect_error: state.last_connect_error.clone(),
                    occupancy: self.inner.occupancy(&state),
                })
            }
        }
    }

    /// A lease if one can be had right now without waiting, and nobody is waiting before this
    /// caller; None otherwise (or when closed). Must be called inside the runtime (it may start
    /// opening a connection).
    pub fn try_acquire_now(&self, kind: LeaseKind) -> Option<Lease<M>> {
        let mut state = self.inner.lock();
        if state.closed || !state.waiters.is_empty() {
            return None;
        }
        self.inner.start(&mut state);
        let lease = self.inner.try_lease(&mut state, kind);
        drop(state);
        if lease.is_some() {
            self.inner.timings.count_immediate();
        }
        lease
    }

    /// The create, wait and use timings (off until telemetry turns them on).
    pub fn timings(&self) -> &PoolTimings {
        &self.inner.timings
    }

    /// Whether a lease could be had without waiting for one to be given back: a connection is
    /// idle, or the pool may open another.
    pub fn has_room(&self) -> bool {
        let state = self.inner.lock();
        !state.closed
            && (state.slots.len() + state.opening < self.inner.options.max_connections
                || state
                    .slots
                    .iter()
                    .any(|s| s.in_flight == 0 && s.is_usable(Instant::now())))
    }

    pub fn gauges(&self) -> Gauges {
        let state = self.inner.lock();
        let busy = state
            .slots
            .iter()
            .filter(|s| s.in_flight > 0 || s.exclusive)
            .count();
        Gauges {
            total: state.slots.len() as u32,
            idle: (state.slots.len() - busy) as u32,
            waiting: state
                .waiters
                .iter()
                .filter(|w| !w.reply.is_closed())
                .count() as u64,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Whether the login role is a superuser, once a connection has told.
    pub fn superuser_login(&self) -> Option<bool> {
        match self.inner.superuser_login.load(Ordering::Relaxed) {
            0 => None,
            known => Some(known == 2),
        }
    }

    /// Refuses new leases, fails the waiting ones, and resolves once every connection is closed
    /// (running statements finish first).
    pub async fn close(&self) {
        let drained = {
            let mut state = self.inner.lock();
            state.closed = true;
            for waiter in state.waiters.drain(..) {
                let _ = waiter.reply.send(Err(AcquireError::Closed));
            }
            state.slots.retain(|s| s.in_flight > 0 || s.exclusive);
            if state.slots.is_empty() {
                None
            } else {
                let (tx, rx) = oneshot::channel();
                state.close_waiters.push(tx);
                Some(rx)
            }
        };
        if let Some(drained) = drained {
            let _ = drained.await;
        }
        // Each connection's task sends Terminate and ends once its client is gone; waiting for
        // them means the server has seen every session end when close() resolves.
        let tasks = std::mem::take(&mut self.inner.lock().tasks);
        let _ = tokio::time::timeout(
            self.inner.options.connect_timeout,
            futures::future::join_all(tasks),
        )
        .await;
    }
}

impl<M: Manager> Inner<M> {
    fn lock(&self) -> MutexGuard<'_, State<M>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn occupancy(&self, state: &State<M>) -> Occupancy {
        let now = Instant::now();
        let busy = || state.slots.iter().filter(|s| !s.is_idle());
        Occupancy {
            open: state.slots.len(),
            max: self.options.max_connections,
            pipelined: busy().filter(|s| !s.exclusive).count(),
            statements: busy().map(|s| s.in_flight).sum(),
            transactions: busy().filter(|s| s.exclusive).count(),
            waiting: state.waiters.len(),
            oldest_held: busy().map(|s| now.duration_since(s.busy_since)).max(),
        }
    }

    /// When a connection opened now should retire: its lifetime plus up to half again, drawn
    /// for each, so that connections opened together do not all reconnect together.
    fn retire_at(&self, opened: Instant) -> Option<Instant> {
        self.options
            .max_lifetime
            .map(|lifetime| opened + lifetime.mul_f64(1.0 + fastrand::f64() * 0.5))
    }

    /// On first use: open `minConnections`, and start the reaper of idle connections.
    fn start(self: &Arc<Self>, state: &mut State<M>) {
        if state.started {
            return;
        }
        state.started = true;
        for _ in 0..self.options.min_connections {
            self.open(state);
        }
        let weak = Arc::downgrade(self);
        let reaping = self
            .options
            .idle_timeout
            .map_or(Duration::from_secs(1), |t| t / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let period = self.options.watch_every.map_or(reaping, |w| w.min(reaping));
        tokio::spawn(reap(weak, period));
    }

    fn stall_after(&self) -> Duration {
        let typical = Duration::from_micros(self.typical_us.load(Ordering::Relaxed));
        (typical * 16).clamp(MIN_STALL, MAX_STALL)
    }

    fn lease(
        self: &Arc<Self>,
        slot: &mut Slot<M::Conn>,
        kind: LeaseKind,
        now: Instant,
    ) -> Lease<M> {
        match kind {
            LeaseKind::Shared => {
                if slot.in_flight == 0 {
                    slot.busy_since = now;
                }
                slot.in_flight += 1;
            }
            LeaseKind::Exclusive => {
                slot.exclusive = true;
                slot.draining = false;
                slot.busy_since = now;
            }
        }
        Lease {
            pool: self.clone(),
            conn: slot.conn.clone(),
            kind,
            started: now,
            armed: true,
            timed: true,
        }
    }

    /// A lease if one can be had right now.
    fn try_lease(self: &Arc<Self>, state: &mut State<M>, kind: LeaseKind) -> Option<Lease<M>> {
        let now = Instant::now();
        state
            .slots
            .retain(|s| !((s.conn.is_closed() || s.is_retired(now)) && s.is_idle()));
        let usable = |s: &Slot<M::Conn>| s.is_usable(now);
        // An idle connection: the most recently used one.
        let idle = state
            .slots
            .iter_mut()
            .filter(|s| {
                usable(s) && s.in_flight == 0 && (kind == LeaseKind::Exclusive || !s.draining)
            })
            .max_by_key(|s| s.idle_since);
        if let Some(slot) = idle {
            return Some(self.lease(slot, kind, now));
        }
        if kind == LeaseKind::Exclusive {
            return None;
        }
        let depth = self.options.pipeline_depth;
        let stall_after = self.stall_after();
        let typical_us = self.typical_us.load(Ordering::Relaxed).max(1) as f64;
        let busy = state
            .slots
            .iter_mut()
            .filter(|s| usable(s) && !s.draining && s.in_flight < depth)
            .filter_map(|s| {
                let quiet_for = match s.last_progress {
                    Some(at) => now.duration_since(at),
                    None if now.duration_since(s.busy_since) < YOUNG => Duration::ZERO,
                    None => return None,
                };
                (quiet_for < stall_after).then_some((s, quiet_for))
            })
            .min_by(|(a, a_quiet), (b, b_quiet)| {
                let load = |s: &Slot<M::Conn>, quiet: &Duration| {
                    s.in_flight as f64 + quiet.as_micros() as f64 / typical_us
                };
                load(a, a_quiet).total_cmp(&load(b, b_quiet))
            })
            .map(|(s, _)| s);
        let lease = busy.map(|slot| self.lease(slot, kind, now))?;
        // Busy everywhere: grow toward maxConnections so that the next statements find room.
        if state.opening == 0 {
            self.open(state);
        }
        Some(lease)
    }

    /// Starts opening a connection if the pool has room for one.
    fn open(self: &Arc<Self>, state: &mut State<M>) {
        if state.closed || state.slots.len() + state.opening >= self.options.max_connections {
            return;
        }
        state.opening += 1;
        let inner = self.clone();
        tokio::spawn(async move {
            let began = Instant::now();
            let opened =
                tokio::time::timeout(inner.options.connect_timeout, inner.manager.open()).await;
            let mut state = inner.lock();
            state.opening -= 1;
            match opened {
                Ok(Ok(opened)) => {
                    inner.timings.record(Timing::Create, began.elapsed());
                    inner.adopt(&mut state, opened)
                }
                Ok(Err(err)) => {
                    state.last_connect_error = Some(err.message);
                    // With no connection at all, nobody in line can be served: each gets the
                    // reason now, and its own retry policy decides (a wrong password is final,
                    // a refused connection is retried after a backoff).
                    if state.slots.is_empty() {
                        for waiter in state.waiters.drain(..) {
                            let failure = err.failure.clone();
                            let _ = waiter.reply.send(Err(AcquireError::Connect(failure)));
                        }
                    }
                    return;
                }
                Err(_) => {
                    state.last_connect_error = Some(format!(
                        "no answer within {} ms",
                        inner.options.connect_timeout.as_millis()
                    ));
                }
            }
            inner.dispatch(&mut state);
        });
    }

    /// A connection just opened joins the pool (unless the pool closed meanwhile).
    fn adopt(&self, state: &mut State<M>, opened: M::Opened) {
        let id = state.next_id;
        state.next_id += 1;
        let Adopted {
            conn,
            task,
            superuser,
        } = self.manager.adopt(id, opened);
        if let Some(superuser) = superuser {
            let known = if superuser { 2 } else { 1 };
            self.superuser_login.store(known, Ordering::Relaxed);
        }
        state.tasks.retain(|t| !t.is_finished());
        state.tasks.extend(task);
        if state.closed {
            return;
        }
        let now = Instant::now();
        state.slots.push(Slot {
            conn: Arc::new(conn),
            in_flight: 0,
            exclusive: false,
            draining: false,
            last_progress: None,
            busy_since: now,
            idle_since: now,
            retire_at: self.retire_at(now),
        });
        state.last_connect_error = None;
    }

    /// Serves waiting callers in order while leases can be had.
    fn dispatch(self: &Arc<Self>, state: &mut State<M>) {
        loop {
            while state.waiters.front().is_some_and(|w| w.reply.is_closed()) {
                state.waiters.pop_front();
            }
            let head = state.waiters.front().map(|w| w.kind);
            if head != Some(LeaseKind::Exclusive) {
                // No transaction is first in line (any more): no connection needs to drain.
                state.slots.iter_mut().for_each(|s| s.draining = false);
            }
            let Some(kind) = head else {
                return;
            };
            let Some(lease) = self.try_lease(state, kind) else {
                if kind == LeaseKind::Exclusive {
                    self.reserve_for_exclusive(state);
                }
                // One connection opening per caller in line, up to maxConnections.
                let waiting = state
                    .waiters
                    .iter()
                    .filter(|w| !w.reply.is_closed())
                    .count();
                while state.opening < waiting {
                    let before = state.opening;
                    self.open(state);
                    if state.opening == before {
                        break;
                    }
                }
                return;
            };
            let waiter = state.waiters.pop_front().expect("front exists");
            if let Err(Ok(lease)) = waiter.reply.send(Ok(lease)) {
                // The caller went away in the meantime: give the place back without re-locking.
                self.hand_over(state, lease);
            }
        }
    }

    /// Stops one connection from taking new statements so that it drains for a transaction.
    fn reserve_for_exclusive(&self, state: &mut State<M>) {
        if state.slots.iter().any(|s| s.draining) {
            return;
        }
        let now = Instant::now();
        if let Some(slot) = state
            .slots
            .iter_mut()
            .filter(|s| s.is_usable(now))
            .min_by_key(|s| s.in_flight)
        {
            slot.draining = true;
        }
    }

    fn hand_over(&self, state: &mut State<M>, mut lease: Lease<M>) {
        lease.armed = false;
        Self::give_back(state, lease.conn.id(), lease.kind);
    }

    fn give_back(state: &mut State<M>, conn_id: u64, kind: LeaseKind) {
        let Some(index) = state.slots.iter().position(|s| s.conn.id() == conn_id) else {
            return;
        };
        let now = Instant::now();
        let slot = &mut state.slots[index];
        match kind {
            LeaseKind::Shared => slot.in_flight -= 1,
            LeaseKind::Exclusive => slot.exclusive = false,
        }
        slot.last_progress = Some(now);
        if slot.is_idle() {
            slot.last_progress = None;
            slot.idle_since = now;
            // A retired connection leaves as soon as its work is done: never mid-transaction,
            // never with a pipelined statement unanswered.
            if slot.conn.is_closed() || slot.is_retired(now) || state.closed {
                state.slots.swap_remove(index);
            }
        }
    }

    fn release(self: &Arc<Self>, conn_id: u64, kind: LeaseKind, elapsed: Option<Duration>) {
        if let (LeaseKind::Shared, Some(elapsed)) = (kind, elapsed) {
            // EWMA with weight 1/16: follows a change of load within a few dozen statements.
            let sample = elapsed.as_micros().min(u64::MAX as u128) as u64;
            let old = self.typical_us.load(Ordering::Relaxed);
            self.typical_us
                .store(old - old / 16 + sample / 16, Ordering::Relaxed);
        }
        let mut state = self.lock();
        Self::give_back(&mut state, conn_id, kind);
        if state.closed {
            if state.slots.is_empty() {
                for done in state.close_waiters.drain(..) {
                    let _ = done.send(());
                }
            }
            return;
        }
        self.dispatch(&mut state);
    }

    /// Closes connections idle longer than `idleTimeout` above `minConnections`, drops dead
    /// ones, and tops the pool back up to `minConnections`.
    fn reap_once(self: &Arc<Self>) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        let now = Instant::now();
        state
            .slots
            .retain(|s| !((s.conn.is_closed() || s.is_retired(now)) && s.is_idle()));
        if self.options.watch_every.is_some() {
            for slot in state
                .slots
                .iter()
                .filter(|s| s.in_flight > 0 || s.exclusive)
            {
                slot.conn.watch(now);
            }
        }
        if let Some(idle_timeout) = self.options.idle_timeout {
            let min = self.options.min_connections;
            let mut surplus = state.slots.len().saturating_sub(min);
            state.slots.retain(|s| {
                let expired = s.in_flight == 0
                    && !s.exclusive
                    && !s.draining
                    && now.duration_since(s.idle_since) >= idle_timeout;
                if expired && surplus > 0 {
                    surplus -= 1;
                    false
                } else {
                    true
                }
            });
        }
        while state.slots.len() + state.opening < self.options.min_connections {
            let before = state.opening;
            self.open(&mut state);
            if state.opening == before {
                break;
            }
        }
        true
    }
}

async fn reap<M: Manager>(pool: Weak<Inner<M>>, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = pool.upgrade() else {
            return;
        };
        if !inner.reap_once() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The pool's rules against stand-in connections: no server, no sockets.
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    struct FakeConn {
        id: u64,
        closed: AtomicBool,
    }

    impl Pooled for FakeConn {
        fn id(&self) -> u64 {
            self.id
        }
        fn is_closed(&self) -> bool {
            self.closed.load(Ordering::SeqCst)
        }
    }

    /// Opens stand-ins, counting them; with `refuse`, every open fails as a refused connection.
    #[derive(Default)]
    struct Fake {
        opened: Arc<AtomicUsize>,
        refuse: bool,
    }

    impl Manager for Fake {
        type Conn = FakeConn;
        type Opened = ();

        async fn open(&self) -> Result<(), OpenError> {
            if self.refuse {
                return Err(OpenError {
                    failure: Failure::Retry(crate::error::PoolError::ConnectionFailed(
                        "refused".into(),
                    )),
                    message: "connection refused".into(),
                });
            }
            self.opened.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        fn adopt(&self, id: u64, _opened: ()) -> Adopted<FakeConn> {
            Adopted {
                conn: FakeConn {
                    id,
                    closed: AtomicBool::new(false),
                },
                task: None,
                superuser: Some(false),
            }
        }
    }

    fn options(max: usize, min: usize) -> PoolOptions {
        PoolOptions {
            max_connections: max,
            min_connections: min,
            pipeline_depth: 4,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: None,
            watch_every: None,
            max_lifetime: None,
        }
    }

    /// Options whose connections retire after `lifetime` (to 1.5 × lifetime).
    fn retiring(max: usize, lifetime: Duration) -> PoolOptions {
        PoolOptions {
            max_lifetime: Some(lifetime),
            ..options(max, 0)
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn exclusive_leases_take_a_connection_each_up_to_the_maximum() {
        let manager = Fake::default();
        let opened = manager.opened.clone();
        let pool = Pool::with_manager(options(2, 0), manager);
        let a = pool
            .acquire(LeaseKind::Exclusive, soon())
            .await
            .ok()
            .unwrap();
        let b = pool
            .acquire(LeaseKind::Exclusive, soon())
            .await
            .ok()
            .unwrap();
        assert_ne!(a.conn().id, b.conn().id);
        assert_eq!(opened.load(Ordering::SeqCst), 2);
        assert_eq!(pool.gauges().total, 2);
        assert_eq!(pool.gauges().idle, 0);
        assert_eq!(pool.superuser_login(), Some(false));
        // A third waits its turn and times out: the pool is full, not unreachable.
        let third = pool
            .acquire(
                LeaseKind::Exclusive,
                Instant::now() + Duration::from_millis(20),
            )
            .await;
        assert!(matches!(
            third,
            Err(AcquireError::TimedOut {
                pool_full: true,
                ..
            })
        ));
        assert_eq!(
            opened.load(Ordering::SeqCst),
            2,
            "never more than the maximum"
        );
    }

    #[tokio::test]
    async fn a_returned_lease_goes_to_the_first_in_line() {
        let pool = Arc::new(Pool::with_manager(options(1, 0), Fake::default()));
        let held = pool
            .acquire(LeaseKind::Exclusive, soon())
            .await
            .ok()
            .unwrap();
        let first = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire(LeaseKind::Exclusive, soon()).await.ok() }
        });
        // The first waiter is in line before the second asks.
        while pool.gauges().waiting == 0 {
            tokio::task::yield_now().await;
        }
        let second = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.acquire(
                    LeaseKind::Exclusive,
                    Instant::now() + Duration::from_millis(50),
                )
                .await
                .is_ok()
            }
        });
        while pool.gauges().waiting < 2 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let served = first.await.unwrap();
        assert!(served.is_some(), "the first in line is served");
        assert!(
            !second.await.unwrap(),
            "the second waits behind it, and times out"
        );
        drop(served);
    }

    #[tokio::test]
    async fn a_timed_out_caller_is_told_how_the_connections_are_held() {
        let pool = Arc::new(Pool::with_manager(options(2, 0), Fake::default()));
        let _tx = pool.acquire(LeaseKind::Exclusive, soon()).await.ok();
        let _statements = [
            pool.acquire(LeaseKind::Shared, soon()).await.ok(),
            pool.acquire(LeaseKind::Shared, soon()).await.ok(),
        ];
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire(LeaseKind::Exclusive, soon()).await.is_ok() }
        });
        while pool.gauges().waiting == 0 {
            tokio::task::yield_now().await;
        }
        let late = Instant::now() + Duration::from_millis(20);
        let Err(AcquireError::TimedOut { occupancy, .. }) =
            pool.acquire(LeaseKind::Exclusive, late).await
        else {
            panic!("expected a timeout");
        };
        assert_eq!(
            (
                occupancy.open,
                occupancy.max,
                occupancy.pipelined,
                occupancy.statements
            ),
            (2, 2, 1, 2)
        );
        assert_eq!((occupancy.transactions, occupancy.waiting), (1, 2));
        assert!(occupancy.oldest_held.unwrap() >= Duration::from_millis(20));
        let message = occupancy.to_string();
        assert!(message.starts_with("2 of 2 connections open, 1 running 2 pipelined statements, 1 held by transactions; 2 callers waiting; the oldest holder has had its connection for "), "{message}");
        waiting.abort();
    }

    #[tokio::test]
    async fn a_retired_connection_takes_no_new_work_and_is_replaced() {
        let manager = Fake::default();
        let opened = manager.opened.clone();
        let pool = Pool::with_manager(retiring(2, Duration::from_millis(5)), manager);
        let first = pool.acquire(LeaseKind::Shared, soon()).await.ok().unwrap();
        let first_id = first.conn().id;
        drop(first);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let next = pool.acquire(LeaseKind::Shared, soon()).await.ok().unwrap();
        assert_ne!(next.conn().id, first_id);
        assert_eq!(opened.load(Ordering::SeqCst), 2);
        assert_eq!(pool.gauges().total, 1, "the retired one is gone");
    }

    #[tokio::test]
    async fn a_transaction_keeps_its_connection_past_the_lifetime() {
        let pool = Pool::with_manager(retiring(2, Duration::from_millis(5)), Fake::default());
        let tx = pool
            .acquire(LeaseKind::Exclusive, soon())
            .await
            .ok()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(pool.inner.reap_once());
        assert_eq!(
            pool.gauges().total,
            1,
            "held: not closed under the transaction"
        );
        assert!(!tx.conn().is_closed());
        drop(tx);
        assert_eq!(pool.gauges().total, 0, "closed once given back");
    }

    #[tokio::test]
    async fn timings_are_kept_only_once_enabled() {
        let pool = Pool::with_manager(options(1, 0), Fake::default());
        drop(pool.acquire(LeaseKind::Shared, soon()).await.ok());
        assert_eq!(pool.timings().take().wait.len(), 0);
        pool.timings().set_enabled(true);
        drop(pool.acquire(LeaseKind::Shared, soon()).await.ok());
        drop(pool.try_acquire_now(LeaseKind::Shared));
        let taken = pool.timings().take();
        assert_eq!(
            (taken.wait.len(), taken.immediate, taken.used.len()),
            (1, 1, 2)
        );
    }

    #[tokio::test]
    async fn a_closed_connection_is_never_lent_and_is_replaced() {
        let manager = Fake::default();
        let opened = manager.opened.clone();
        let pool = Pool::with_manager(options(1, 0), manager);
        let lease = pool.acquire(LeaseKind::Shared, soon()).await.ok().unwrap();
        let first_id = lease.conn().id;
        lease.conn().closed.store(true, Ordering::SeqCst);
        drop(lease);
        let next = pool.acquire(LeaseKind::Shared, soon()).await.ok().unwrap();
        assert_ne!(next.conn().id, first_id);
        assert_eq!(opened.load(Ordering::SeqCst), 2);
        assert_eq!(pool.gauges().total, 1, "the closed one is gone");
    }

    #[tokio::test]
    async fn shared_leases_share_a_connection_and_free_it_when_dropped() {
        let pool = Pool::with_manager(options(1, 0), Fake::default());
        let a = pool.acquire(LeaseKind::Shared, soon()).await.ok().unwrap();
        let b = pool.acquire(LeaseKind::Shared, soon()).await.ok().unwrap();
        assert_eq!(a.conn().id, b.conn().id, "pipelined on the one connection");
        assert_eq!(pool.gauges().idle, 0);
        drop((a, b));
        assert_eq!(pool.gauges().idle, 1);
    }

    #[tokio::test]
    async fn when_no_connection_can_be_opened_the_waiters_hear_why() {
        let pool = Pool::with_manager(
            options(2, 0),
            Fake {
                refuse: true,
                ..Fake::default()
            },
        );
        match pool.acquire(LeaseKind::Shared, soon()).await {
            Err(AcquireError::Connect(Failure::Retry(err))) => {
                assert_eq!(err.code(), "CONNECTION_FAILED")
            }
            _ => panic!("expected the open's failure"),
        }
        let timed_out = pool
            .acquire(LeaseKind::Shared, Instant::now() + Duration::from_millis(1))
            .await;
        if let Err(AcquireError::TimedOut {
            last_connect_error, ..
        }) = timed_out
        {
            assert_eq!(last_connect_error.as_deref(), Some("connection refused"));
        }
    }

    #[tokio::test]
    async fn min_connections_open_on_first_use_and_close_waits_for_leases() {
        let manager = Fake::default();
        let opened = manager.opened.clone();
        let pool = Arc::new(Pool::with_manager(options(4, 3), manager));
        let lease = pool
            .acquire(LeaseKind::Exclusive, soon())
            .await
            .ok()
            .unwrap();
        while pool.gauges().total < 3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(opened.load(Ordering::SeqCst), 3);
        let closing = tokio::spawn({
            let pool = pool.clone();
            async move { pool.close().await }
        });
        while !pool.is_closed() {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            pool.acquire(LeaseKind::Shared, soon()).await,
            Err(AcquireError::Closed)
        ));
        assert!(!closing.is_finished(), "close waits for the lease");
        drop(lease);
        closing.await.unwrap();
        assert_eq!(pool.gauges().total, 0);
    }
}

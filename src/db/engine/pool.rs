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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::db::engine::connect::{ConnectOptions, Opened};
use crate::db::engine::connection::Conn;
use crate::db::engine::retry::{classify, Failure, Stage};

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
}

/// What a caller waiting for a connection is told when it gives up.
pub enum AcquireError {
    Closed,
    /// The deadline passed; `pool_full` tells busy (POOL_TIMEOUT) from unreachable.
    TimedOut {
        pool_full: bool,
        last_connect_error: Option<String>,
    },
    /// Opening a connection failed while nothing else could serve this caller.
    Connect(Failure),
}

pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    options: PoolOptions,
    connect: ConnectOptions,
    state: Mutex<State>,
    /// Exponentially weighted statement time in µs: the unit of a pipeline's stall penalty.
    typical_us: AtomicU64,
    /// What the server said of the login role: 0 not known yet, 1 not a superuser, 2 superuser.
    superuser_login: std::sync::atomic::AtomicU8,
}

struct Slot {
    conn: Arc<Conn>,
    in_flight: usize,
    exclusive: bool,
    /// Reserved for the exclusive waiter at the head of the line: takes no new statements.
    draining: bool,
    /// When a statement on this connection last completed, within the current busy spell; None
    /// while it is idle or has completed nothing since it got busy. Only a pipeline that is
    /// seen to move takes more statements: one whose first statement has not come back yet may
    /// be the slow one.
    last_progress: Option<Instant>,
    /// When the current busy spell began (a statement leased on an idle connection).
    busy_since: Instant,
    idle_since: Instant,
}

struct Waiter {
    kind: LeaseKind,
    reply: oneshot::Sender<Result<Lease, AcquireError>>,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    opening: usize,
    waiters: VecDeque<Waiter>,
    closed: bool,
    started: bool,
    next_id: u64,
    last_connect_error: Option<String>,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// The tasks driving each connection's socket; `close()` waits for them to end.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A place on a connection: a pipeline slot (shared) or the whole connection (exclusive).
pub struct Lease {
    pool: Arc<Inner>,
    conn: Arc<Conn>,
    kind: LeaseKind,
    started: Instant,
    /// False once released by hand under the pool's lock (see `Inner::hand_over`).
    armed: bool,
}

impl Lease {
    pub fn conn(&self) -> &Conn {
        &self.conn
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.armed {
            let elapsed = self.started.elapsed();
            self.pool.release(self.conn.id, self.kind, elapsed);
        }
    }
}

/// Live gauges of the connections, for stats.
pub struct Gauges {
    pub total: u32,
    pub idle: u32,
    pub waiting: u64,
}

impl Pool {
    pub fn new(options: PoolOptions, connect: ConnectOptions) -> Self {
        Pool {
            inner: Arc::new(Inner {
                options,
                connect,
                state: Mutex::new(State {
                    next_id: 1,
                    ..State::default()
                }),
                typical_us: AtomicU64::new(200),
                superuser_login: std::sync::atomic::AtomicU8::new(0),
            }),
        }
    }

    /// A lease of `kind`, waiting until `deadline` at most. Must be called inside the runtime.
    pub async fn acquire(&self, kind: LeaseKind, deadline: Instant) -> Result<Lease, AcquireError> {
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
                })
            }
        }
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

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// On first use: open `minConnections`, and start the reaper of idle connections.
    fn start(self: &Arc<Self>, state: &mut State) {
        if state.started {
            return;
        }
        state.started = true;
        for _ in 0..self.options.min_connections {
            self.open(state);
        }
        let weak = Arc::downgrade(self);
        let period = self
            .options
            .idle_timeout
            .map_or(Duration::from_secs(1), |t| t / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        tokio::spawn(reap(weak, period));
    }

    fn stall_after(&self) -> Duration {
        let typical = Duration::from_micros(self.typical_us.load(Ordering::Relaxed));
        (typical * 16).clamp(MIN_STALL, MAX_STALL)
    }

    fn lease(self: &Arc<Self>, slot: &mut Slot, kind: LeaseKind, now: Instant) -> Lease {
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
            }
        }
        Lease {
            pool: self.clone(),
            conn: slot.conn.clone(),
            kind,
            started: now,
            armed: true,
        }
    }

    /// A lease if one can be had right now.
    fn try_lease(self: &Arc<Self>, state: &mut State, kind: LeaseKind) -> Option<Lease> {
        state
            .slots
            .retain(|s| !(s.conn.is_closed() && s.in_flight == 0 && !s.exclusive));
        let now = Instant::now();
        let usable = |s: &Slot| !s.exclusive && !s.conn.is_closed();
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
                let load = |s: &Slot, quiet: &Duration| {
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
    fn open(self: &Arc<Self>, state: &mut State) {
        if state.closed || state.slots.len() + state.opening >= self.options.max_connections {
            return;
        }
        state.opening += 1;
        let inner = self.clone();
        tokio::spawn(async move {
            let opened =
                tokio::time::timeout(inner.options.connect_timeout, inner.connect.connect()).await;
            let mut state = inner.lock();
            state.opening -= 1;
            match opened {
                Ok(Ok(Opened {
                    client,
                    task,
                    end,
                    superuser,
                })) => {
                    if let Some(superuser) = superuser {
                        let known = if superuser { 2 } else { 1 };
                        inner.superuser_login.store(known, Ordering::Relaxed);
                    }
                    state.tasks.retain(|t| !t.is_finished());
                    let abort = task.abort_handle();
                    state.tasks.push(task);
                    if state.closed {
                        return;
                    }
                    let id = state.next_id;
                    state.next_id += 1;
                    let now = Instant::now();
                    state.slots.push(Slot {
                        conn: Arc::new(Conn::new(id, client, Some(abort), end)),
                        in_flight: 0,
                        exclusive: false,
                        draining: false,
                        last_progress: None,
                        busy_since: now,
                        idle_since: now,
                    });
                    state.last_connect_error = None;
                }
                Ok(Err(err)) => {
                    state.last_connect_error = Some(err.to_string());
                    // With no connection at all, nobody in line can be served: each gets the
                    // reason now, and its own retry policy decides (a wrong password is final,
                    // a refused connection is retried after a backoff).
                    if state.slots.is_empty() {
                        for waiter in state.waiters.drain(..) {
                            let failure = classify(&err, Stage::BeforeSend);
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

    /// Serves waiting callers in order while leases can be had.
    fn dispatch(self: &Arc<Self>, state: &mut State) {
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
    fn reserve_for_exclusive(&self, state: &mut State) {
        if state.slots.iter().any(|s| s.draining) {
            return;
        }
        if let Some(slot) = state
            .slots
            .iter_mut()
            .filter(|s| !s.exclusive && !s.conn.is_closed())
            .min_by_key(|s| s.in_flight)
        {
            slot.draining = true;
        }
    }

    fn hand_over(&self, state: &mut State, mut lease: Lease) {
        lease.armed = false;
        Self::give_back(state, lease.conn.id, lease.kind);
    }

    fn give_back(state: &mut State, conn_id: u64, kind: LeaseKind) {
        let Some(index) = state.slots.iter().position(|s| s.conn.id == conn_id) else {
            return;
        };
        let now = Instant::now();
        let slot = &mut state.slots[index];
        match kind {
            LeaseKind::Shared => slot.in_flight -= 1,
            LeaseKind::Exclusive => slot.exclusive = false,
        }
        slot.last_progress = Some(now);
        if slot.in_flight == 0 && !slot.exclusive {
            slot.last_progress = None;
            slot.idle_since = now;
            if slot.conn.is_closed() || state.closed {
                state.slots.swap_remove(index);
            }
        }
    }

    fn release(self: &Arc<Self>, conn_id: u64, kind: LeaseKind, elapsed: Duration) {
        if kind == LeaseKind::Shared {
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
            .retain(|s| !(s.conn.is_closed() && s.in_flight == 0 && !s.exclusive));
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

async fn reap(pool: Weak<Inner>, period: Duration) {
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

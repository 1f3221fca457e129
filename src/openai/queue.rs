//! The request queue: who may send next. At most `maxConcurrentRequests` in flight; within
//! `requestsPerMinute` and `tokensPerMinute` (a sliding window); not while a rate-limit pause
//! announced by the API runs; by priority, first come first served within one, with aging so
//! that a waiting request is never starved.
//!
//! A waiter is a small ticket in a list (not a task polling anything): a release, a new ticket,
//! or the moment a window or pause ends runs `dispatch`, which hands places to the tickets that
//! may go. A `Slot` is the place: dropping it (success, error, timeout, abandoned stream, a JS
//! callback that threw) frees it, so no path can leak one; a ticket whose caller gave up before
//! its grant was read gives the grant back the same way.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

#[derive(Debug, PartialEq, Eq)]
pub enum QueueError {
    /// `maxQueueSize` callers are already waiting.
    Full,
    /// The deadline passed while waiting; how the queue stood at that moment.
    TimedOut(String),
    /// `close()` was called.
    Closed,
}

/// A request's priority; `High` goes first, FIFO within each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    High = 0,
    #[default]
    Normal = 1,
    Low = 2,
}

impl Priority {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "high" => Some(Priority::High),
            "normal" => Some(Priority::Normal),
            "low" => Some(Priority::Low),
            _ => None,
        }
    }
}

/// The queue's limits; see `OpenAiConfig` for the options they come from.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_concurrent: usize,
    pub max_queue: Option<usize>,
    pub requests_per_window: Option<u64>,
    pub tokens_per_window: Option<u64>,
    /// The budgets' window: a minute, shorter in specs.
    pub window: Duration,
    /// Every `aging` a waiting request waits, it ranks one priority higher.
    pub aging: Duration,
}

/// What a caller asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask {
    pub priority: Priority,
    /// Estimated tokens, counted against `tokensPerMinute`.
    pub tokens: u64,
}

struct Ticket {
    id: u64,
    enqueued: Instant,
    tokens: u64,
    grant: Grant,
}

/// What happens when a ticket's turn comes (or never will).
enum Grant {
    /// A task waits for the slot on the other end (`Pending::wait`).
    Wait(oneshot::Sender<Slot>),
    /// Nothing waits: `run` is called with the slot, or with why there is none (its deadline
    /// passed, the queue closed). A request queued this way is only its ticket, not a task.
    Call { deadline: Instant, run: OnGrant },
}

/// Called with a queued call's slot, or with why there is none.
pub type OnGrant = Box<dyn FnOnce(Result<Slot, QueueError>) + Send>;

struct Sent {
    at: Instant,
    id: u64,
    tokens: u64,
}

/// Where a probe after a capped pause stands.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    #[default]
    None,
    /// When the pause ends, one ticket goes.
    Due,
    /// That ticket is out; nothing else goes until it is answered or its slot is dropped.
    Out(u64),
}

#[derive(Default)]
struct State {
    waiting: [VecDeque<Ticket>; 3],
    in_flight: usize,
    closed: bool,
    /// `retire`: no new tickets, but the queued ones still get their turn.
    retiring: bool,
    /// Requests sent within the window, oldest first (only kept when a budget is set).
    sent: VecDeque<Sent>,
    paused_until: Option<Instant>,
    /// After a pause cut to its cap: one request goes first, and the rest wait for its answer.
    probe: Probe,
    /// When `dispatch` next has something to do that only time brings (a window or pause end).
    wake_at: Option<Instant>,
    /// The moment the timer task sleeps until (None: until it is told): it is woken only for an
    /// earlier one. A later one it finds when it wakes, so a busy queue does not wake it per call.
    timer_until: Option<Instant>,
    timer_running: bool,
    next_id: u64,
    /// The earliest deadline of a queued call at the front of its priority.
    call_deadline: Option<Instant>,
    /// Calls granted (or failed) under the lock, run once it is released: they may spawn
    /// tasks or drop slots, which must not happen while the lock is held.
    ready: Vec<(OnGrant, Result<Slot, QueueError>)>,
}

impl State {
    fn queued(&self) -> usize {
        self.waiting.iter().map(VecDeque::len).sum()
    }

    /// What `QUEUE_TIMEOUT` says: the requests in flight, the callers in line (the one giving
    /// up included), and a pause or spent budget that held them.
    fn occupancy(&self, limits: &Limits, now: Instant) -> String {
        let mut text = format!(
            "{} of {} requests in flight (maxConcurrent); {} callers waiting",
            self.in_flight,
            limits.max_concurrent,
            self.queued()
        );
        if let Some(until) = self.paused_until.filter(|until| *until > now) {
            text += &format!(
                "; paused for another {} ms after a rate limit",
                (until - now).as_millis()
            );
        }
        if limits
            .requests_per_window
            .is_some_and(|budget| self.sent.len() as u64 >= budget)
        {
            text += "; the requests-per-minute budget is spent";
        }
        text
    }
}

struct Shared {
    limits: Limits,
    state: Mutex<State>,
    /// Wakes the timer task (an earlier `wake_at`, or closing).
    changed: Notify,
    /// Wakes `close()`/`retire()` waiting for the last request (a release while closing).
    released: Notify,
}

#[derive(Clone)]
pub struct SlotQueue(Arc<Shared>);

/// One place in flight; freed when dropped.
pub struct Slot {
    shared: Arc<Shared>,
    id: u64,
    armed: bool,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("id", &self.id).finish()
    }
}

impl Slot {
    /// The request's real token count (the response's `usage`) replaces its estimate.
    pub fn set_tokens(&self, tokens: u64) {
        self.update_tokens(|_| tokens);
    }

    /// Adds a request's usage to this slot's count (a slot held for several requests).
    pub fn add_tokens(&self, tokens: u64) {
        self.update_tokens(|old| old + tokens);
    }

    fn update_tokens(&self, change: impl FnOnce(u64) -> u64) {
        let mut state = lock(&self.shared);
        if let Some(sent) = state.sent.iter_mut().find(|s| s.id == self.id) {
            sent.tokens = change(sent.tokens);
        }
        dispatch(&self.shared, &mut state);
        unlock(state);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            let mut state = lock(&self.shared);
            state.in_flight -= 1;
            // A probe that ended without an answer (a transport error) ends the probe too.
            if state.probe == Probe::Out(self.id) {
                state.probe = Probe::None;
            }
            dispatch(&self.shared, &mut state);
            let closing = state.closed || state.retiring;
            unlock(state);
            if closing {
                self.shared.released.notify_waiters();
            }
        }
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Releases the lock, then runs the calls `dispatch` made ready.
fn unlock(mut state: MutexGuard<'_, State>) {
    let ready = std::mem::take(&mut state.ready);
    drop(state);
    for (run, outcome) in ready {
        run(outcome);
    }
}

/// A ticket in the queue, taken synchronously (so that FIFO follows the order of the calls,
/// not the order in which their tasks first run); `wait` turns it into a `Slot`. Dropped unused,
/// it leaves the queue.
pub struct Pending {
    shared: Arc<Shared>,
    id: u64,
    priority: Priority,
    reply: Option<oneshot::Receiver<Slot>>,
}

impl Pending {
    /// Waits for the place until `deadline`.
    pub async fn wait(mut self, deadline: Instant) -> Result<Slot, QueueError> {
        SlotQueue(self.shared.clone()).ensure_timer();
        let Some(reply) = self.reply.take() else {
            return Err(QueueError::Closed);
        };
        let outcome = tokio::time::timeout_at(deadline.into(), reply).await;
        match outcome {
            Ok(Ok(slot)) => Ok(slot),
            // The sender went away: close() failed every ticket.
            Ok(Err(_)) => Err(QueueError::Closed),
            Err(_) => {
                let state = lock(&self.shared);
                Err(QueueError::TimedOut(
                    state.occupancy(&self.shared.limits, Instant::now()),
                ))
            }
        }
        // `self` drops here: a ticket still queued (timed out) leaves the queue.
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        let queue = &mut state.waiting[self.priority as usize];
        if let Some(at) = queue.iter().position(|t| t.id == self.id) {
            queue.remove(at);
        }
    }
}

impl SlotQueue {
    pub fn new(limits: Limits) -> Self {
        let shared = Arc::new(Shared {
            limits,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            released: Notify::new(),
        });
        SlotQueue(shared)
    }

    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// Waits for a place until `deadline`.
    pub async fn acquire(&self, ask: Ask, deadline: Instant) -> Result<Slot, QueueError> {
        self.enqueue(ask)?.wait(deadline).await
    }

    /// Takes a ticket now (any thread); the place may already be granted when this returns.
    pub fn enqueue(&self, ask: Ask) -> Result<Pending, QueueError> {
        let (tx, rx) = oneshot::channel();
        let id = self.push(ask, Grant::Wait(tx)).map_err(|(err, _)| err)?;
        Ok(Pending {
            shared: self.0.clone(),
            id,
            priority: ask.priority,
            reply: Some(rx),
        })
    }

    /// Queues a call that is only its ticket until its turn: `run` gets the slot then (from
    /// whichever thread frees a place), or the reason there is none (`TimedOut` at `deadline`,
    /// `Closed`). Refused at once, `run` handed back, when the queue is full or closed.
    pub fn enqueue_call(
        &self,
        ask: Ask,
        deadline: Instant,
        run: OnGrant,
    ) -> Result<u64, (QueueError, OnGrant)> {
        match self.push(ask, Grant::Call { deadline, run }) {
            Ok(id) => Ok(id),
            Err((err, Grant::Call { run, .. })) => Err((err, run)),
            Err((err, Grant::Wait(_))) => unreachable!("a call comes back as a call: {err:?}"),
        }
    }

    fn push(&self, ask: Ask, grant: Grant) -> Result<u64, (QueueError, Grant)> {
        let shared = &self.0;
        let mut state = lock(shared);
        if state.closed || state.retiring {
            return Err((QueueError::Closed, grant));
        }
        state.next_id += 1;
        let id = state.next_id;
        state.waiting[ask.priority as usize].push_back(Ticket {
            id,
            enqueued: Instant::now(),
            tokens: ask.tokens,
            grant,
        });
        dispatch(shared, &mut state);
        // Past maxQueueSize only a ticket that could go at once is let in.
        if shared
            .limits
            .max_queue
            .is_some_and(|max| state.queued() > max)
        {
            let queue = &mut state.waiting[ask.priority as usize];
            if let Some(at) = queue.iter().position(|t| t.id == id) {
                let grant = queue.remove(at).map(|t| t.grant);
                unlock(state);
                if let Some(grant) = grant {
                    return Err((QueueError::Full, grant));
                }
                return Ok(id);
            }
        }
        unlock(state);
        Ok(id)
    }

    /// Takes a queued call's ticket out of the queue (its caller gave up): whether it was still
    /// waiting. Its `run` is dropped, never called.
    pub fn withdraw(&self, ticket: u64) -> bool {
        let mut state = lock(&self.0);
        let mut found = None;
        for queue in state.waiting.iter_mut() {
            if let Some(at) = queue.iter().position(|t| t.id == ticket) {
                found = queue.remove(at);
                break;
            }
        }
        dispatch(&self.0, &mut state);
        unlock(state);
        // Dropped outside the lock: a call's closure may own anything.
        found.is_some()
    }

    /// No request is sent before `until` (the API announced a rate-limit reset); with `probe`,
    /// then only one until it is answered (`answered`).
    pub fn pause_until(&self, until: Instant, probe: bool) {
        let mut state = lock(&self.0);
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
        if probe {
            state.probe = Probe::Due;
        }
        dispatch(&self.0, &mut state);
        unlock(state);
    }

    /// A response arrived: a probe that was out is answered, and the others may go.
    pub fn answered(&self) {
        let mut state = lock(&self.0);
        if matches!(state.probe, Probe::Out(_)) {
            state.probe = Probe::None;
            dispatch(&self.0, &mut state);
        }
        unlock(state);
    }

    /// When a pause is running, its end.
    pub fn paused_until(&self) -> Option<Instant> {
        lock(&self.0)
            .paused_until
            .filter(|&until| until > Instant::now())
    }

    /// The task that runs `dispatch` when a window, a pause or a queued call's deadline comes:
    /// started with the first wait (in a tokio context), it ends when the queue is closed or
    /// dropped.
    pub(crate) fn ensure_timer(&self) {
        if let Some(timer) = self.take_timer() {
            tokio::spawn(timer);
        }
    }

    /// The timer task's future, unless it is running already: for callers outside a tokio
    /// context to spawn on their runtime.
    pub fn take_timer(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let mut state = lock(&self.0);
        if state.timer_running {
            return None;
        }
        state.timer_running = true;
        Some(timer(Arc::downgrade(&self.0)))
    }

    /// (callers waiting, requests in flight, the cap)
    pub fn status(&self) -> (usize, usize, usize) {
        let state = lock(&self.0);
        (
            state.queued(),
            state.in_flight,
            self.0.limits.max_concurrent,
        )
    }

    /// Callers waiting per priority: high, normal, low.
    pub fn waiting_by_priority(&self) -> [usize; 3] {
        let state = lock(&self.0);
        [0, 1, 2].map(|p| state.waiting[p].len())
    }

    /// Stops admitting and fails every waiter with `Closed`; resolves once nothing is in flight
    /// or at `deadline`, whichever comes first. Returns whether everything finished.
    pub async fn close(&self, deadline: Instant) -> bool {
        let shared = &self.0;
        {
            let mut state = lock(shared);
            state.closed = true;
            // Dropping the tickets' senders fails their waits with Closed; queued calls hear it.
            let tickets: Vec<Ticket> = state.waiting.iter_mut().flat_map(|q| q.drain(..)).collect();
            for ticket in tickets {
                if let Grant::Call { run, .. } = ticket.grant {
                    state.ready.push((run, Err(QueueError::Closed)));
                }
            }
            unlock(state);
        }
        shared.changed.notify_waiters();
        let drained = async {
            loop {
                let released = shared.released.notified();
                let mut released = std::pin::pin!(released);
                released.as_mut().enable();
                if lock(shared).in_flight == 0 {
                    return;
                }
                released.await;
            }
        };
        tokio::time::timeout_at(deadline.into(), drained)
            .await
            .is_ok()
    }

    pub fn is_closed(&self) -> bool {
        let state = lock(&self.0);
        state.closed || state.retiring
    }

    /// Takes no new tickets, lets every queued one have its turn and every request finish (by
    /// `deadline` at most: each queued call has its own, no later), then closes.
    pub async fn retire(&self, deadline: Instant) -> bool {
        let shared = &self.0;
        lock(shared).retiring = true;
        let drained = async {
            loop {
                let released = shared.released.notified();
                let mut released = std::pin::pin!(released);
                released.as_mut().enable();
                {
                    let state = lock(shared);
                    if state.in_flight == 0 && state.queued() == 0 {
                        return;
                    }
                }
                // A queued call that times out leaves without a notification: look again soon.
                let _ = tokio::time::timeout(Duration::from_millis(50), released).await;
            }
        };
        let finished = tokio::time::timeout_at(deadline.into(), drained)
            .await
            .is_ok();
        self.close(Instant::now()).await && finished
    }
}

async fn timer(weak: Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let changed = shared.changed.notified();
        let mut changed = std::pin::pin!(changed);
        changed.as_mut().enable();
        let (wake_at, closed) = {
            let mut state = lock(&shared);
            state.timer_until = state.wake_at;
            (state.wake_at, state.closed)
        };
        if closed {
            lock(&shared).timer_running = false;
            return;
        }
        match wake_at {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = &mut changed => {}
                }
            }
            // Nothing timed: wait for a change, but look up now and then so that a queue
            // dropped without close() does not keep this task forever.
            None => {
                let _ = tokio::time::timeout(Duration::from_secs(30), &mut changed).await;
            }
        }
        let mut state = lock(&shared);
        dispatch(&shared, &mut state);
        unlock(state);
    }
}

/// Hands places to the tickets that may go now, best rank first; notes when time alone will let
/// the next one go.
fn dispatch(shared: &Arc<Shared>, state: &mut State) {
    dispatch_now(shared, state);
    if let Some(deadline) = state.call_deadline {
        state.wake_at = Some(state.wake_at.map_or(deadline, |w| w.min(deadline)));
    }
    let earlier = match (state.wake_at, state.timer_until) {
        (Some(at), Some(sleeping_until)) => at < sleeping_until,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if earlier {
        // The timer task sleeps until a later moment (or none): tell it about this one.
        state.timer_until = state.wake_at;
        shared.changed.notify_waiters();
    }
}

fn dispatch_now(shared: &Arc<Shared>, state: &mut State) {
    let limits = &shared.limits;
    let now = Instant::now();
    state.wake_at = None;
    expire_calls(state, limits, now);
    while !state.closed && state.in_flight < limits.max_concurrent {
        if let Some(until) = state.paused_until {
            if until > now {
                state.wake_at = Some(until);
                return;
            }
            state.paused_until = None;
        }
        if matches!(state.probe, Probe::Out(_)) {
            return;
        }
        let Some(priority) = next_ticket(state, limits.aging, now) else {
            return;
        };
        while state
            .sent
            .front()
            .is_some_and(|s| now.duration_since(s.at) >= limits.window)
        {
            state.sent.pop_front();
        }
        let tokens = state.waiting[priority].front().map_or(0, |t| t.tokens);
        if let Some(frees_at) = over_budget(state, limits, tokens) {
            state.wake_at = Some(frees_at);
            return;
        }
        let Some(ticket) = state.waiting[priority].pop_front() else {
            return;
        };
        state.in_flight += 1;
        if state.probe == Probe::Due {
            state.probe = Probe::Out(ticket.id);
        }
        if limits.requests_per_window.is_some() || limits.tokens_per_window.is_some() {
            state.sent.push_back(Sent {
                at: now,
                id: ticket.id,
                tokens: ticket.tokens,
            });
        }
        let slot = Slot {
            shared: shared.clone(),
            id: ticket.id,
            armed: true,
        };
        match ticket.grant {
            Grant::Call { run, .. } => state.ready.push((run, Ok(slot))),
            Grant::Wait(reply) => {
                if let Err(mut slot) = reply.send(slot) {
                    // Its caller is gone: undo here, under the lock this function already holds.
                    slot.armed = false;
                    state.in_flight -= 1;
                    if state.probe == Probe::Out(ticket.id) {
                        state.probe = Probe::Due;
                    }
                    if let Some(at) = state.sent.iter().position(|s| s.id == ticket.id) {
                        state.sent.remove(at);
                    }
                }
            }
        }
    }
}

/// Fails the queued calls whose deadline has passed. Every call waits the same `timeout`, so
/// within a priority the front is the first to expire; the timer wakes for the earliest.
fn expire_calls(state: &mut State, limits: &Limits, now: Instant) {
    let mut next: Option<Instant> = None;
    for priority in 0..3 {
        while let Some(ticket) = state.waiting[priority].front() {
            match ticket.grant {
                Grant::Call { deadline, .. } if deadline <= now => {
                    // Counted before it leaves the line, as a caller timing out by itself is.
                    let occupancy = state.occupancy(limits, now);
                    if let Some(Ticket {
                        grant: Grant::Call { run, .. },
                        ..
                    }) = state.waiting[priority].pop_front()
                    {
                        state
                            .ready
                            .push((run, Err(QueueError::TimedOut(occupancy))));
                    }
                }
                Grant::Call { deadline, .. } => {
                    next = Some(next.map_or(deadline, |n: Instant| n.min(deadline)));
                    break;
                }
                Grant::Wait(_) => break,
            }
        }
    }
    state.call_deadline = next;
}

/// The queue whose head goes next: the best rank, where every `aging` waited lifts a ticket one
/// priority; among equals the one waiting longest.
fn next_ticket(state: &State, aging: Duration, now: Instant) -> Option<usize> {
    let rank = |priority: usize, ticket: &Ticket| {
        let lifted = if aging.is_zero() {
            0
        } else {
            (now.duration_since(ticket.enqueued).as_nanos() / aging.as_nanos()) as usize
        };
        priority.saturating_sub(lifted)
    };
    (0..3)
        .filter_map(|p| {
            state.waiting[p]
                .front()
                .map(|t| (p, rank(p, t), t.enqueued))
        })
        .min_by_key(|&(_, rank, enqueued)| (rank, enqueued))
        .map(|(p, _, _)| p)
}

/// When a request of `tokens` would pass a budget: the moment enough of the window has passed.
/// A request larger than the whole token budget goes once the window is empty, or it would wait
/// forever.
fn over_budget(state: &State, limits: &Limits, tokens: u64) -> Option<Instant> {
    if let Some(max) = limits.requests_per_window {
        if state.sent.len() as u64 >= max.max(1) {
            let excess = state.sent.len() + 1 - max.max(1) as usize;
            return Some(state.sent[excess - 1].at + limits.window);
        }
    }
    if let Some(max) = limits.tokens_per_window {
        let mut used: u64 = state.sent.iter().map(|s| s.tokens).sum();
        if used + tokens > max && !state.sent.is_empty() {
            // The earliest moment enough old requests have left the window.
            for sent in &state.sent {
                used -= sent.tokens;
                if used + tokens <= max {
                    return Some(sent.at + limits.window);
                }
            }
            return state.sent.back().map(|s| s.at + limits.window);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    fn limits(max_concurrent: usize) -> Limits {
        Limits {
            max_concurrent,
            max_queue: None,
            requests_per_window: None,
            tokens_per_window: None,
            window: Duration::from_secs(60),
            aging: Duration::from_secs(3600),
        }
    }

    fn ask(priority: Priority) -> Ask {
        Ask {
            priority,
            tokens: 0,
        }
    }

    async fn until_waiting(queue: &SlotQueue, n: usize) {
        while queue.status().0 != n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn caps_in_flight_and_counts_exactly() {
        let queue = SlotQueue::new(limits(2));
        let a = queue.acquire(Ask::default(), soon(1000)).await.unwrap();
        let _b = queue.acquire(Ask::default(), soon(1000)).await.unwrap();
        assert_eq!(queue.status(), (0, 2, 2));
        let q = queue.clone();
        let waiter =
            tokio::spawn(async move { q.acquire(Ask::default(), soon(5000)).await.map(|_| ()) });
        until_waiting(&queue, 1).await;
        drop(a);
        waiter.await.unwrap().unwrap();
        assert_eq!(queue.status(), (0, 1, 2));
    }

    #[tokio::test]
    async fn first_come_first_served_within_a_priority_and_high_first() {
        let queue = SlotQueue::new(limits(1));
        let held = queue.acquire(Ask::default(), soon(1000)).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        let asks = [
            (0, Priority::Low),
            (1, Priority::Normal),
            (2, Priority::Low),
            (3, Priority::High),
            (4, Priority::Normal),
        ];
        for (n, (i, priority)) in asks.into_iter().enumerate() {
            let (q, order) = (queue.clone(), order.clone());
            handles.push(tokio::spawn(async move {
                let slot = q.acquire(ask(priority), soon(5000)).await.unwrap();
                order.lock().unwrap().push(i);
                drop(slot);
            }));
            until_waiting(&queue, n + 1).await;
        }
        assert_eq!(queue.waiting_by_priority(), [1, 2, 2]);
        drop(held);
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![3, 1, 4, 0, 2]);
    }

    #[test]
    fn aging_lifts_a_long_waiting_ticket_above_fresh_high_ones() {
        let mut state = State::default();
        let now = Instant::now();
        let (tx, _rx) = oneshot::channel();
        state.waiting[Priority::Low as usize].push_back(Ticket {
            id: 1,
            enqueued: now - Duration::from_millis(250),
            tokens: 0,
            grant: Grant::Wait(tx),
        });
        let (tx, _rx2) = oneshot::channel();
        state.waiting[Priority::High as usize].push_back(Ticket {
            id: 2,
            enqueued: now,
            tokens: 0,
            grant: Grant::Wait(tx),
        });
        // Aging 100 ms: 250 ms waited lifts low (2) by two ranks to 0, and it waited longer.
        assert_eq!(
            next_ticket(&state, Duration::from_millis(100), now),
            Some(Priority::Low as usize)
        );
        assert_eq!(
            next_ticket(&state, Duration::from_secs(10), now),
            Some(Priority::High as usize)
        );
    }

    #[test]
    fn budgets_say_when_the_window_lets_the_next_request_go() {
        let now = Instant::now();
        let mut state = State::default();
        let window = Duration::from_secs(60);
        let mut l = limits(10);
        l.requests_per_window = Some(2);
        for (i, ago) in [30u64, 10].into_iter().enumerate() {
            state.sent.push_back(Sent {
                at: now - Duration::from_secs(ago),
                id: i as u64,
                tokens: 100,
            });
        }
        assert_eq!(
            over_budget(&state, &l, 0),
            Some(now - Duration::from_secs(30) + window)
        );
        l.requests_per_window = None;
        l.tokens_per_window = Some(250);
        assert_eq!(over_budget(&state, &l, 50), None);
        assert_eq!(
            over_budget(&state, &l, 100),
            Some(now - Duration::from_secs(30) + window)
        );
        assert_eq!(
            over_budget(&state, &l, 220),
            Some(now - Duration::from_secs(10) + window)
        );
        // Larger than the whole budget: goes once the window is empty.
        assert_eq!(over_budget(&State::default(), &l, 1000), None);
    }

    #[tokio::test]
    async fn a_request_budget_makes_callers_wait_not_fail() {
        let mut l = limits(10);
        l.requests_per_window = Some(2);
        l.window = Duration::from_millis(200);
        let queue = SlotQueue::new(l);
        let started = Instant::now();
        for _ in 0..5 {
            drop(queue.acquire(Ask::default(), soon(5000)).await.unwrap());
        }
        // Requests 3-4 wait one window, request 5 two.
        assert!(started.elapsed() >= Duration::from_millis(400));
    }

    /// A call's outcome, told before its slot (if any) is dropped.
    fn summary(outcome: &Result<Slot, QueueError>) -> Result<(), String> {
        outcome.as_ref().map(|_| ()).map_err(|e| format!("{e:?}"))
    }

    #[tokio::test]
    async fn queued_calls_run_in_turn_and_time_out_without_a_task() {
        let queue = SlotQueue::new(limits(1));
        let held = queue.acquire(Ask::default(), soon(1000)).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (i, deadline) in [(1, soon(60_000)), (2, soon(60_000))] {
            let tx = tx.clone();
            queue
                .enqueue_call(
                    Ask::default(),
                    deadline,
                    Box::new(move |outcome| {
                        let _ = tx.send((i, summary(&outcome)));
                    }),
                )
                .map_err(|(e, _)| e)
                .unwrap();
        }
        let tx2 = tx.clone();
        queue
            .enqueue_call(
                Ask::default(),
                soon(50),
                Box::new(move |outcome| {
                    let _ = tx2.send((3, summary(&outcome)));
                }),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        assert_eq!(queue.status().0, 3);
        drop(held);
        // Call 1 gets the place (and drops it at once), then call 2.
        assert_eq!(rx.recv().await, Some((1, Ok(()))));
        assert_eq!(rx.recv().await, Some((2, Ok(()))));
        // Call 3 was granted too once 2 dropped its slot, unless its deadline came first: either
        // way it is answered and the queue is empty.
        let (i, _) = rx.recv().await.unwrap();
        assert_eq!(i, 3);
        assert_eq!(queue.status(), (0, 0, 1));
        // A call behind a held slot times out at its deadline, answered by the timer.
        let held = queue.acquire(Ask::default(), soon(1000)).await.unwrap();
        let tx3 = tx.clone();
        queue
            .enqueue_call(
                Ask::default(),
                soon(30),
                Box::new(move |outcome| {
                    let _ = tx3.send((4, summary(&outcome)));
                }),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        queue.ensure_timer();
        let waited = "1 of 1 requests in flight (maxConcurrent); 1 callers waiting";
        assert_eq!(
            rx.recv().await,
            Some((4, Err(format!("TimedOut({waited:?})"))))
        );
        drop(held);
    }

    #[tokio::test]
    async fn after_a_capped_pause_one_request_probes_before_the_rest_go() {
        let queue = SlotQueue::new(limits(10));
        queue.pause_until(soon(30), true);
        let first = queue.enqueue(Ask::default()).unwrap();
        let second = queue.enqueue(Ask::default()).unwrap();
        let probe = first.wait(soon(5000)).await.unwrap();
        // The probe is out: the second waits although nine places are free.
        let waiting = tokio::spawn(second.wait(soon(5000)));
        tokio::task::yield_now().await;
        assert_eq!(queue.status(), (1, 1, 10));
        queue.answered();
        let next = waiting.await.unwrap().unwrap();
        assert_eq!(queue.status(), (0, 2, 10));
        drop((probe, next));
        // A probe whose request failed without an answer frees the line when its slot goes.
        queue.pause_until(soon(10), true);
        let lost = queue.acquire(Ask::default(), soon(5000)).await.unwrap();
        let behind = tokio::spawn({
            let queue = queue.clone();
            async move { queue.acquire(Ask::default(), soon(5000)).await }
        });
        tokio::task::yield_now().await;
        drop(lost);
        assert!(behind.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn retiring_serves_the_queued_and_refuses_the_new() {
        let queue = SlotQueue::new(limits(1));
        let running = queue.acquire(Ask::default(), soon(5000)).await.unwrap();
        let queued = queue.enqueue(Ask::default()).unwrap();
        let retired = tokio::spawn({
            let queue = queue.clone();
            async move { queue.retire(soon(5000)).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(
            queue.enqueue(Ask::default()).err(),
            Some(QueueError::Closed)
        );
        drop(running);
        let served = queued.wait(soon(5000)).await.unwrap();
        drop(served);
        assert!(retired.await.unwrap());
    }

    #[tokio::test]
    async fn a_pause_holds_every_request_until_it_ends() {
        let queue = SlotQueue::new(limits(10));
        let until = soon(150);
        queue.pause_until(until, false);
        let slot = queue.acquire(Ask::default(), soon(5000)).await.unwrap();
        assert!(Instant::now() >= until);
        drop(slot);
        assert_eq!(queue.paused_until(), None);
    }

    #[tokio::test]
    async fn full_timed_out_and_abandoned_waits_leave_no_trace() {
        let mut l = limits(1);
        l.max_queue = Some(1);
        let queue = SlotQueue::new(l);
        let _held = queue.acquire(Ask::default(), soon(1000)).await.unwrap();
        let q = queue.clone();
        let waiting =
            tokio::spawn(async move { q.acquire(Ask::default(), soon(60_000)).await.map(|_| ()) });
        until_waiting(&queue, 1).await;
        assert_eq!(
            queue.acquire(Ask::default(), soon(1000)).await.unwrap_err(),
            QueueError::Full
        );
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(queue.status(), (0, 1, 1));
        assert_eq!(
            queue.acquire(Ask::default(), soon(20)).await.unwrap_err(),
            QueueError::TimedOut(
                "1 of 1 requests in flight (maxConcurrent); 1 callers waiting".into()
            )
        );
        assert_eq!(queue.status(), (0, 1, 1));
    }

    #[tokio::test]
    async fn close_rejects_waiters_and_waits_for_in_flight() {
        let queue = SlotQueue::new(limits(1));
        let held = queue.acquire(Ask::default(), soon(1000)).await.unwrap();
        let q = queue.clone();
        let waiter =
            tokio::spawn(async move { q.acquire(Ask::default(), soon(60_000)).await.map(|_| ()) });
        until_waiting(&queue, 1).await;
        let q = queue.clone();
        let closing = tokio::spawn(async move { q.close(soon(5000)).await });
        assert_eq!(waiter.await.unwrap().unwrap_err(), QueueError::Closed);
        drop(held);
        assert!(closing.await.unwrap());
        assert_eq!(
            queue.acquire(Ask::default(), soon(10)).await.unwrap_err(),
            QueueError::Closed
        );
    }
}

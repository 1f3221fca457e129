//! What a connection's callers and its task share: the bytes of requests not yet written, the
//! exchanges waiting for their answers, and whether the connection still takes requests.
//!
//! A request goes in whole, under one lock with its exchange, so that bytes and exchanges keep
//! one order. Who writes it:
//! - on an idle connection (nothing sent and unanswered), the caller itself, at once, with a
//!   non-blocking write (encrypted first, for TLS): a statement from Node's thread reaches the
//!   server without waking a tokio thread (only a write the socket cannot take whole wakes the
//!   task to finish it);
//! - on a busy connection, the task, the next time it is woken by an answer: requests that
//!   arrive during one round trip go out together in one write.
//!
//! Every write happens under the lock or by the task alone, never two at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::BytesMut;
use futures::task::AtomicWaker;

use super::exchange::Exchange;
use super::socket::DirectWriter;

/// Why a connection takes no more requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Closed by the pool (retired, idle, the pool closing): it ends once every exchange is
    /// answered, with a Terminate.
    Draining,
    /// A statement left it inside a transaction: rolled back, then closed.
    RollingBack,
    /// Closed now: its socket is dropped and every exchange fails (it stopped answering).
    Discarded,
    /// The session ended (the server or the network ended it).
    Ended,
}

pub struct Channel {
    state: Mutex<State>,
    waker: AtomicWaker,
    direct: Option<DirectWriter>,
    /// The deadline of the oldest exchange the task holds, in µs after `born` (`NO_DEADLINE`
    /// when none): the pool's watch wakes the task once it has passed.
    deadline_us: AtomicU64,
    born: Instant,
}

const NO_DEADLINE: u64 = u64::MAX;

pub(super) struct State {
    /// Request bytes not yet written.
    pub out: BytesMut,
    /// Exchanges sent, not yet taken by the task.
    pub queued: VecDeque<Exchange>,
    /// Exchanges sent and not yet answered (queued ones and the task's).
    pub outstanding: usize,
    /// Bytes ever queued, and ever written: an exchange whose `end` is at most `written` reached
    /// the socket whole.
    pub appended: u64,
    pub written: u64,
    pub closed: Option<Closed>,
    /// The task holds bytes it took from `out` and has not finished writing.
    pub task_writing: bool,
}

impl State {
    /// Puts `exchange` in line, its request the next `len` bytes queued (written or not).
    pub(super) fn push_exchange(&mut self, mut exchange: Exchange, len: usize) {
        exchange.start = self.appended;
        self.appended += len as u64;
        exchange.end = self.appended;
        self.outstanding += 1;
        self.queued.push_back(exchange);
    }
}

impl Channel {
    pub fn new(direct: Option<DirectWriter>) -> Self {
        Channel {
            state: Mutex::new(State {
                out: BytesMut::with_capacity(4096),
                queued: VecDeque::new(),
                outstanding: 0,
                appended: 0,
                written: 0,
                closed: None,
                task_writing: false,
            }),
            waker: AtomicWaker::new(),
            direct,
            deadline_us: AtomicU64::new(NO_DEADLINE),
            born: Instant::now(),
        }
    }

    /// The task says when its oldest exchange runs out of time.
    pub(super) fn publish_deadline(&self, deadline: Option<Instant>) {
        let us = deadline.map_or(NO_DEADLINE, |at| {
            at.saturating_duration_since(self.born).as_micros() as u64
        });
        self.deadline_us.store(us, Ordering::Relaxed);
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Sends a request: `bytes` (frontend messages ending with one Sync) and the exchange that
    /// reads its answer. A connection that takes no more requests gives the exchange back,
    /// unsent.
    pub fn send(&self, bytes: &[u8], exchange: Exchange) -> Result<(), Exchange> {
        let wake = {
            let mut state = self.lock();
            if state.closed.is_some() {
                return Err(exchange);
            }
            let idle = state.outstanding == 0 && state.out.is_empty() && !state.task_writing;
            state.push_exchange(exchange, bytes.len());
            match (&self.direct, idle) {
                (Some(direct), true) => {
                    let (sent, pending) = write_now(direct, bytes);
                    state.written += sent as u64;
                    state.out.extend_from_slice(&bytes[sent..]);
                    sent < bytes.len() || pending
                }
                (None, true) => {
                    state.out.extend_from_slice(bytes);
                    true
                }
                (_, false) => {
                    state.out.extend_from_slice(bytes);
                    false
                }
            }
        };
        if wake {
            self.waker.wake();
        }
        Ok(())
    }

    /// Takes no more requests, and ends once the ones sent are answered.
    pub fn drain(&self) {
        self.close(Closed::Draining);
    }

    /// Takes no more requests, and fails the ones sent: for a connection that stopped answering.
    pub fn discard(&self) {
        self.close(Closed::Discarded);
    }

    fn close(&self, why: Closed) {
        {
            let mut state = self.lock();
            match (state.closed, why) {
                (None, _) => state.closed = Some(why),
                (Some(Closed::Draining | Closed::RollingBack), Closed::Discarded) => {
                    state.closed = Some(why)
                }
                _ => return,
            }
        }
        self.waker.wake();
    }

    /// Why it takes no more requests, if it does not.
    pub fn closed(&self) -> Option<Closed> {
        self.lock().closed
    }

    /// Wakes the task when an exchange is past its deadline: the oldest it holds (as it
    /// published), or the oldest it has not seen yet (written directly while it slept).
    pub fn wake_if_overdue(&self, now: Instant) {
        let published = self.deadline_us.load(Ordering::Relaxed);
        let elapsed = now.saturating_duration_since(self.born).as_micros() as u64;
        let overdue = (published != NO_DEADLINE && published <= elapsed)
            || self
                .lock()
                .queued
                .front()
                .and_then(|exchange| exchange.deadline)
                .is_some_and(|deadline| deadline <= now);
        if overdue {
            self.waker.wake();
        }
    }
}

/// Writes what the socket takes now, without blocking: the count taken (0 on an error, which
/// the task meets again and reports), and whether encrypted bytes wait for the task to flush.
fn write_now(direct: &DirectWriter, bytes: &[u8]) -> (usize, bool) {
    let mut sent = 0;
    while sent < bytes.len() {
        match direct.try_write(&bytes[sent..]) {
            Ok(written) if written.pending => return (sent + written.taken, true),
            Ok(written) if written.taken == 0 => break,
            Ok(written) => sent += written.taken,
            Err(_) => break,
        }
    }
    (sent, false)
}

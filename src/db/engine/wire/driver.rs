//! A connection's task: it reads the server's answers and gives each to the exchange at the
//! head of the queue, writes what callers queued while the connection was busy, watches the
//! statement timeout, and reports how the session ended.
//!
//! Beyond reading, it keeps three promises:
//! - **Transaction status on every ReadyForQuery.** A shared connection's exchange must leave
//!   it idle. One that leaves it inside a transaction (a raw `BEGIN` the statement guard did not
//!   catch) fails with `LeftTransactionOpen`; the connection takes nothing more, a ROLLBACK goes
//!   out behind what was already sent, and every exchange answered in between, which ran inside
//!   that transaction, is withheld and reported `RolledBack` (so its caller may run it again
//!   elsewhere) once the ROLLBACK is answered. Then the connection closes.
//! - **Timeouts.** Past its deadline, the exchange at the head is cancelled (a CancelRequest);
//!   if the connection then answers nothing for `grace`, it is discarded.
//! - **Every exchange reports exactly once**, however the session ends: `NotSent` or `NotRun`
//!   when the server provably never ran it, `EndedByServer` when it was aborted by a shutdown,
//!   `Lost` when the outcome is unknown.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::cancel;
use super::channel::{Channel, Closed};
use super::db_error::{self, QUERY_CANCELED};
use super::exchange::{Exchange, Expect, Failed, Sink, Step, TxStatus};
use super::socket::Stream;
use super::startup::CancelTarget;
use crate::error::DatabaseErrorFields;

/// How a session ended.
#[derive(Debug, Clone)]
pub enum Ending {
    /// Closed by us after its last answer (Terminate sent).
    Closed,
    /// The server ended it (a FATAL error, 57P01 for a shutdown).
    ByServer(Box<DatabaseErrorFields>),
    /// The network or the protocol broke.
    Broken(String),
    /// Discarded: it stopped answering.
    Discarded,
}

/// A cancel sent for the exchange that starts at `start`; past `grace_until` with no answer
/// the connection is discarded.
struct Cancelling {
    start: u64,
    grace_until: Instant,
}

/// Exchanges answered inside a transaction a statement left open, withheld until its fate is
/// known.
struct Taint {
    /// The transaction is still open (no answer since showed it idle).
    open: bool,
    withheld: Vec<Exchange>,
}

pub struct Driver {
    channel: Arc<Channel>,
    stream: Stream,
    read_buf: BytesMut,
    /// Bytes taken from the channel that the task is writing.
    write_buf: BytesMut,
    in_flight: VecDeque<Exchange>,
    /// Exchanges answered in this pass, reported once the channel's count is updated.
    settled: Vec<(Exchange, Result<TxStatus, Failed>)>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    cancel: Option<CancelTarget>,
    grace: Duration,
    cancelling: Option<Cancelling>,
    taint: Option<Taint>,
    /// The FATAL error the server ended the session with, and the exchange it reached (by start).
    fatal: Option<(DatabaseErrorFields, Option<u64>)>,
    terminate: Option<BytesMut>,
}

impl Driver {
    pub fn new(
        channel: Arc<Channel>,
        stream: Stream,
        read_buf: BytesMut,
        cancel: Option<CancelTarget>,
        grace: Duration,
    ) -> Self {
        Driver {
            channel,
            stream,
            read_buf,
            write_buf: BytesMut::with_capacity(4096),
            in_flight: VecDeque::new(),
            settled: Vec::new(),
            timer: None,
            cancel,
            grace,
            cancelling: None,
            taint: None,
            fatal: None,
            terminate: None,
        }
    }

    /// Runs the session until it ends.
    pub async fn run(mut self) -> Ending {
        std::future::poll_fn(|cx| self.poll(cx)).await
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        self.channel.register(cx.waker());
        loop {
            if self.channel.closed() == Some(Closed::Discarded) {
                return Poll::Ready(self.end_all(Ending::Discarded));
            }
            let read = match self.stream.poll_read(cx, &mut self.read_buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(self.end_all(self.eof())),
                Poll::Ready(Ok(_)) => true,
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(self.end_all(Ending::Broken(e.to_string())))
                }
                Poll::Pending => false,
            };
            if read {
                if let Err(why) = self.read_messages() {
                    return Poll::Ready(self.end_all(Ending::Broken(why)));
                }
            }
            self.report_settled();
            if let Err(e) = self.poll_write(cx) {
                return Poll::Ready(self.end_all(Ending::Broken(e.to_string())));
            }
            if let Poll::Ready(ending) = self.poll_terminate(cx) {
                return Poll::Ready(ending);
            }
            match self.poll_deadlines(cx) {
                Deadline::Discard => return Poll::Ready(self.end_all(Ending::Discarded)),
                Deadline::Again => continue,
                Deadline::Waiting => {}
            }
            if !read {
                return Poll::Pending;
            }
        }
    }

    /// The end of the stream: the server's goodbye if it sent one.
    fn eof(&self) -> Ending {
        match &self.fatal {
            Some((fields, _)) => Ending::ByServer(Box::new(fields.clone())),
            None => Ending::Broken("the server closed the connection".into()),
        }
    }

    /// The exchange answers go to: the oldest in flight (taken from the channel when needed).
    fn front(&mut self) -> Option<&mut Exchange> {
        if self.in_flight.is_empty() {
            self.take_queued();
        }
        self.in_flight.front_mut()
    }

    fn take_queued(&mut self) {
        let mut state = self.channel.lock();
        self.in_flight.extend(state.queued.drain(..));
    }

    /// Reads every whole message in the buffer.
    fn read_messages(&mut self) -> Result<(), String> {
        while let Some(message) = Message::parse(&mut self.read_buf).map_err(|e| e.to_string())? {
            match message {
                Message::NoticeResponse(_)
                | Message::ParameterStatus(_)
                | Message::NotificationResponse(_) => {}
                Message::ErrorResponse(body) => {
                    let fields = db_error::read_fields(body.fields());
                    if db_error::is_fatal(&fields) {
                        // Sent while idle (a timeout of an idle session): it reached no request.
                        let reached = match db_error::ended_idle(&fields.code) {
                            true => None,
                            false => self.front().map(|e| e.start),
                        };
                        self.fatal = Some((fields.clone(), reached));
                    }
                    if let Some(front) = self.front() {
                        front.record_error(fields);
                    }
                }
                message => {
                    let step = match self.front() {
                        Some(front) => front.read(message)?,
                        None => return Err("the server sent an answer no request asked for".into()),
                    };
                    match step {
                        Step::More => {}
                        Step::CopyIn => self.end_copy_in(),
                        Step::Answered(status) => {
                            let exchange = self.in_flight.pop_front().expect("the front exists");
                            self.settle(exchange, status);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Decides what an answered exchange reports.
    fn settle(&mut self, exchange: Exchange, status: TxStatus) {
        if exchange.started_copy() {
            self.settled.push((exchange, Err(Failed::Copy)));
            return;
        }
        if exchange.internal_rollback {
            self.rolled_back();
            self.settled.push((exchange, Ok(status)));
            return;
        }
        if let Some(taint) = &mut self.taint {
            if taint.open {
                taint.withheld.push(exchange);
                if status == TxStatus::Idle {
                    // A statement ended the transaction: whatever ran in it may have committed.
                    taint.open = false;
                    for withheld in taint.withheld.drain(..) {
                        self.settled.push((withheld, Err(lost_in_transaction())));
                    }
                }
                return;
            }
        }
        if exchange.expect == Expect::Idle && status != TxStatus::Idle {
            self.settled
                .push((exchange, Err(Failed::LeftTransactionOpen)));
            self.start_rollback();
            return;
        }
        let cancelled = exchange.error().is_some_and(|e| e.code == QUERY_CANCELED);
        let targeted = self
            .cancelling
            .as_ref()
            .is_some_and(|c| c.start == exchange.start);
        if targeted {
            self.cancelling = None;
        }
        let outcome = match (cancelled, targeted) {
            (true, true) => Err(Failed::TimedOut),
            (true, false) => Err(Failed::Cancelled),
            _ => Ok(status),
        };
        self.settled.push((exchange, outcome));
    }

    /// A ROLLBACK behind everything sent; the connection takes nothing more.
    fn start_rollback(&mut self) {
        self.taint = Some(Taint {
            open: true,
            withheld: Vec::new(),
        });
        let mut bytes = BytesMut::new();
        frontend::query("ROLLBACK", &mut bytes).expect("a fixed query");
        let mut exchange =
            Exchange::new(vec![Sink::DiscardAll], Expect::Any, None, Box::new(|_| {}));
        exchange.internal_rollback = true;
        let mut state = self.channel.lock();
        if state.closed.is_none() || state.closed == Some(Closed::Draining) {
            state.closed = Some(Closed::RollingBack);
        }
        state.push_exchange(exchange, bytes.len());
        state.out.extend_from_slice(&bytes);
    }

    /// Our ROLLBACK is answered: what ran inside the transaction did nothing.
    fn rolled_back(&mut self) {
        if let Some(taint) = self.taint.take() {
            for withheld in taint.withheld {
                let outcome = if taint.open {
                    Failed::RolledBack
                } else {
                    lost_in_transaction()
                };
                self.settled.push((withheld, Err(outcome)));
            }
        }
    }

    /// A COPY FROM STDIN waits for data, which no request carries. A CopyFail and a Sync go out
    /// ahead of every request not yet written, so that the COPY ends with an error and what was
    /// queued behind it runs. If some of the next request is written already, the server will end
    /// the session on reading it (a message out of place in copy mode), and nothing behind the
    /// COPY runs (they are reported `NotRun`).
    fn end_copy_in(&mut self) {
        let mut bytes = BytesMut::new();
        frontend::copy_fail(
            "COPY FROM STDIN is not supported by connection-pools",
            &mut bytes,
        )
        .expect("a fixed message");
        frontend::sync(&mut bytes);
        let shift = bytes.len() as u64;
        let mut state = self.channel.lock();
        let Some(copy_end) = self.in_flight.front().map(|e| e.end) else {
            return;
        };
        if state.written > copy_end {
            return;
        }
        let pending = if self.write_buf.is_empty() {
            &mut state.out
        } else {
            &mut self.write_buf
        };
        bytes.extend_from_slice(pending);
        *pending = bytes;
        state.appended += shift;
        let behind = self
            .in_flight
            .iter_mut()
            .skip(1)
            .chain(state.queued.iter_mut());
        for exchange in behind {
            exchange.start += shift;
            exchange.end += shift;
        }
    }

    /// Updates the channel's count, takes what callers queued meanwhile, then reports.
    fn report_settled(&mut self) {
        if self.settled.is_empty() {
            return;
        }
        {
            let mut state = self.channel.lock();
            state.outstanding -= self.settled.len();
        }
        for (exchange, outcome) in self.settled.drain(..) {
            match outcome {
                Ok(status) => exchange.answer(status),
                Err(why) => exchange.fail(why),
            }
        }
    }

    /// Writes what is queued, until the socket takes no more.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        loop {
            if self.write_buf.is_empty() {
                let mut state = self.channel.lock();
                if state.out.is_empty() {
                    state.task_writing = false;
                    break;
                }
                std::mem::swap(&mut state.out, &mut self.write_buf);
                state.task_writing = true;
            }
            match self.stream.poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    let _ = self.write_buf.split_to(n);
                    if self.write_buf.is_empty() {
                        self.write_buf.clear();
                    }
                    self.channel.lock().written += n as u64;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        match self.stream.poll_flush(cx) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Once the connection is closing and everything is answered: Terminate, and the end.
    fn poll_terminate(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        if self.terminate.is_none() {
            let state = self.channel.lock();
            let closing = matches!(state.closed, Some(Closed::Draining | Closed::RollingBack));
            if !closing
                || state.outstanding > 0
                || !state.out.is_empty()
                || !self.write_buf.is_empty()
            {
                return Poll::Pending;
            }
            drop(state);
            let mut bytes = BytesMut::new();
            frontend::terminate(&mut bytes);
            self.terminate = Some(bytes);
        }
        let bytes = self.terminate.as_mut().expect("set above");
        while !bytes.is_empty() {
            match self.stream.poll_write(cx, bytes) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    let _ = bytes.split_to(n);
                }
                Poll::Pending => return Poll::Pending,
                _ => break,
            }
        }
        let _ = self.stream.poll_flush(cx);
        self.channel.lock().closed = Some(Closed::Ended);
        Poll::Ready(Ending::Closed)
    }

    /// The statement timeout of the exchange at the head. No timer is armed per statement (a
    /// timer reset on every answer wakes the thread parked on tokio's driver): the deadline is
    /// published on the channel, and the pool's watch wakes this task once it has passed. A
    /// cancelled exchange's grace is timed here (that is rare).
    fn poll_deadlines(&mut self, cx: &mut Context<'_>) -> Deadline {
        let now = Instant::now();
        if self.in_flight.is_empty() {
            self.take_queued();
        }
        if let Some(cancelling) = &self.cancelling {
            if !self.in_flight.iter().any(|e| e.start == cancelling.start) {
                self.cancelling = None;
            }
        }
        match (&self.cancelling, self.in_flight.front()) {
            (Some(cancelling), _) if now >= cancelling.grace_until => Deadline::Discard,
            (Some(cancelling), _) => {
                let at = cancelling.grace_until.into();
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Deadline::Again,
                    Poll::Pending => Deadline::Waiting,
                }
            }
            (None, Some(front)) => match front.deadline {
                Some(deadline) if now >= deadline => {
                    let start = front.start;
                    self.start_cancel(start, now);
                    Deadline::Again
                }
                deadline => {
                    self.channel.publish_deadline(deadline);
                    Deadline::Waiting
                }
            },
            (None, None) => {
                self.channel.publish_deadline(None);
                Deadline::Waiting
            }
        }
    }

    fn start_cancel(&mut self, start: u64, now: Instant) {
        self.cancelling = Some(Cancelling {
            start,
            grace_until: now + self.grace,
        });
        if let Some(target) = self.cancel.clone() {
            let grace = self.grace;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(grace, cancel::cancel(&target)).await;
            });
        }
    }

    /// The session is over: every exchange reports, by what the server can have run.
    fn end_all(&mut self, ending: Ending) -> Ending {
        let (written, queued) = {
            let mut state = self.channel.lock();
            if state.closed != Some(Closed::Discarded) {
                state.closed = Some(Closed::Ended);
            }
            state.outstanding = 0;
            (state.written, std::mem::take(&mut state.queued))
        };
        self.in_flight.extend(queued);
        let discarded = matches!(ending, Ending::Discarded);
        let unanswered: Vec<Exchange> = self.in_flight.drain(..).collect();
        for exchange in unanswered {
            let why = self.why_unanswered(&exchange, written, discarded);
            exchange.fail(why);
        }
        if let Some(taint) = self.taint.take() {
            // The session's end rolls back the transaction it was in.
            for withheld in taint.withheld {
                withheld.fail(if taint.open {
                    Failed::RolledBack
                } else {
                    lost_in_transaction()
                });
            }
        }
        ending
    }

    fn why_unanswered(&self, exchange: &Exchange, written: u64, discarded: bool) -> Failed {
        if exchange.started_copy() {
            return Failed::Copy;
        }
        if let Some((fields, reached)) = &self.fatal {
            if *reached == Some(exchange.start) {
                return if db_error::session_ended(&fields.code) {
                    Failed::EndedByServer(Box::new(fields.clone()))
                } else {
                    Failed::Lost(format!(
                        "the server ended the session while running the statement: {} ({})",
                        fields.message, fields.code
                    ))
                };
            }
            // After a FATAL error the server reads nothing more.
            return Failed::NotRun(format!("the server ended the session ({})", fields.code));
        }
        if discarded
            && self
                .cancelling
                .as_ref()
                .is_some_and(|c| c.start == exchange.start)
        {
            return Failed::TimedOut;
        }
        if exchange.start >= written {
            return Failed::NotSent("the connection closed before the statement was sent".into());
        }
        let why = if discarded {
            "the connection stopped answering"
        } else {
            "the connection to the database was lost"
        };
        Failed::Lost(format!(
            "{why} while the statement was running; it may or may not have completed"
        ))
    }
}

enum Deadline {
    Waiting,
    Again,
    Discard,
}

fn lost_in_transaction() -> Failed {
    Failed::Lost(
        "the statement ran inside a transaction another statement opened and ended on its \
         connection; it may or may not have completed"
            .into(),
    )
}

#[cfg(test)]
mod tests;

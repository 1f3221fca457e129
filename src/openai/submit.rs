//! A JS `fetch` handed to the pool: queued as a ticket (no task until its turn), run, and
//! answered once through the batched replies: the response head with its body as text, as bytes
//! or as a stream's id, or the pool's own error. An abort from the caller takes a queued fetch
//! out of the queue or drops a running one.

// ApiError travels only on the failure path, where its size costs nothing worth a Box.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::client::{ApiError, OpenAiPool, Place};
use super::queue::{OnGrant, Priority};
use crate::crossing::Replies;
use crate::forward::{Outgoing, Reply};
use crate::inflight::{Entry, InFlight, Undo};
use crate::streams::StreamRegistry;

/// One fetch as it arrived.
pub struct FetchCall {
    pub id: u32,
    pub outgoing: Outgoing,
    /// The body, when it is JSON and a token budget needs its estimate.
    pub json: Option<Value>,
    pub model: Option<String>,
    /// The slot of the `executeRequest` callback it belongs to: no queue then.
    pub slot_id: Option<u32>,
    pub priority: Priority,
    pub submitted: Instant,
}

/// Where a fetch's answer goes.
#[derive(Clone)]
pub struct Answerer {
    pub pool: Arc<OpenAiPool>,
    pub replies: Arc<Replies>,
    pub streams: Arc<StreamRegistry>,
    pub flights: Arc<InFlight>,
}

impl Answerer {
    /// Queues (or, on a held slot, starts) the fetch; its answer comes through `replies`.
    pub fn submit(&self, call: FetchCall) {
        let entry = self.flights.begin(call.id);
        if call.slot_id.is_some() {
            self.start(call, None, entry);
            return;
        }
        let ask = self
            .pool
            .ask(call.outgoing.api_path(), call.json.as_ref(), call.priority);
        let deadline = call.submitted + self.pool.config.timeout;
        let (id, submitted) = (call.id, call.submitted);
        let this = self.clone();
        let waiting = entry.clone();
        let on_grant: OnGrant = Box::new(move |outcome| match outcome {
            // Aborted while queued: the place goes straight back.
            Ok(_) if waiting.is_aborted() => {}
            Ok(slot) => this.start(call, Some(Place::Granted(slot, ask)), waiting),
            Err(err) => {
                this.pool.count_unqueued_failure(submitted);
                let timeout = this.pool.config.timeout;
                this.answer(id, &waiting, |replies| {
                    replies.reply(id, &ApiError::from_queue(err, timeout).envelope())
                });
            }
        });
        let queue = self.pool.queue.clone();
        match queue.enqueue_call(ask, deadline, on_grant) {
            Ok(ticket) => entry.queued(ticket),
            Err((err, on_grant)) => on_grant(Err(err)),
        }
        // Deadlines of queued calls are kept by the queue's timer task.
        if let Some(timer) = queue.take_timer() {
            napi::bindgen_prelude::spawn(timer);
        }
    }

    /// Runs the fetch in a task of its own, which an abort can drop.
    fn start(&self, call: FetchCall, place: Option<Place>, entry: Arc<Entry>) {
        let this = self.clone();
        let id = call.id;
        let running = entry.clone();
        // How long it waited for its slot (its first one: a retry's wait is the pool's own).
        let queued = call.submitted.elapsed();
        let task = napi::bindgen_prelude::spawn(async move {
            let fetch = this.pool.fetch(
                call.outgoing,
                call.model,
                call.slot_id,
                place,
                call.submitted,
            );
            use futures::FutureExt;
            let outcome = match std::panic::AssertUnwindSafe(Box::pin(fetch))
                .catch_unwind()
                .await
            {
                Ok(outcome) => outcome,
                Err(panic) => Err(ApiError::local(
                    "APIError",
                    crate::error::Code::Internal,
                    crate::error::PoolError::from_panic(panic).to_string(),
                )),
            };
            this.answer(id, &running, |replies| match outcome {
                Ok(reply) => replies.send_fetched(
                    with_queue_wait(reply, queued),
                    &this.streams,
                    this.pool.config.request_timeout,
                    id,
                ),
                Err(error) => replies.reply(id, &error.envelope()),
            });
        });
        if !entry.running(task.abort_handle()) {
            task.abort();
        }
    }

    /// Answers fetch `id` unless its abort did already.
    fn answer(&self, id: u32, entry: &Entry, send: impl FnOnce(&Replies)) {
        if entry.answer() {
            self.flights.end(id);
            send(&self.replies);
        }
    }

    /// The caller's `AbortSignal` fired: a queued fetch leaves the queue, a running one is
    /// dropped (its slot freed, its request closed), and it is answered as aborted.
    pub fn abort(&self, id: u32) {
        let Some(undo) = self.flights.abort(id) else {
            return;
        };
        if let Undo::Withdraw(ticket) = undo {
            self.pool.queue.withdraw(ticket);
        }
        self.replies.reply(id, &aborted().envelope());
    }
}

fn aborted() -> ApiError {
    ApiError::local(
        "AbortError",
        crate::error::Code::Aborted,
        "This operation was aborted",
    )
}

/// The reply's head with `"queuedMs"`: the wait for a slot, which telemetry reports on the span.
fn with_queue_wait(reply: Reply, queued: std::time::Duration) -> Reply {
    let field = format!(r#","queuedMs":{:.3}"#, queued.as_secs_f64() * 1000.0);
    match reply {
        Reply::Whole { head, body, kind } => Reply::Whole {
            head: head + &field,
            body,
            kind,
        },
        Reply::Stream { head, stream } => Reply::Stream {
            head: head + &field,
            stream,
        },
    }
}

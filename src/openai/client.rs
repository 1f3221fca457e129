//! The OpenAI pool's HTTP side: one keep-alive transport (`crate::http`, its connections capped
//! at `maxConcurrentRequests`), every request through the queue, retries in this one layer, and
//! the accounting. A request is the SDK's own (`crate::forward::Outgoing`, from the `fetch` the
//! JS side gives openai-node); its response goes back as the server sent it, whole or streamed.

// ApiError travels only on the failure path, where its size costs nothing worth a Box.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hyper::body::Incoming;

use crate::forward::{body_kind, head_json, BodyKind, ByteStream, Outgoing, Reply as FetchReply};
use crate::http::header::HeaderMap;
use crate::http::{read_body, Response, Transport, TransportOptions};
use serde::Serialize;
use serde_json::Value;

use super::accounting::Accounting;
use super::config::OpenAiConfig;
use super::queue::{Ask, Pending, Priority, QueueError, Slot, SlotQueue};
use super::ratelimit::Pause;
use super::retry::{backoff, retry_after, should_retry, Failure};
use super::shared::{SharedLease, SharedLimits};
use super::usage::{body_tokens, UsageScanner};

/// How long `healthCheck()` waits for the model list.
const HEALTH_DEADLINE: Duration = Duration::from_secs(5);

/// The most a reply body may hold (the largest embeddings batches are a few tens of MB).
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// An error as openai-node names it, or one of the pool's own (`QUEUE_FULL`, `POOL_CLOSED`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    pub name: &'static str,
    pub message: String,
    pub status: Option<u16>,
    pub code: Option<String>,
    #[serde(rename = "type")]
    pub error_type: Option<String>,
    pub param: Option<String>,
    pub request_id: Option<String>,
}

impl ApiError {
    pub(super) fn local(
        name: &'static str,
        code: crate::error::Code,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            name,
            message: message.into(),
            status: None,
            code: Some(code.as_str().to_string()),
            error_type: None,
            param: None,
            request_id: None,
        }
    }

    pub(super) fn timeout(message: impl Into<String>) -> Self {
        ApiError::local("APITimeoutError", crate::error::Code::Timeout, message)
    }

    pub fn envelope(&self) -> String {
        serde_json::json!({ "error": self }).to_string()
    }
}

impl crate::error::ErrorReply for ApiError {
    fn reply(&self) -> String {
        self.envelope()
    }
}

impl ApiError {
    pub(super) fn from_queue(err: QueueError, timeout: Duration) -> Self {
        match err {
            QueueError::Full => ApiError::local(
                "QueueFullError",
                crate::error::Code::QueueFull,
                "the request queue is full (maxQueueSize); try again later",
            ),
            QueueError::Closed => ApiError::local(
                "PoolClosedError",
                crate::error::Code::PoolClosed,
                "the OpenAI pool is closed",
            ),
            QueueError::TimedOut(occupancy) => ApiError::timeout(format!(
                "request timed out after {} ms waiting for a free slot: {occupancy}",
                timeout.as_millis()
            )),
        }
    }

    /// openai-node's class for an HTTP error status.
    fn from_response(status: u16, body: &str, request_id: Option<String>) -> Self {
        let name = match status {
            400 => "BadRequestError",
            401 => "AuthenticationError",
            403 => "PermissionDeniedError",
            404 => "NotFoundError",
            409 => "ConflictError",
            422 => "UnprocessableEntityError",
            429 => "RateLimitError",
            s if s >= 500 => "InternalServerError",
            _ => "APIError",
        };
        let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let error = parsed.get("error").unwrap_or(&parsed);
        let text = |key: &str| match error.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        ApiError {
            name,
            message: text("message").unwrap_or_else(|| format!("{status} status code")),
            status: Some(status),
            code: text("code"),
            error_type: text("type"),
            param: text("param"),
            request_id,
        }
    }
}

/// A slot held by `executeRequest` for the whole of its callback.
struct HeldSlot {
    slot: Slot,
    deadline: Instant,
    model: Option<String>,
}

pub struct OpenAiPool {
    pub config: OpenAiConfig,
    http: Transport,
    pub queue: SlotQueue,
    pub accounting: Accounting,
    held: Mutex<HashMap<u32, HeldSlot>>,
    next_slot_id: AtomicU32,
    shared: Option<Arc<SharedLimits>>,
}

/// Where a call's first attempt stands in the queue: a ticket still waiting, or a place already
/// granted (a queued call whose turn came). Retries queue again.
pub enum Place {
    Waiting(Pending, Ask),
    Granted(Slot, Ask),
}

/// What a request holds while its response is read: its place in this process's queue (none on
/// a slot `executeRequest` holds) and its lease under the shared limits (with Redis).
pub struct Held {
    pub slot: Option<Slot>,
    pub lease: Option<SharedLease>,
}

/// One attempt's outcome, before the retry decision.
enum Attempt {
    /// A 2xx response; its body is still to be read.
    Success(Response<Incoming>, Option<SharedLease>),
    Failed {
        error: ApiError,
        retryable: bool,
        wait: Option<Duration>,
        /// The server's answer, when there was one: what the caller gets if it is the last.
        refusal: Option<Answer>,
    },
}

/// A request's final response.
pub enum Answer {
    /// 2xx: the head is in, the body unread, and what the request holds goes with it.
    Success(Response<Incoming>, Held),
    /// The last refusal after the retries, its body read.
    Refused {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
}

impl OpenAiPool {
    pub fn new(config: OpenAiConfig) -> Result<Self, crate::error::PoolError> {
        // As many connections as requests may be in flight: a slot always finds one.
        let http = Transport::new(TransportOptions {
            max_connections: config.max_concurrent_requests,
            connection_wait: config.timeout,
            idle_timeout: Duration::from_secs(90),
        });
        let shared = match &config.shared {
            Some(shared) => Some(
                SharedLimits::new(shared.options(&config))
                    .map_err(crate::error::PoolError::InvalidConfig)?,
            ),
            None => None,
        };
        Ok(OpenAiPool {
            shared,
            queue: SlotQueue::new(config.limits()),
            config,
            http,
            accounting: Accounting::default(),
            held: Mutex::new(HashMap::new()),
            next_slot_id: AtomicU32::new(1),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<u32, HeldSlot>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a queue ticket now, in the caller's order (a full queue or a closed pool answers at
    /// once).
    pub fn enqueue(&self, ask: Ask) -> Result<Pending, ApiError> {
        self.queue
            .enqueue(ask)
            .map_err(|e| ApiError::from_queue(e, self.config.timeout))
    }

    /// Waits for a slot that `executeRequest`'s callback then uses for all its requests.
    /// `pending`: the ticket `enqueue` took when the call was made.
    pub async fn acquire_slot(
        &self,
        model: Option<String>,
        pending: Pending,
    ) -> Result<u32, ApiError> {
        let deadline = Instant::now() + self.config.timeout;
        let slot = pending
            .wait(deadline)
            .await
            .map_err(|e| ApiError::from_queue(e, self.config.timeout))?;
        let id = self.next_slot_id.fetch_add(1, Ordering::Relaxed);
        self.held().insert(
            id,
            HeldSlot {
                slot,
                deadline,
                model,
            },
        );
        Ok(id)
    }

    /// Requests that ran under the local limits because Redis could not be reached.
    pub fn shared_limit_fallbacks(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| s.fallbacks())
    }

    /// TCP connections opened so far (never more than `maxConcurrentRequests` open at once).
    pub fn connections_opened(&self) -> u64 {
        self.http.connections_opened()
    }

    pub fn release_slot(&self, id: u32) {
        self.held().remove(&id);
    }

    /// A queued call that never got a place (timed out in the queue, or the pool closed, or its
    /// caller aborted it): counted as the failed call it is.
    pub fn count_unqueued_failure(&self, submitted: Instant) {
        self.accounting
            .outcomes
            .record(false, submitted.elapsed().as_secs_f64() * 1000.0);
    }

    /// Where a call may run until, and the model a held slot was taken for.
    pub(super) fn call_bounds(
        &self,
        started: Instant,
        held_slot: Option<u32>,
    ) -> Result<(Instant, Option<String>), ApiError> {
        match held_slot {
            Some(id) => match self.held().get(&id) {
                Some(held) => Ok((held.deadline, held.model.clone())),
                None => Err(ApiError::local(
                    "APIUserAbortError",
                    crate::error::Code::SlotReleased,
                    "this client belonged to an executeRequest callback that has finished",
                )),
            },
            None => Ok((started + self.config.timeout, None)),
        }
    }

    /// Counts the call against its model: the one the caller names (multipart bodies name it in
    /// a form field, which JS reads), else the JSON body's, else the one `executeRequest` was
    /// given.
    pub(super) fn count_model(&self, model: Option<String>, held_model: Option<String>) {
        let model = model.or(held_model);
        if let Some(model) = model {
            self.accounting.count_model(&model);
        }
    }

    /// What a request asks of the queue: its priority and, when a token budget is set, its
    /// estimated tokens.
    pub fn ask(&self, path: &str, body: Option<&Value>, priority: Priority) -> Ask {
        let tokens = match (self.config.tokens_per_minute, body) {
            (Some(_), Some(body)) => super::tokens::estimate(path, body),
            _ => 0,
        };
        Ask { priority, tokens }
    }

    /// A response's `usage` replaces its estimate in the token budget (a slot held by
    /// `executeRequest` adds each of its requests' usage).
    pub(super) fn count_usage(&self, held: &Held, held_slot: Option<u32>, tokens: u64) {
        if let Some(lease) = &held.lease {
            lease.set_tokens(tokens);
        }
        match (held.slot.as_ref(), held_slot) {
            (Some(slot), _) => slot.set_tokens(tokens),
            (None, Some(id)) => {
                if let Some(held) = self.held().get(&id) {
                    held.slot.add_tokens(tokens);
                }
            }
            (None, None) => {}
        }
    }

    /// One request of a JS `fetch` (the SDK's): queue (or a held slot), attempts with retries,
    /// accounting. The answer is the response as the server gave it, a refusal included (the
    /// SDK builds its own error from it); a stream's body is handed over as it arrives.
    #[allow(clippy::too_many_arguments)]
    pub async fn fetch(
        self: &Arc<Self>,
        outgoing: Outgoing,
        model: Option<String>,
        held_slot: Option<u32>,
        place: Option<Place>,
        submitted: Instant,
    ) -> Result<FetchReply, ApiError> {
        let (deadline, held_model) = self.call_bounds(submitted, held_slot)?;
        self.count_model(model, held_model);
        let answer = self
            .send_with_retries(&outgoing, held_slot, place, deadline)
            .await;
        let record = |ok: bool| {
            let ms = submitted.elapsed().as_secs_f64() * 1000.0;
            self.accounting.outcomes.record(ok, ms);
        };
        let (response, held) = match answer {
            Err(error) => {
                record(false);
                return Err(error);
            }
            Ok(Answer::Refused {
                status,
                headers,
                body,
            }) => {
                record(false);
                let kind = body_kind(&headers);
                return Ok(FetchReply::Whole {
                    head: head_json(status, &headers),
                    body,
                    kind,
                });
            }
            Ok(Answer::Success(response, held)) => (response, held),
        };
        let head = head_json(response.status().as_u16(), response.headers());
        let kind = body_kind(response.headers());
        if kind == BodyKind::Stream {
            let stream = self.byte_stream(response, held, held_slot, submitted);
            return Ok(FetchReply::Stream { head, stream });
        }
        // A body that breaks off after the headers is lost: report it, do not resend.
        let body = match self.read_bytes(response, deadline).await {
            Ok(body) => body,
            Err(error) => {
                record(false);
                return Err(error);
            }
        };
        let tokens = match kind {
            BodyKind::Text => body_tokens(&body),
            _ => Err(super::usage::NotJson),
        };
        let blank = body.iter().all(u8::is_ascii_whitespace);
        if tokens.is_err() && asks_for_json(&outgoing) && !blank {
            record(false);
            return Err(not_json(&head));
        }
        if let Ok(Some(tokens)) = tokens {
            self.accounting.add_tokens(tokens);
            self.count_usage(&held, held_slot, tokens);
        }
        record(true);
        Ok(FetchReply::Whole { head, body, kind })
    }

    /// A streamed body: its usage is counted as it passes, the call when it ends, and what the
    /// request holds (its slot, its lease) is freed then, or when the stream is dropped.
    fn byte_stream(
        self: &Arc<Self>,
        response: Response<Incoming>,
        held: Held,
        held_slot: Option<u32>,
        submitted: Instant,
    ) -> ByteStream {
        let scanner = Arc::new(Mutex::new(UsageScanner::default()));
        let seen = scanner.clone();
        let observe = Box::new(move |chunk: &[u8]| {
            seen.lock().unwrap_or_else(|p| p.into_inner()).feed(chunk);
        });
        let pool = self.clone();
        let on_end = Box::new(move |completed: bool| {
            let tokens = scanner.lock().unwrap_or_else(|p| p.into_inner()).tokens();
            if let Some(tokens) = tokens {
                pool.accounting.add_tokens(tokens);
                pool.count_usage(&held, held_slot, tokens);
            }
            let ms = submitted.elapsed().as_secs_f64() * 1000.0;
            pool.accounting.outcomes.record(completed, ms);
            drop(held);
        });
        ByteStream::new(
            response.into_body(),
            self.config.request_timeout,
            Box::new(()),
            Some(observe),
            Some(on_end),
        )
    }

    /// Queue, attempts and retries until a response is final: a 2xx one (its body unread, with
    /// the place it holds, so a stream keeps it while it flows) or the last refusal, read.
    pub(super) async fn send_with_retries(
        &self,
        outgoing: &Outgoing,
        held_slot: Option<u32>,
        place: Option<Place>,
        deadline: Instant,
    ) -> Result<Answer, ApiError> {
        let slot_held = held_slot.is_some();
        let since = SystemTime::now();
        // The first attempt uses the place taken at the call; a retry queues again.
        let ask = match &place {
            Some(Place::Waiting(_, ask) | Place::Granted(_, ask)) => *ask,
            None => Ask::default(),
        };
        let mut first = place;
        let mut retry = 0u32;
        loop {
            let slot = if slot_held {
                None
            } else {
                let pending = match first.take() {
                    Some(Place::Granted(slot, _)) => Ok(slot),
                    Some(Place::Waiting(pending, _)) => Err(pending),
                    None => Err(self.enqueue(ask)?),
                };
                Some(match pending {
                    Ok(slot) => slot,
                    Err(pending) => pending
                        .wait(deadline)
                        .await
                        .map_err(|e| ApiError::from_queue(e, self.config.timeout))?,
                })
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ApiError::timeout(format!(
                    "request timed out after {} ms",
                    self.config.timeout.as_millis()
                )));
            }
            let timeout = self.config.request_timeout.min(remaining);
            let (error, retryable, wait, refusal) =
                match self.attempt(outgoing, timeout, (since, ask.tokens)).await {
                    Attempt::Success(response, lease) => {
                        return Ok(Answer::Success(response, Held { slot, lease }))
                    }
                    Attempt::Failed {
                        error,
                        retryable,
                        wait,
                        refusal,
                    } => (error, retryable, wait, refusal),
                };
            // Backing off must not hold a place others could use.
            drop(slot);
            let wait =
                wait.unwrap_or_else(|| backoff(self.config.retry_delay, retry, fastrand::f64()));
            let last =
                !retryable || retry >= self.config.max_retries || Instant::now() + wait >= deadline;
            if last {
                return match refusal {
                    Some(refusal) => Ok(refusal),
                    None => Err(error),
                };
            }
            tokio::time::sleep(wait).await;
            retry += 1;
            self.accounting.count_retry();
        }
    }

    /// A reply body, read by `deadline` (the request's own timeout bounds it too).
    async fn read_bytes(
        &self,
        response: Response<Incoming>,
        deadline: Instant,
    ) -> Result<Bytes, ApiError> {
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .min(self.config.request_timeout);
        match tokio::time::timeout(limit, read_body(response.into_body(), MAX_BODY_BYTES)).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(err)) => Err(connection_error(&err)),
            Err(_) => Err(timed_out(limit)),
        }
    }

    /// The headers the pool adds where the caller gave none: the API key, organization and
    /// project of its configuration.
    fn default_headers(&self) -> Vec<(&'static str, String)> {
        let mut extra = Vec::with_capacity(3);
        if let Some(key) = &self.config.api_key {
            extra.push(("authorization", format!("Bearer {key}")));
        }
        if let Some(org) = &self.config.organization {
            extra.push(("openai-organization", org.clone()));
        }
        if let Some(project) = &self.config.project {
            extra.push(("openai-project", project.clone()));
        }
        extra
    }

    async fn attempt(
        &self,
        outgoing: &Outgoing,
        timeout: Duration,
        (since, tokens): (SystemTime, u64),
    ) -> Attempt {
        let request = match outgoing.to_request(&self.default_headers()) {
            Ok(request) => request,
            Err(message) => {
                return Attempt::Failed {
                    error: ApiError::local(
                        "APIConnectionError",
                        crate::error::Code::InvalidArgument,
                        message,
                    ),
                    retryable: false,
                    wait: None,
                    refusal: None,
                }
            }
        };
        // Under shared limits, a lease for as long as the response is read (bounded by the
        // attempt's timeout: a wait for it is part of the attempt).
        let started = Instant::now();
        let lease = match &self.shared {
            Some(shared) => {
                match tokio::time::timeout(timeout, shared.lease(since, tokens)).await {
                    Ok(lease) => Some(lease),
                    Err(_) => return transport_failure(timed_out(timeout)),
                }
            }
            None => None,
        };
        let timeout = timeout.saturating_sub(started.elapsed());
        let response = match tokio::time::timeout(timeout, self.http.send(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => return transport_failure(connection_error(&err)),
            Err(_) => return transport_failure(timed_out(timeout)),
        };
        let status = response.status().as_u16();
        let exhausted = {
            let header = |name: &str| header_value(response.headers(), name);
            self.accounting.update_rate_limit(&header);
            super::ratelimit::exhausted_for(&header)
        };
        // An answer (whatever it says) ends a probe after a capped pause; a new pause below
        // starts the next.
        self.queue.answered();
        // The API says a budget is spent: nobody sends until it resets (not only this caller).
        if let Some(reset) = exhausted {
            self.pause(reset).await;
        }
        if (200..300).contains(&status) {
            return Attempt::Success(response, lease);
        }
        let headers = response.headers().clone();
        let header = |name: &str| header_value(&headers, name);
        // Read from the headers alone, so that the pause is in place before anyone (a reader
        // of the stats included) hears of the 429.
        let wait = retry_after(&header, SystemTime::now());
        if status == 429 {
            if let Some(wait) = wait {
                // A wait cut to the cap may end before the budget is back: one request probes.
                let probe = wait >= super::retry::MAX_RETRY_AFTER;
                self.pause(Pause { wait, probe }).await;
            }
            self.accounting.count_rate_limited();
        }
        let body = tokio::time::timeout(timeout, read_body(response.into_body(), MAX_BODY_BYTES))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let error = ApiError::from_response(
            status,
            &String::from_utf8_lossy(&body),
            header("x-request-id"),
        );
        let retryable = should_retry(&Failure::Status {
            status,
            header: &header,
            error_code: error.code.as_deref(),
        });
        Attempt::Failed {
            wait,
            error,
            retryable,
            refusal: Some(Answer::Refused {
                status,
                headers,
                body,
            }),
        }
    }

    /// Nobody sends for the pause's wait: this process, and every other one under the shared
    /// limits; then, for a capped pause, one request of this process first.
    async fn pause(&self, pause: Pause) {
        self.queue
            .pause_until(Instant::now() + pause.wait, pause.probe);
        if let Some(shared) = &self.shared {
            shared.pause_for(pause.wait).await;
        }
    }

    /// Lists models within a short deadline; never fails, reports what happened.
    pub async fn health_check(&self) -> (bool, String, Option<f64>) {
        let started = Instant::now();
        let deadline = started + HEALTH_DEADLINE.min(self.config.timeout);
        let slot = match self.queue.acquire(Ask::default(), deadline).await {
            Ok(slot) => slot,
            Err(e) => {
                return (
                    false,
                    format!(
                        "OpenAI unhealthy: {}",
                        ApiError::from_queue(e, HEALTH_DEADLINE).message
                    ),
                    None,
                )
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let models = Outgoing::new(
            "GET",
            format!("{}/models", self.config.base_url),
            "",
            Bytes::new(),
        );
        let outcome = match models {
            Err(message) => Err(message),
            Ok(models) => match self
                .attempt(&models, remaining, (SystemTime::now(), 0))
                .await
            {
                Attempt::Success(response, _lease) => self
                    .read_bytes(response, deadline)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.message),
                Attempt::Failed { error, .. } => Err(error.message),
            },
        };
        drop(slot);
        match outcome {
            Ok(()) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                (
                    true,
                    format!("OpenAI healthy (response time: {}ms)", ms.round()),
                    Some(ms),
                )
            }
            Err(message) => (false, format!("OpenAI unhealthy: {message}"), None),
        }
    }

    pub async fn close(&self) {
        if let Some(shared) = &self.shared {
            shared.close();
        }
        self.queue.close(Instant::now() + self.config.timeout).await;
    }

    /// `close` for a pool `initialize()` replaced: the calls it accepted still run.
    pub async fn retire(&self) {
        self.queue
            .retire(Instant::now() + self.config.timeout)
            .await;
        if let Some(shared) = &self.shared {
            shared.close();
        }
    }
}

/// Whether the request wants JSON back (`Accept: application/json`, as the SDK sends for every
/// JSON endpoint; binary ones ask for `application/octet-stream`).
fn asks_for_json(outgoing: &Outgoing) -> bool {
    outgoing
        .header("accept")
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("application/json"))
}

/// A success whose body is not the JSON asked for (a proxy's HTML page, a cut body): an error,
/// not a string handed on as if it were the answer.
fn not_json(head: &str) -> ApiError {
    let content_type = head
        .split("[\"content-type\",\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("not given");
    let mut error = ApiError::local(
        "APIError",
        crate::error::Code::InvalidResponse,
        format!("the API answered with a body that is not JSON (content-type {content_type})"),
    );
    error.status = Some(200);
    error
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub(super) fn timed_out(timeout: Duration) -> ApiError {
    ApiError::timeout(format!(
        "request timed out after {} ms",
        timeout.as_millis()
    ))
}

/// A transport failure as openai-node reports it. The text comes from `crate::http::describe`,
/// which never holds a header, so never the API key.
pub(super) fn connection_error(detail: &str) -> ApiError {
    ApiError::local(
        "APIConnectionError",
        crate::error::Code::ConnectionFailed,
        format!("connection error: {detail}"),
    )
}

fn transport_failure(error: ApiError) -> Attempt {
    Attempt::Failed {
        error,
        retryable: true,
        wait: None,
        refusal: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_named_as_openai_node_names_them() {
        let body = r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let err = ApiError::from_response(429, body, Some("req_1".into()));
        assert_eq!(err.name, "RateLimitError");
        assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(err.error_type.as_deref(), Some("requests"));
        assert_eq!(err.param, None);
        assert_eq!(err.request_id.as_deref(), Some("req_1"));
        assert_eq!(
            ApiError::from_response(401, "{}", None).name,
            "AuthenticationError"
        );
        assert_eq!(
            ApiError::from_response(503, "oops", None).message,
            "503 status code"
        );
    }
}

//! The OpenAI pool's HTTP side: one keep-alive transport (`crate::http`, its connections capped
//! at `maxConcurrentRequests`), every request through the queue, retries in this one layer, and
//! the accounting. Bodies go out and come back as the API's JSON text.

// ApiError travels only on the failure path, where its size costs nothing worth a Box.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;

use crate::http::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use crate::http::{read_body, Method, Request, Response, Transport, TransportOptions};
use serde::Serialize;
use serde_json::Value;

use super::accounting::{total_tokens, Accounting};
use super::config::OpenAiConfig;
use super::queue::{Ask, Pending, Priority, QueueError, Slot, SlotQueue};
use super::ratelimit::Pause;
use super::retry::{backoff, retry_after, should_retry, Failure};
use super::shared::{SharedLease, SharedLimits};

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
    pub(super) fn local(name: &'static str, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            name,
            message: message.into(),
            status: None,
            code: Some(code.to_string()),
            error_type: None,
            param: None,
            request_id: None,
        }
    }

    pub(super) fn timeout(message: impl Into<String>) -> Self {
        ApiError::local("APITimeoutError", "TIMEOUT", message)
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
                "QUEUE_FULL",
                "the request queue is full (maxQueueSize); try again later",
            ),
            QueueError::Closed => ApiError::local(
                "PoolClosedError",
                "POOL_CLOSED",
                "the OpenAI pool is closed",
            ),
            QueueError::TimedOut => ApiError::timeout(format!(
                "request timed out after {} ms (waiting for a free slot)",
                timeout.as_millis()
            )),
        }
    }

    /// An `{"error": {...}}` event inside a stream (the API reports mid-stream failures so).
    pub(super) fn from_stream_error(error: &Value) -> Self {
        let text = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_string);
        ApiError {
            name: "APIError",
            message: text("message").unwrap_or_else(|| "the stream reported an error".into()),
            status: None,
            code: text("code"),
            error_type: text("type"),
            param: text("param"),
            request_id: None,
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

    /// A queued call that never got a place (timed out in the queue, or the pool closed):
    /// counted as the failed call it is.
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
                    "SLOT_RELEASED",
                    "this client belonged to an executeRequest callback that has finished",
                )),
            },
            None => Ok((started + self.config.timeout, None)),
        }
    }

    /// Counts the call against its model: the one the caller names (the JS client passes the
    /// body's `model`, so the body need not be parsed again here), else the body's, else the one
    /// `executeRequest` was given.
    pub(super) fn count_model(
        &self,
        body: Option<&str>,
        model: Option<String>,
        held_model: Option<String>,
    ) {
        let model = model
            .or_else(|| {
                body.and_then(|b| serde_json::from_str::<Value>(b).ok())
                    .and_then(|v| v.get("model").and_then(Value::as_str).map(str::to_string))
            })
            .or(held_model);
        if let Some(model) = model {
            self.accounting.count_model(&model);
        }
    }

    /// One API call: queue, attempts with retries, accounting. Resolves to the JSON reply
    /// `{"status":…,"requestId":…,"body":<the API's JSON>}`.
    #[allow(clippy::too_many_arguments)]
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        model: Option<String>,
        held_slot: Option<u32>,
        place: Option<Place>,
        submitted: Instant,
    ) -> Result<String, ApiError> {
        let started = submitted;
        let (deadline, held_model) = self.call_bounds(started, held_slot)?;
        self.count_model(body.as_deref(), model, held_model);
        let result = async {
            let (response, held) = self
                .send_with_retries(
                    method.clone(),
                    path,
                    body.as_deref(),
                    held_slot,
                    place,
                    deadline,
                )
                .await?;
            let request_id = header_value(response.headers(), "x-request-id");
            let content_type = header_value(response.headers(), "content-type");
            // A body that breaks off after the headers is lost: report it, do not resend.
            let text = self.read_text(response, deadline).await?;
            check_json_body(&text, content_type.as_deref(), request_id.as_deref())?;
            if let Some(tokens) = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| total_tokens(&v))
            {
                self.accounting.add_tokens(tokens);
                self.count_usage(&held, held_slot, tokens);
            }
            Ok(reply_json(200, request_id.as_deref(), &text))
        }
        .await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.accounting.outcomes.record(result.is_ok(), elapsed_ms);
        result
    }

    /// What a request asks of the queue: its priority and, when a token budget is set, its
    /// estimated tokens.
    pub(super) fn ask(&self, path: &str, body: Option<&str>, priority: Priority) -> Ask {
        let tokens = match (self.config.tokens_per_minute, body) {
            (Some(_), Some(body)) => serde_json::from_str::<Value>(body)
                .map(|v| super::tokens::estimate(path, &v))
                .unwrap_or(0),
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

    /// Queue, attempts and retries until a 2xx response's headers arrive. Returns that response
    /// (its body unread) with the slot it holds, so a stream can keep the slot while it flows.
    pub(super) async fn send_with_retries(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        held_slot: Option<u32>,
        place: Option<Place>,
        deadline: Instant,
    ) -> Result<(Response<Incoming>, Held), ApiError> {
        let slot_held = held_slot.is_some();
        let since = SystemTime::now();
        // The first attempt uses the place taken at the call; a retry queues again.
        let ask = match &place {
            Some(Place::Waiting(_, ask) | Place::Granted(_, ask)) => *ask,
            None => Ask::default(),
        };
        let mut first = place;
        let url = format!("{}/{}", self.config.base_url, path.trim_start_matches('/'));
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
            let (error, retryable, wait) = match self
                .attempt(
                    method.clone(),
                    &url,
                    body,
                    self.config.request_timeout.min(remaining),
                    (since, ask.tokens),
                )
                .await
            {
                Attempt::Success(response, lease) => return Ok((response, Held { slot, lease })),
                Attempt::Failed {
                    error,
                    retryable,
                    wait,
                } => (error, retryable, wait),
            };
            // Backing off must not hold a place others could use.
            drop(slot);
            if !retryable || retry >= self.config.max_retries {
                return Err(error);
            }
            let wait =
                wait.unwrap_or_else(|| backoff(self.config.retry_delay, retry, fastrand::f64()));
            if Instant::now() + wait >= deadline {
                return Err(error);
            }
            tokio::time::sleep(wait).await;
            retry += 1;
            self.accounting.count_retry();
        }
    }

    /// A reply body as text, read by `deadline` (the request's own timeout bounds it too).
    async fn read_text(
        &self,
        response: Response<Incoming>,
        deadline: Instant,
    ) -> Result<String, ApiError> {
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .min(self.config.request_timeout);
        match tokio::time::timeout(limit, read_body(response.into_body(), MAX_BODY_BYTES)).await {
            Ok(Ok(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(Err(err)) => Err(connection_error(&err)),
            Err(_) => Err(timed_out(limit)),
        }
    }

    fn build_request(
        &self,
        method: Method,
        url: &str,
        body: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, ApiError> {
        let mut request = Request::builder().method(method).uri(url);
        if let Some(key) = &self.config.api_key {
            request = request.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        if let Some(org) = &self.config.organization {
            request = request.header("OpenAI-Organization", org);
        }
        if let Some(project) = &self.config.project {
            request = request.header("OpenAI-Project", project);
        }
        let body = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::copy_from_slice(body.as_bytes()))
            }
            None => Full::new(Bytes::new()),
        };
        // The builder's error names the part that failed (a header value, the URI), never a value.
        request.body(body).map_err(|e| {
            ApiError::local(
                "APIConnectionError",
                "INVALID_REQUEST",
                format!("the request could not be built: {e}"),
            )
        })
    }

    async fn attempt(
        &self,
        method: Method,
        url: &str,
        body: Option<&str>,
        timeout: Duration,
        (since, tokens): (SystemTime, u64),
    ) -> Attempt {
        let request = match self.build_request(method, url, body) {
            Ok(request) => request,
            Err(error) => {
                return Attempt::Failed {
                    error,
                    retryable: false,
                    wait: None,
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
        let headers = response.headers().clone();
        let header = |name: &str| header_value(&headers, name);
        self.accounting.update_rate_limit(&header);
        // An answer (whatever it says) ends a probe after a capped pause; a new pause below
        // starts the next.
        self.queue.answered();
        // The API says a budget is spent: nobody sends until it resets (not only this caller).
        if let Some(reset) = super::ratelimit::exhausted_for(&header) {
            self.pause(reset).await;
        }
        if (200..300).contains(&status) {
            return Attempt::Success(response, lease);
        }
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
        let text = tokio::time::timeout(timeout, read_body(response.into_body(), MAX_BODY_BYTES))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let error = ApiError::from_response(status, &text, header("x-request-id"));
        let retryable = should_retry(&Failure::Status {
            status,
            header: &header,
            error_code: error.code.as_deref(),
        });
        Attempt::Failed {
            wait,
            error,
            retryable,
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
        let url = format!("{}/models", self.config.base_url);
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
        let outcome = match self
            .attempt(Method::GET, &url, None, remaining, (SystemTime::now(), 0))
            .await
        {
            Attempt::Success(response, _lease) => {
                self.read_text(response, deadline).await.map(|_| ())
            }
            Attempt::Failed { error, .. } => Err(error),
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
            Err(error) => (false, format!("OpenAI unhealthy: {}", error.message), None),
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
        "CONNECTION_ERROR",
        format!("connection error: {detail}"),
    )
}

fn transport_failure(error: ApiError) -> Attempt {
    Attempt::Failed {
        error,
        retryable: true,
        wait: None,
    }
}

/// The API answers JSON; a success whose body is something else (a proxy's HTML page, a cut
/// body) is an error, not a string handed on as if it were the answer.
fn check_json_body(
    body: &str,
    content_type: Option<&str>,
    request_id: Option<&str>,
) -> Result<(), ApiError> {
    if body.trim().is_empty() || serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok() {
        return Ok(());
    }
    let mut error = ApiError::local(
        "APIError",
        "INVALID_RESPONSE",
        format!(
            "the API answered with a body that is not JSON (content-type {})",
            content_type.unwrap_or("not given")
        ),
    );
    error.status = Some(200);
    error.request_id = request_id.map(str::to_string);
    Err(error)
}

/// `{"status":200,"requestId":"…","body":<json>}` without re-serializing the body (checked by
/// `check_json_body`; an empty one is `null`).
fn reply_json(status: u16, request_id: Option<&str>, body: &str) -> String {
    let body = if body.trim().is_empty() { "null" } else { body };
    format!(
        "{{\"status\":{status},\"requestId\":{},\"body\":{body}}}",
        request_id.map_or("null".to_string(), |id| Value::String(id.to_string())
            .to_string())
    )
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

    #[test]
    fn replies_keep_the_body_as_json() {
        assert_eq!(
            reply_json(200, Some("r"), r#"{"a":1}"#),
            r#"{"status":200,"requestId":"r","body":{"a":1}}"#
        );
        assert_eq!(
            reply_json(200, None, ""),
            r#"{"status":200,"requestId":null,"body":null}"#
        );
        let err =
            check_json_body("<html>bad gateway</html>", Some("text/html"), Some("r1")).unwrap_err();
        assert_eq!(err.code.as_deref(), Some("INVALID_RESPONSE"));
        assert_eq!(err.status, Some(200));
        assert!(err.message.contains("text/html"), "{}", err.message);
        assert!(check_json_body(r#"{"a":1}"#, None, None).is_ok());
    }
}

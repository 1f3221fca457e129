//! The OpenAI pool's HTTP side: one reqwest client, every request through the queue, retries in
//! this one layer, and the accounting. Bodies go out and come back as the API's JSON text.

// ApiError travels only on the failure path, where its size costs nothing worth a Box.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use serde_json::Value;

use super::accounting::{total_tokens, Accounting};
use super::config::OpenAiConfig;
use super::queue::{QueueError, Slot, SlotQueue};
use super::retry::{backoff, retry_after, should_retry, Failure};

/// How long `healthCheck()` waits for the model list.
const HEALTH_DEADLINE: Duration = Duration::from_secs(5);

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
    fn from_queue(err: QueueError, timeout: Duration) -> Self {
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
    _slot: Slot,
    deadline: Instant,
    model: Option<String>,
}

pub struct OpenAiPool {
    pub config: OpenAiConfig,
    http: reqwest::Client,
    pub queue: SlotQueue,
    pub accounting: Accounting,
    held: Mutex<HashMap<u32, HeldSlot>>,
    next_slot_id: AtomicU32,
}

/// One attempt's outcome, before the retry decision.
enum Attempt {
    /// A 2xx response; its body is still to be read.
    Success(reqwest::Response),
    Failed {
        error: ApiError,
        retryable: bool,
        wait: Option<Duration>,
    },
}

impl OpenAiPool {
    pub fn new(config: OpenAiConfig) -> Result<Self, crate::error::PoolError> {
        // reqwest is built without a bundled crypto provider; use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            // hyper returns a connection to its idle pool from its own task, a moment after the
            // body is read; a waiter given the slot in that moment opens another connection. An
            // idle pool of twice the slots keeps such extras for reuse instead of closing them and
            // racing again (measured: 292 connections over a bench run at 1×, 11 at 2×).
            .pool_max_idle_per_host(config.max_concurrent_requests * 2)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| crate::error::PoolError::Internal(format!("HTTP client: {e}")))?;
        Ok(OpenAiPool {
            queue: SlotQueue::new(config.max_concurrent_requests, config.max_queue_size),
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

    /// Waits for a slot that `executeRequest`'s callback then uses for all its requests.
    pub async fn acquire_slot(&self, model: Option<String>) -> Result<u32, ApiError> {
        let deadline = Instant::now() + self.config.timeout;
        let slot = self
            .queue
            .acquire(deadline)
            .await
            .map_err(|e| ApiError::from_queue(e, self.config.timeout))?;
        let id = self.next_slot_id.fetch_add(1, Ordering::Relaxed);
        self.held().insert(
            id,
            HeldSlot {
                _slot: slot,
                deadline,
                model,
            },
        );
        Ok(id)
    }

    pub fn release_slot(&self, id: u32) {
        self.held().remove(&id);
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
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        model: Option<String>,
        held_slot: Option<u32>,
    ) -> Result<String, ApiError> {
        let started = Instant::now();
        let (deadline, held_model) = self.call_bounds(started, held_slot)?;
        self.count_model(body.as_deref(), model, held_model);
        let result = async {
            let (response, _slot) = self
                .send_with_retries(
                    method.clone(),
                    path,
                    body.as_deref(),
                    held_slot.is_some(),
                    deadline,
                )
                .await?;
            let request_id = header_value(response.headers(), "x-request-id");
            // A body that breaks off after the headers is lost: report it, do not resend.
            let text = response
                .text()
                .await
                .map_err(|err| transport_error(&err, self.config.request_timeout))?;
            // hyper hands the connection back to its idle pool from its own task once the body
            // is done; let that run before the slot goes to the next caller, so the next request
            // reuses this connection instead of opening another.
            tokio::task::yield_now().await;
            if let Some(tokens) = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| total_tokens(&v))
            {
                self.accounting.add_tokens(tokens);
            }
            Ok(reply_json(200, request_id.as_deref(), &text))
        }
        .await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.accounting.outcomes.record(result.is_ok(), elapsed_ms);
        result
    }

    /// Queue, attempts and retries until a 2xx response's headers arrive. Returns that response
    /// (its body unread) with the slot it holds, so a stream can keep the slot while it flows.
    pub(super) async fn send_with_retries(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        slot_held: bool,
        deadline: Instant,
    ) -> Result<(reqwest::Response, Option<Slot>), ApiError> {
        let url = format!("{}/{}", self.config.base_url, path.trim_start_matches('/'));
        let mut retry = 0u32;
        loop {
            let slot = if slot_held {
                None
            } else {
                Some(
                    self.queue
                        .acquire(deadline)
                        .await
                        .map_err(|e| ApiError::from_queue(e, self.config.timeout))?,
                )
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
                )
                .await
            {
                Attempt::Success(response) => return Ok((response, slot)),
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

    async fn attempt(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> Attempt {
        let mut request = self.http.request(method, url).timeout(timeout);
        if let Some(key) = &self.config.api_key {
            request = request.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        if let Some(org) = &self.config.organization {
            request = request.header("OpenAI-Organization", org);
        }
        if let Some(project) = &self.config.project {
            request = request.header("OpenAI-Project", project);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => return transport_failure(&err, timeout),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let header = |name: &str| header_value(&headers, name);
        self.accounting.update_rate_limit(&header);
        if (200..300).contains(&status) {
            return Attempt::Success(response);
        }
        if status == 429 {
            self.accounting.count_rate_limited();
        }
        let text = response.text().await.unwrap_or_default();
        let error = ApiError::from_response(status, &text, header("x-request-id"));
        let retryable = should_retry(&Failure::Status {
            status,
            header: &header,
            error_code: error.code.as_deref(),
        });
        Attempt::Failed {
            wait: retry_after(&header, SystemTime::now()),
            error,
            retryable,
        }
    }

    /// Lists models within a short deadline; never fails, reports what happened.
    pub async fn health_check(&self) -> (bool, String, Option<f64>) {
        let started = Instant::now();
        let deadline = started + HEALTH_DEADLINE.min(self.config.timeout);
        let url = format!("{}/models", self.config.base_url);
        let slot = match self.queue.acquire(deadline).await {
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
            .attempt(reqwest::Method::GET, &url, None, remaining)
            .await
        {
            Attempt::Success(response) => response
                .text()
                .await
                .map(|_| ())
                .map_err(|e| transport_error(&e, remaining)),
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
        self.queue.close(Instant::now() + self.config.timeout).await;
    }
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub(super) fn transport_error(err: &reqwest::Error, timeout: Duration) -> ApiError {
    if err.is_timeout() {
        ApiError::timeout(format!(
            "request timed out after {} ms",
            timeout.as_millis()
        ))
    } else {
        // reqwest's text names the URL but never the Authorization header.
        ApiError::local(
            "APIConnectionError",
            "CONNECTION_ERROR",
            format!("connection error: {err}"),
        )
    }
}

fn transport_failure(err: &reqwest::Error, timeout: Duration) -> Attempt {
    Attempt::Failed {
        error: transport_error(err, timeout),
        retryable: true,
        wait: None,
    }
}

/// `{"status":200,"requestId":"…","body":<json>}` without re-serializing the body.
fn reply_json(status: u16, request_id: Option<&str>, body: &str) -> String {
    let body_is_json = serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok();
    let body = if body_is_json {
        body.to_string()
    } else {
        Value::String(body.to_string()).to_string()
    };
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
            reply_json(200, None, "plain"),
            r#"{"status":200,"requestId":null,"body":"plain"}"#
        );
    }
}

//! The napi surface of the OpenAI pool: a thin class over `client::OpenAiPool`.
//!
//! `lib/openai.js` wraps it in the seed's static `OpenAIPool` API and gives openai-node itself a
//! `fetch` that lands in `submitFetch`. Replies cross in batches (`crate::crossing`), stream
//! chunks as bytes; every entry point catches panics.

// ApiError travels only on the failure path, where its size costs nothing worth a Box.
#![allow(clippy::result_large_err)]

pub mod accounting;
pub mod client;
pub mod config;
pub mod queue;
pub mod ratelimit;
pub mod retry;
pub mod shared;
pub mod submit;
pub mod tokens;
pub mod usage;

use std::collections::HashMap;
use std::sync::Arc;

use futures::FutureExt;
use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use crate::error::PoolError;
use crate::streams::StreamRegistry;
use client::{ApiError, OpenAiPool};
use config::OpenAiConfig;

use crate::crossing::{CallDrain, DrainCallback, NativeReplies, Replies};

/// A native OpenAI pool. Created by `OpenAIPool.initialize()`; not for direct use.
#[napi]
pub struct NativeOpenAiPool {
    inner: Arc<OpenAiPool>,
    streams: Arc<StreamRegistry>,
    flights: Arc<crate::inflight::InFlight>,
    /// Replies of submitted requests, drained by JS in batches.
    replies: std::sync::OnceLock<Arc<Replies>>,
}

/// An id (of a held slot or an open stream), or the error that kept it from being made.
#[napi(object)]
pub struct NativeIdReply {
    pub id: Option<u32>,
    pub error: Option<NativeApiError>,
}

/// An `ApiError` as a typed object (openai-node's fields).
#[napi(object)]
pub struct NativeApiError {
    pub name: String,
    pub message: String,
    pub status: Option<u32>,
    pub code: Option<String>,
    #[napi(js_name = "type")]
    pub error_type: Option<String>,
    pub param: Option<String>,
    pub request_id: Option<String>,
}

impl NativeIdReply {
    fn failed(error: ApiError) -> Self {
        NativeIdReply {
            id: None,
            error: Some(NativeApiError {
                name: error.name.to_string(),
                message: error.message,
                status: error.status.map(u32::from),
                code: error.code,
                error_type: error.error_type,
                param: error.param,
                request_id: error.request_id,
            }),
        }
    }
}

/// `work`'s id, or its error; a panic becomes an error too, never crossing into Node.
async fn settle_id(
    work: impl std::future::Future<Output = Result<u32, ApiError>>,
) -> NativeIdReply {
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(Ok(id)) => NativeIdReply {
            id: Some(id),
            error: None,
        },
        Ok(Err(error)) => NativeIdReply::failed(error),
        Err(panic) => NativeIdReply::failed(ApiError::local(
            "APIError",
            crate::error::Code::Internal,
            PoolError::from_panic(panic).to_string(),
        )),
    }
}

/// `'high' | 'normal' | 'low'` (and fetch's own `'auto'`), normal when not given.
fn priority_of(name: Option<&str>) -> Result<queue::Priority, ApiError> {
    match name {
        None | Some("auto") => Ok(queue::Priority::Normal),
        Some(name) => queue::Priority::parse(name).ok_or_else(|| {
            ApiError::local(
                "APIError",
                crate::error::Code::InvalidArgument,
                format!("priority must be 'high', 'normal' or 'low', not '{name}'"),
            )
        }),
    }
}

#[napi(object)]
pub struct NativeOpenAiStats {
    pub total_requests: f64,
    pub active_requests: u32,
    pub successful_requests: f64,
    pub failed_requests: f64,
    pub rate_limited_requests: f64,
    pub average_response_time: f64,
    pub p50_response_time: f64,
    pub p95_response_time: f64,
    pub p99_response_time: f64,
    pub average_tokens_used: f64,
    pub total_tokens_used: f64,
    pub retries: f64,
    /// Requests that ran under this process's own limits because Redis could not be reached.
    pub shared_limit_fallbacks: f64,
    pub last_request_time: Option<f64>,
    pub requests_by_model: HashMap<String, u32>,
    /// The latest x-ratelimit-* readings.
    pub rate_limit: NativeRateLimit,
    /// Panics caught at the boundary in this process (each answered `INTERNAL`; each a bug).
    pub internal_errors: f64,
}

/// The latest `x-ratelimit-*` readings (resets in ms); each null until seen.
#[napi(object)]
pub struct NativeRateLimit {
    pub limit_requests: Option<f64>,
    pub remaining_requests: Option<f64>,
    pub reset_requests_ms: Option<f64>,
    pub limit_tokens: Option<f64>,
    pub remaining_tokens: Option<f64>,
    pub reset_tokens_ms: Option<f64>,
}

impl From<ratelimit::RateLimit> for NativeRateLimit {
    fn from(r: ratelimit::RateLimit) -> Self {
        NativeRateLimit {
            limit_requests: r.limit_requests,
            remaining_requests: r.remaining_requests,
            reset_requests_ms: r.reset_requests_ms,
            limit_tokens: r.limit_tokens,
            remaining_tokens: r.remaining_tokens,
            reset_tokens_ms: r.reset_tokens_ms,
        }
    }
}

#[napi(object)]
pub struct NativeQueueStatus {
    pub queue_length: u32,
    pub active_requests: u32,
    pub max_concurrent: u32,
    /// Callers waiting per priority.
    pub by_priority: NativeQueueByPriority,
    /// While a rate-limit pause the API announced runs: ms until it ends; else 0.
    pub paused_for_ms: f64,
}

#[napi(object)]
pub struct NativeQueueByPriority {
    pub high: u32,
    pub normal: u32,
    pub low: u32,
}

#[napi(object)]
pub struct NativeOpenAiConfig {
    pub max_concurrent_requests: u32,
    pub request_timeout: f64,
    pub max_retries: u32,
    pub retry_delay: f64,
    pub timeout: f64,
    #[napi(js_name = "baseURL")]
    pub base_url: String,
    pub organization: Option<String>,
    pub project: Option<String>,
    pub max_queue_size: Option<f64>,
    pub requests_per_minute: Option<f64>,
    pub tokens_per_minute: Option<f64>,
    pub rate_limit_window_ms: f64,
    pub priority_aging_ms: f64,
    /// Whether an API key is configured; the key itself is never shown.
    pub has_api_key: bool,
    /// The Redis key the limits are shared under; null without `redisUrl` (never shown).
    pub limit_key: Option<String>,
    pub lease_ms: Option<f64>,
    /// ms; 0 when off.
    pub leak_detection_threshold: f64,
}

#[napi(object)]
pub struct NativeOpenAiHealth {
    pub healthy: bool,
    pub message: String,
    pub response_time: Option<f64>,
}

#[napi]
impl NativeOpenAiPool {
    #[napi(constructor, catch_unwind)]
    pub fn new(config_json: String, env_json: String) -> napi::Result<Self, String> {
        crate::error::sync_boundary(|| {
            let config = OpenAiConfig::from_json(&config_json, &env_json)?;
            Ok(NativeOpenAiPool {
                inner: Arc::new(OpenAiPool::new(config)?),
                streams: Arc::default(),
                flights: Arc::default(),
                replies: std::sync::OnceLock::new(),
            })
        })
    }

    /// Registers the callback that is called (with no arguments) when replies are ready to
    /// `drain()`. Called once, right after construction.
    #[napi(catch_unwind)]
    pub fn on_complete(&self, callback: DrainCallback) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| {
            self.replies
                .set(Arc::new(Replies::new(Box::new(CallDrain(callback)))))
                .map_err(|_| {
                    napi::Error::new(
                        crate::error::Code::Internal.as_str().to_string(),
                        "onComplete was already called",
                    )
                })
        })
    }

    /// Every reply that arrived since the last drain.
    #[napi(catch_unwind)]
    pub fn drain(&self) -> NativeReplies {
        match self.replies.get() {
            Some(replies) => NativeReplies::from_parts(replies.drain()),
            None => NativeReplies::empty(),
        }
    }

    /// One `fetch` of the SDK through the queue (or the slot of an `executeRequest` callback):
    /// `headers` as `name\nvalue\n…`; the body as text (JSON) or bytes (multipart).
    /// Its answer arrives through `drain()` under `id`: `{"status":…,"headers":[…],"body":N}`
    /// (text), `…"buffer":N}` (bytes), `…"stream":S}` (read with `nextBytes(S)`), or
    /// `{"error":{…}}` for the pool's own refusals (QUEUE_FULL, POOL_CLOSED, TIMEOUT, ABORTED).
    /// The queue ticket is taken before this returns, and until its turn a fetch is only that
    /// ticket: no task, no promise in Rust.
    #[napi(
        catch_unwind,
        ts_args_type = "id: number, method: string, url: string, headers: string, bodyText?: string | null, bodyBytes?: Buffer | null, model?: string | null, slotId?: number | null, priority?: string | null"
    )]
    #[allow(clippy::too_many_arguments)]
    pub fn submit_fetch(
        &self,
        id: u32,
        method: String,
        url: String,
        headers: String,
        body_text: Option<String>,
        body_bytes: Option<napi::bindgen_prelude::Buffer>,
        model: Option<String>,
        slot_id: Option<u32>,
        priority: Option<String>,
    ) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| {
            let answerer = self.answerer()?;
            let submitted = std::time::Instant::now();
            // The model from a JSON body when JS did not name one (a multipart body's field);
            // the whole document only when a token budget needs its estimate.
            let model = model.or_else(|| body_text.as_deref().and_then(usage::request_model));
            let json = match (self.inner.config.tokens_per_minute, body_text.as_deref()) {
                (Some(_), Some(text)) => serde_json::from_str::<serde_json::Value>(text).ok(),
                _ => None,
            };
            let body = match (body_text, body_bytes) {
                (Some(text), _) => bytes::Bytes::from(text),
                (None, Some(bytes)) => bytes::Bytes::copy_from_slice(&bytes),
                (None, None) => bytes::Bytes::new(),
            };
            let call = crate::forward::Outgoing::new(&method, url, &headers, body)
                .map_err(|message| {
                    ApiError::local(
                        "APIConnectionError",
                        crate::error::Code::InvalidArgument,
                        message,
                    )
                })
                .and_then(|outgoing| {
                    Ok(submit::FetchCall {
                        id,
                        outgoing,
                        json,
                        model,
                        slot_id,
                        priority: priority_of(priority.as_deref())?,
                        submitted,
                    })
                });
            match call {
                Ok(call) => answerer.submit(call),
                Err(error) => answerer.replies.reply(id, &error.envelope()),
            }
            Ok(())
        })
    }

    /// The caller's `AbortSignal` fired for fetch `id`: a queued fetch leaves the queue, a
    /// running one is dropped and its slot freed; it is answered with `ABORTED`.
    #[napi(catch_unwind)]
    pub fn abort_fetch(&self, id: u32) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| {
            self.answerer()?.abort(id);
            Ok(())
        })
    }

    /// The next chunk of stream `streamId`: its bytes, `done` at the end, or the error that ended
    /// it (a stream left unread for `requestTimeout` was closed: the error says so).
    #[napi]
    pub async fn next_bytes(&self, stream_id: u32) -> crate::crossing::NativeChunk {
        let idle = self.inner.config.request_timeout;
        crate::streams::next_chunk(&self.streams, stream_id, idle)
            .await
            .into()
    }

    /// Ends a stream early: aborts its HTTP request and frees its slot now.
    #[napi]
    pub fn cancel_stream(&self, stream_id: u32) {
        self.streams.remove(stream_id);
    }

    /// Waits for a slot for an `executeRequest` callback; resolves to its id or the error. The
    /// queue ticket is taken before this returns.
    #[napi(ts_return_type = "Promise<NativeIdReply>")]
    pub fn acquire_slot<'env>(
        &self,
        env: &'env Env,
        model: Option<String>,
        priority: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, NativeIdReply>> {
        let pool = self.inner.clone();
        let early = priority_of(priority.as_deref()).and_then(|priority| {
            pool.enqueue(queue::Ask {
                priority,
                tokens: 0,
            })
        });
        env.spawn_future(async move {
            Ok(match early {
                Err(error) => NativeIdReply::failed(error),
                Ok(pending) => settle_id(pool.acquire_slot(model, pending)).await,
            })
        })
    }

    #[napi]
    pub fn release_slot(&self, slot_id: u32) {
        self.inner.release_slot(slot_id);
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> napi::Result<NativeOpenAiStats, String> {
        crate::error::sync_boundary(|| {
            Ok({
                let s = self.inner.accounting.snapshot();
                let (_, active, _) = self.inner.queue.status();
                let o = s.outcomes;
                NativeOpenAiStats {
                    total_requests: o.total as f64,
                    active_requests: active as u32,
                    successful_requests: o.successful as f64,
                    failed_requests: o.failed as f64,
                    rate_limited_requests: s.rate_limited as f64,
                    average_response_time: o.latency.average_ms,
                    p50_response_time: o.latency.p50_ms,
                    p95_response_time: o.latency.p95_ms,
                    p99_response_time: o.latency.p99_ms,
                    average_tokens_used: s.average_tokens,
                    total_tokens_used: s.tokens_total as f64,
                    retries: s.retries as f64,
                    shared_limit_fallbacks: self.inner.shared_limit_fallbacks() as f64,
                    last_request_time: o.last_at_ms.map(|ms| ms as f64),
                    requests_by_model: s.by_model.into_iter().map(|(k, v)| (k, v as u32)).collect(),
                    rate_limit: s.rate_limit.into(),
                    internal_errors: crate::error::panics_caught() as f64,
                }
            })
        })
    }

    #[napi(catch_unwind)]
    pub fn queue_status(&self) -> napi::Result<NativeQueueStatus, String> {
        crate::error::sync_boundary(|| {
            Ok({
                let queue = &self.inner.queue;
                let (waiting, active, max) = queue.status();
                let [high, normal, low] = queue.waiting_by_priority().map(|n| n as u32);
                NativeQueueStatus {
                    queue_length: waiting as u32,
                    active_requests: active as u32,
                    max_concurrent: max as u32,
                    by_priority: NativeQueueByPriority { high, normal, low },
                    paused_for_ms: queue.paused_until().map_or(0.0, |until| {
                        until
                            .saturating_duration_since(std::time::Instant::now())
                            .as_secs_f64()
                            * 1000.0
                    }),
                }
            })
        })
    }

    #[napi(catch_unwind)]
    pub fn config(&self) -> napi::Result<NativeOpenAiConfig, String> {
        crate::error::sync_boundary(|| {
            Ok({
                let c = &self.inner.config;
                NativeOpenAiConfig {
                    max_concurrent_requests: c.max_concurrent_requests as u32,
                    request_timeout: c.request_timeout.as_millis() as f64,
                    max_retries: c.max_retries,
                    retry_delay: c.retry_delay.as_millis() as f64,
                    timeout: c.timeout.as_millis() as f64,
                    base_url: c.masked_base_url.clone(),
                    organization: c.organization.clone(),
                    project: c.project.clone(),
                    max_queue_size: c.max_queue_size.map(|n| n as f64),
                    requests_per_minute: c.requests_per_minute.map(|n| n as f64),
                    tokens_per_minute: c.tokens_per_minute.map(|n| n as f64),
                    rate_limit_window_ms: c.rate_limit_window.as_millis() as f64,
                    priority_aging_ms: c.priority_aging.as_millis() as f64,
                    has_api_key: c.api_key.is_some(),
                    limit_key: c.shared.as_ref().map(|s| s.key.clone()),
                    lease_ms: c.shared.as_ref().map(|s| s.lease.as_millis() as f64),
                    leak_detection_threshold: c
                        .leak_detection_threshold
                        .map_or(0.0, |d| d.as_millis() as f64),
                }
            })
        })
    }

    #[napi(catch_unwind)]
    pub fn reset_stats(&self) {
        self.inner.accounting.reset();
    }

    #[napi]
    pub async fn health_check(&self) -> NativeOpenAiHealth {
        let pool = self.inner.clone();
        let probe = async move { pool.health_check().await };
        match std::panic::AssertUnwindSafe(probe).catch_unwind().await {
            Ok((healthy, message, response_time)) => NativeOpenAiHealth {
                healthy,
                message,
                response_time,
            },
            Err(panic) => NativeOpenAiHealth {
                healthy: false,
                message: format!("OpenAI unhealthy: {}", PoolError::from_panic(panic)),
                response_time: None,
            },
        }
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.queue.is_closed()
    }

    /// Stops admitting (new calls reject with POOL_CLOSED), lets every call already accepted,
    /// queued ones included, run to its end (within `timeout`), then closes: for a pool that
    /// `initialize()` replaced.
    #[napi]
    pub async fn retire(&self) {
        let pool = self.inner.clone();
        let _ = std::panic::AssertUnwindSafe(async move { pool.retire().await })
            .catch_unwind()
            .await;
    }

    /// Stops admitting, fails queued calls with POOL_CLOSED, lets in-flight ones finish within `timeout`.
    #[napi]
    pub async fn close(&self) {
        let pool = self.inner.clone();
        let _ = std::panic::AssertUnwindSafe(async move { pool.close().await })
            .catch_unwind()
            .await;
    }
}

impl NativeOpenAiPool {
    fn answerer(&self) -> napi::Result<submit::Answerer, String> {
        let replies = self.replies.get().ok_or_else(|| {
            napi::Error::new(
                crate::error::Code::Internal.as_str().to_string(),
                "onComplete was not called",
            )
        })?;
        Ok(submit::Answerer {
            pool: self.inner.clone(),
            replies: replies.clone(),
            streams: self.streams.clone(),
            flights: self.flights.clone(),
        })
    }

    /// This pool's part of `/metrics`.
    pub fn metrics(&self) -> crate::metrics::OpenAiMetrics {
        let (queue_length, in_flight, max_concurrent) = self.inner.queue.status();
        crate::metrics::OpenAiMetrics {
            accounting: self.inner.accounting.snapshot(),
            shared_limit_fallbacks: self.inner.shared_limit_fallbacks(),
            queue_length,
            in_flight,
            max_concurrent,
        }
    }
}

//! The napi surface of the database pool: a thin class over `engine::DbPool`.
//!
//! JS never sees this class directly; `lib/database.js` wraps it in the seed's static
//! `DatabasePool` API. Statements go in through synchronous `submit*` calls and their replies come
//! back in batches through `drain()` (`submit.rs`, `lib/submissions.js`), as JSON text: one
//! `JSON.parse` per batch on the JS side is far cheaper than building objects through napi. Every
//! entry point catches panics.

pub mod auth;
pub mod codec;
pub mod engine;
pub mod rest;
pub mod submit;

use std::sync::{Arc, OnceLock};

use futures::FutureExt;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::crossing::{CallDrain, DrainCallback, NativeReplies};

use crate::error::PoolError;
use auth::{context, jwks, tokens};
use codec::{js_params, params, rows::ValueStyle};
use engine::{config::PoolConfig, snapshot, transaction, DbPool};

/// A native Postgres pool. Created by `DatabasePool.initialize()`; not for direct use.
#[napi]
pub struct NativeDatabasePool {
    inner: Arc<DbPool>,
    /// What builder requests learned of the schema; `reloadSchema()` forgets it.
    schema: Arc<rest::cache::SchemaCache>,
    tokens: Arc<tokens::TokenVerifier>,
    /// Auth, Storage, Functions, and REST without a connection string.
    services: Arc<crate::services::ServicePool>,
    service_streams: Arc<crate::streams::StreamRegistry>,
    service_fetches: Arc<crate::inflight::InFlight>,
    /// Set by `onComplete`, before the first submission.
    dispatcher: OnceLock<Arc<submit::Dispatcher>>,
}

/// Live connection gauges and statement counters.
#[napi(object)]
pub struct NativeDatabaseStats {
    pub total_connections: u32,
    pub active_connections: u32,
    pub idle_connections: u32,
    pub waiting_requests: u32,
    pub acquire_timeouts: f64,
    pub total_queries: f64,
    pub successful_queries: f64,
    pub failed_queries: f64,
    pub average_response_time: f64,
    pub p50_response_time: f64,
    pub p95_response_time: f64,
    pub p99_response_time: f64,
    pub last_query_time: Option<f64>,
    /// Panics caught at the boundary in this process (each answered `INTERNAL`; each a bug).
    pub internal_errors: f64,
    /// Waits for a place on a connection, and the places' use, since the last reset.
    pub wait_time: NativeHistogram,
    pub use_time: NativeHistogram,
}

/// A cumulative histogram: `buckets` are `[upper bound in ms, count in that bucket alone]`
/// (the last bound is `Infinity`).
#[napi(object)]
pub struct NativeHistogram {
    pub count: f64,
    pub sum_ms: f64,
    pub buckets: Vec<Vec<f64>>,
}

impl From<&crate::stats::HistogramSnapshot> for NativeHistogram {
    fn from(h: &crate::stats::HistogramSnapshot) -> Self {
        NativeHistogram {
            count: h.count as f64,
            sum_ms: h.sum_seconds * 1000.0,
            buckets: h
                .buckets
                .iter()
                .map(|(bound, n)| vec![bound * 1000.0, *n as f64])
                .collect(),
        }
    }
}

/// One Supabase HTTP service's figures since the last reset.
#[napi(object)]
pub struct NativeServiceStats {
    /// 'rest', 'auth', 'storage' or 'functions'.
    pub service: String,
    pub requests: f64,
    /// Transport errors, timeouts and 5xx answers.
    pub failures: f64,
    pub in_flight: u32,
    pub average_response_time: f64,
    pub p50_response_time: f64,
    pub p95_response_time: f64,
    pub p99_response_time: f64,
}

#[napi(object)]
pub struct NativeHttpStats {
    pub services: Vec<NativeServiceStats>,
    /// TCP connections open to the services now (at most maxConnections).
    pub open_connections: u32,
}

/// The effective configuration, with the connection string's password masked.
#[napi(object)]
pub struct NativeDatabaseConfig {
    pub max_connections: u32,
    pub min_connections: u32,
    pub connection_timeout: f64,
    pub idle_timeout: f64,
    pub max_retries: u32,
    pub retry_delay: f64,
    pub pipeline_depth: u32,
    /// ms; 0 when off.
    pub statement_timeout: f64,
    /// 'transaction', 'session' or 'none'.
    pub pooler: String,
    pub keep_alive: bool,
    /// Empty when no connection string was given.
    pub connection_string: String,
    /// ms one Supabase HTTP service request may take.
    pub http_timeout: f64,
    pub anon_role: String,
    pub authenticated_role: String,
    /// Where the asymmetric signing keys are fetched from, if configured.
    pub jwks_url: Option<String>,
    /// The roles a verified token may run as.
    pub allowed_roles: Vec<String>,
    /// Whether HS256 tokens can be verified (the secret itself never leaves Rust).
    pub jwt_secret_configured: bool,
    /// The schemas the builder may reach; the first is the default.
    pub schemas: Vec<String>,
    /// Whether the builder answers `explain()`.
    pub plan_enabled: bool,
    /// ms before jitter; 0 when off.
    pub max_lifetime: f64,
    /// ms; 0 when off.
    pub leak_detection_threshold: f64,
    /// `db.client.connection.pool.name` in telemetry.
    pub pool_name: String,
    /// The first host and port and the database, for telemetry (`server.address`, ...).
    pub server_address: String,
    pub server_port: u32,
    pub database: String,
}

/// The pool's timings since they were last taken, in seconds, for OpenTelemetry's
/// `db.client.connection.create_time`, `.wait_time` and `.use_time`.
#[napi(object)]
pub struct NativePoolTimings {
    pub create: Vec<f64>,
    pub wait: Vec<f64>,
    pub used: Vec<f64>,
    /// Places had at once: waits of 0 s, counted rather than listed.
    pub immediate: f64,
    /// Callers that gave up waiting for a connection (`POOL_TIMEOUT`).
    pub timeouts: f64,
    /// Events not kept because JS had not taken them for too long.
    pub dropped: f64,
}

/// A verified access token: the role its statements run as and the claims they see.
#[napi(object)]
pub struct NativeVerifiedToken {
    pub role: String,
    /// JSON text for `request.jwt.claims`.
    pub claims: String,
    /// Epoch seconds after which the token is refused (exp plus the clock-skew allowance).
    pub expires_at: Option<f64>,
}

/// A library error as data: its stable code and message.
#[napi(object)]
pub struct NativeErrorInfo {
    pub code: String,
    pub message: String,
}

/// The outcome of an asynchronous token verification: exactly one of the two is set.
#[napi(object)]
pub struct NativeTokenOutcome {
    pub token: Option<NativeVerifiedToken>,
    pub error: Option<NativeErrorInfo>,
}

/// The outcome of a health probe.
#[napi(object)]
pub struct NativeHealth {
    pub healthy: bool,
    pub message: String,
    /// Milliseconds the probe took; null when it failed.
    pub response_time: Option<f64>,
}

#[napi]
impl NativeDatabasePool {
    /// Validates the options (JSON text) against the environment defaults (JSON text).
    #[napi(constructor, catch_unwind)]
    pub fn new(config_json: String, env_json: String) -> napi::Result<Self, String> {
        crate::error::sync_boundary(|| {
            let config = PoolConfig::from_json(&config_json, &env_json)?;
            let key_set = match &config.jwks_url {
                Some(url) => Some(
                    jwks::KeySet::new(
                        url.clone(),
                        jwks::FETCH_TIMEOUT.min(config.connection_timeout),
                    )
                    .map_err(PoolError::Internal)?,
                ),
                None => None,
            };
            let tokens = tokens::TokenVerifier::new(
                config.jwt_secret.clone(),
                key_set,
                config.authenticated_role.clone(),
                config.allowed_roles.clone(),
            );
            let services = crate::services::ServicePool::new(
                config.max_connections as usize,
                config.http_timeout,
            );
            Ok(NativeDatabasePool {
                services: Arc::new(services),
                service_streams: Arc::default(),
                service_fetches: Arc::default(),
                inner: Arc::new(DbPool::new(config)),
                schema: Arc::default(),
                tokens: Arc::new(tokens),
                dispatcher: OnceLock::new(),
            })
        })
    }

    /// Registers the callback that is called (with no arguments) when replies are ready to
    /// `drain()`. Called once, right after construction.
    #[napi(catch_unwind)]
    pub fn on_complete(&self, callback: DrainCallback) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| {
            let dispatcher = submit::Dispatcher::new(
                self.inner.clone(),
                self.schema.clone(),
                Box::new(CallDrain(callback)),
            );
            self.dispatcher.set(dispatcher).map_err(|_| {
                napi::Error::new(
                    crate::error::Code::Internal.as_str().to_string(),
                    "onComplete was already called",
                )
            })
        })
    }

    fn dispatcher(&self) -> napi::Result<&Arc<submit::Dispatcher>, String> {
        self.dispatcher.get().ok_or_else(|| {
            napi::Error::new(
                crate::error::Code::Internal.as_str().to_string(),
                "onComplete was not called",
            )
        })
    }

    /// Queues one statement; its reply (`{"columns":[…],"rows":[[…],…],"rowCount":n}` or
    /// `{"error":{…}}`) arrives through `drain()` under `id`.
    #[napi(
        catch_unwind,
        ts_args_type = "id: number, sql: string, params?: unknown[] | null, toJsonStyle?: boolean | null, role?: string | null, claims?: string | null"
    )]
    pub fn submit(
        &self,
        id: u32,
        sql: String,
        params: js_params::ParamsArg,
        to_json_style: Option<bool>,
        role: Option<String>,
        claims: Option<String>,
    ) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| {
            let work = submit::Work::Statement {
                sql,
                params: self.read_params(&params)?,
                style: value_style(to_json_style),
            };
            self.queue(id, work, role_context(role, claims))
        })
    }

    /// Queues one query-builder request (the fetch adapter's wire form, see
    /// `rest::parse::ApiRequest`); its reply (rows, count and PostgREST status, or the error and
    /// its status) arrives through `drain()`.
    #[napi(catch_unwind)]
    pub fn submit_request(
        &self,
        id: u32,
        request: String,
        anonymous: Option<bool>,
        role: Option<String>,
        claims: Option<String>,
    ) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| {
            let work = submit::Work::Request {
                request,
                anonymous: anonymous.unwrap_or(false),
            };
            self.queue(id, work, role_context(role, claims))
        })
    }

    /// Queues the start of a transaction (an exclusive connection, `BEGIN` with the options, the
    /// role and claims if given); its id is `id`, and its reply is `{"ok":true}` or the error.
    #[napi(catch_unwind)]
    pub fn submit_begin(
        &self,
        id: u32,
        isolation_level: Option<String>,
        read_only: Option<bool>,
        role: Option<String>,
        claims: Option<String>,
    ) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| {
            let options = transaction::TxOptions {
                isolation: isolation_level
                    .as_deref()
                    .map(transaction::Isolation::parse)
                    .transpose()?,
                read_only: read_only.unwrap_or(false),
            };
            self.queue(
                id,
                submit::Work::Begin { options },
                role_context(role, claims),
            )
        })
    }

    /// Queues a statement inside transaction `tx`.
    #[napi(
        catch_unwind,
        ts_args_type = "id: number, tx: number, sql: string, params?: unknown[] | null, toJsonStyle?: boolean | null"
    )]
    pub fn submit_in_transaction(
        &self,
        id: u32,
        tx: u32,
        sql: String,
        params: js_params::ParamsArg,
        to_json_style: Option<bool>,
    ) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| {
            let work = submit::Work::TxStatement {
                tx,
                sql,
                params: self.read_params(&params)?,
                style: value_style(to_json_style),
            };
            self.queue(id, work, None)
        })
    }

    /// Queues a query-builder request inside transaction `tx`.
    #[napi(catch_unwind)]
    pub fn submit_request_in_transaction(
        &self,
        id: u32,
        tx: u32,
        request: String,
        anonymous: Option<bool>,
    ) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| {
            let work = submit::Work::TxRequest {
                tx,
                request,
                anonymous: anonymous.unwrap_or(false),
            };
            self.queue(id, work, None)
        })
    }

    /// One `fetch` of supabase-js to a Supabase HTTP service (`service`: 'rest', 'auth',
    /// 'storage' or 'functions'), over the pool's keep-alive transport: `headers` as
    /// `name\nvalue\n…`; the body as text or bytes. Its answer arrives through `drain()` under
    /// `id`: `{"status":…,"headers":[…],"body":N}` (text), `…"buffer":N}` (bytes),
    /// `…"stream":S}` (read with `nextHttpBytes(S)`), or `{"error":{code,message}}`.
    #[napi(
        catch_unwind,
        ts_args_type = "id: number, service: string, method: string, url: string, headers: string, bodyText?: string | null, bodyBytes?: Buffer | null"
    )]
    #[allow(clippy::too_many_arguments)]
    pub fn submit_http(
        &self,
        id: u32,
        service: String,
        method: String,
        url: String,
        headers: String,
        body_text: Option<String>,
        body_bytes: Option<Buffer>,
    ) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| {
            let dispatcher = self.dispatcher()?.clone();
            let body = match (body_text, body_bytes) {
                (Some(text), _) => bytes::Bytes::from(text),
                (None, Some(bytes)) => bytes::Bytes::copy_from_slice(&bytes),
                (None, None) => bytes::Bytes::new(),
            };
            let request = crate::services::Service::parse(&service)
                .ok_or_else(|| format!("'{service}' is not a Supabase service"))
                .and_then(|service| {
                    crate::forward::Outgoing::new(&method, url, &headers, body)
                        .map(|outgoing| (service, outgoing))
                });
            let (service, outgoing) = match request {
                Ok(request) => request,
                Err(message) => {
                    let error = PoolError::InvalidArgument(message);
                    dispatcher.replies().reply(id, &error.to_envelope());
                    return Ok(());
                }
            };
            let entry = self.service_fetches.begin(id);
            let (services, streams, flights) = (
                self.services.clone(),
                self.service_streams.clone(),
                self.service_fetches.clone(),
            );
            let idle = self.inner.config().http_timeout;
            let answering = entry.clone();
            let task = napi::bindgen_prelude::spawn(async move {
                let fetch = std::panic::AssertUnwindSafe(services.fetch(service, outgoing));
                let outcome = match fetch.catch_unwind().await {
                    Ok(outcome) => outcome.map_err(PoolError::ConnectionFailed),
                    Err(panic) => Err(PoolError::from_panic(panic)),
                };
                if answering.answer() {
                    flights.end(id);
                    match outcome {
                        Ok(reply) => dispatcher.replies().send_fetched(reply, &streams, idle, id),
                        Err(error) => dispatcher.replies().reply(id, &error.to_envelope()),
                    }
                }
            });
            if !entry.running(task.abort_handle()) {
                task.abort();
            }
            Ok(())
        })
    }

    /// The caller's `AbortSignal` fired for HTTP fetch `id`: its request is dropped, and it is
    /// answered with `ABORTED`.
    #[napi(catch_unwind)]
    pub fn abort_http(&self, id: u32) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| {
            if self.service_fetches.abort(id).is_some() {
                let aborted =
                    r#"{"error":{"code":"ABORTED","message":"This operation was aborted"}}"#;
                self.dispatcher()?.replies().reply(id, aborted);
            }
            Ok(())
        })
    }

    /// The next chunk of an HTTP service's stream.
    #[napi]
    pub async fn next_http_bytes(&self, stream_id: u32) -> crate::crossing::NativeChunk {
        let idle = self.inner.config().http_timeout;
        crate::streams::next_chunk(&self.service_streams, stream_id, idle)
            .await
            .into()
    }

    /// Ends an HTTP service's stream early (its request is dropped).
    #[napi]
    pub fn cancel_http_stream(&self, stream_id: u32) {
        self.service_streams.remove(stream_id);
    }

    /// Each Supabase HTTP service's figures, and the connections open to them.
    #[napi(catch_unwind)]
    pub fn http_stats(&self) -> napi::Result<NativeHttpStats, String> {
        crate::error::sync_boundary(|| {
            let services = self
                .services
                .snapshot()
                .into_iter()
                .map(|s| NativeServiceStats {
                    service: s.service.name().to_string(),
                    requests: s.outcomes.total as f64,
                    failures: s.outcomes.failed as f64,
                    in_flight: s.in_flight as u32,
                    average_response_time: s.outcomes.latency.average_ms,
                    p50_response_time: s.outcomes.latency.p50_ms,
                    p95_response_time: s.outcomes.latency.p95_ms,
                    p99_response_time: s.outcomes.latency.p99_ms,
                })
                .collect();
            Ok(NativeHttpStats {
                services,
                open_connections: self.services.open_connections() as u32,
            })
        })
    }

    /// Queues the end of transaction `tx`: `COMMIT` if `commit`, else `ROLLBACK`.
    #[napi(catch_unwind)]
    pub fn submit_end(&self, id: u32, tx: u32, commit: bool) -> napi::Result<(), String> {
        crate::error::sync_boundary(|| self.queue(id, submit::Work::End { tx, commit }, None))
    }

    /// Every reply that arrived since the last drain.
    #[napi(catch_unwind)]
    pub fn drain(&self) -> NativeReplies {
        match self.dispatcher.get() {
            Some(dispatcher) => NativeReplies::from_parts(dispatcher.drain()),
            None => NativeReplies::empty(),
        }
    }

    /// Verifies a user's access token with what is at hand (the HS256 secret, cached signing
    /// keys); throws `INVALID_TOKEN`. Null when its signing key must be fetched first: then
    /// call `verifyTokenAsync`.
    #[napi(catch_unwind)]
    pub fn verify_token(&self, token: String) -> napi::Result<Option<NativeVerifiedToken>, String> {
        crate::error::sync_boundary(|| {
            Ok(self
                .tokens
                .verify_now(&token)?
                .map(NativeVerifiedToken::from))
        })
    }

    /// Verifies a user's access token, fetching the signing keys if needed (bounded by a
    /// timeout). Never rejects: the outcome carries either the token or the error.
    #[napi]
    pub async fn verify_token_async(&self, token: String) -> NativeTokenOutcome {
        let tokens = self.tokens.clone();
        let verify = async move { tokens.verify(&token).await };
        let result = match std::panic::AssertUnwindSafe(verify).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => Err(PoolError::from_panic(panic)),
        };
        match result {
            Ok(verified) => NativeTokenOutcome {
                token: Some(verified.into()),
                error: None,
            },
            Err(err) => NativeTokenOutcome {
                token: None,
                error: Some(NativeErrorInfo {
                    code: err.code().to_string(),
                    message: err.to_string(),
                }),
            },
        }
    }

    /// `SELECT 1` bounded by `connectionTimeout`; never rejects.
    #[napi]
    pub async fn health_check(&self) -> NativeHealth {
        let pool = self.inner.clone();
        let probe = async move { pool.health_check().await };
        match std::panic::AssertUnwindSafe(probe).catch_unwind().await {
            Ok(Ok(elapsed)) => {
                let ms = elapsed.as_secs_f64() * 1000.0;
                NativeHealth {
                    healthy: true,
                    message: format!("Database healthy (response time: {}ms)", ms.round()),
                    response_time: Some(ms),
                }
            }
            Ok(Err(err)) => NativeHealth {
                healthy: false,
                message: format!("Database unhealthy: {err}"),
                response_time: None,
            },
            Err(panic) => NativeHealth {
                healthy: false,
                message: format!("Database unhealthy: {}", PoolError::from_panic(panic)),
                response_time: None,
            },
        }
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> napi::Result<NativeDatabaseStats, String> {
        crate::error::sync_boundary(|| {
            Ok({
                let s = self.snapshot();
                let o = s.outcomes;
                NativeDatabaseStats {
                    total_connections: s.total_connections,
                    active_connections: s.total_connections - s.idle_connections,
                    idle_connections: s.idle_connections,
                    waiting_requests: s.waiting_requests as u32,
                    acquire_timeouts: s.acquire_timeouts as f64,
                    total_queries: o.total as f64,
                    successful_queries: o.successful as f64,
                    failed_queries: o.failed as f64,
                    average_response_time: o.latency.average_ms,
                    p50_response_time: o.latency.p50_ms,
                    p95_response_time: o.latency.p95_ms,
                    p99_response_time: o.latency.p99_ms,
                    last_query_time: o.last_at_ms.map(|ms| ms as f64),
                    internal_errors: crate::error::panics_caught() as f64,
                    wait_time: (&s.wait_time).into(),
                    use_time: (&s.use_time).into(),
                }
            })
        })
    }

    #[napi(catch_unwind)]
    pub fn config(&self) -> napi::Result<NativeDatabaseConfig, String> {
        crate::error::sync_boundary(|| {
            Ok({
                let c = self.inner.config();
                NativeDatabaseConfig {
                    max_connections: c.max_connections,
                    min_connections: c.min_connections,
                    connection_timeout: c.connection_timeout.as_millis() as f64,
                    idle_timeout: c.idle_timeout.map_or(0.0, |d| d.as_millis() as f64),
                    max_retries: c.max_retries,
                    retry_delay: c.retry_delay.as_millis() as f64,
                    pipeline_depth: c.pipeline_depth,
                    statement_timeout: c.statement_timeout.map_or(0.0, |d| d.as_millis() as f64),
                    pooler: c.pooler.as_str().to_string(),
                    keep_alive: c.keep_alive,
                    connection_string: c.masked_connection_string.clone(),
                    http_timeout: c.http_timeout.as_millis() as f64,
                    anon_role: c.anon_role.clone(),
                    authenticated_role: c.authenticated_role.clone(),
                    jwks_url: c.jwks_url.clone(),
                    allowed_roles: c.allowed_roles.clone(),
                    jwt_secret_configured: c.jwt_secret.is_some(),
                    schemas: c.schemas.clone(),
                    plan_enabled: c.plan_enabled,
                    max_lifetime: c.max_lifetime.map_or(0.0, |d| d.as_millis() as f64),
                    leak_detection_threshold: c
                        .leak_detection_threshold
                        .map_or(0.0, |d| d.as_millis() as f64),
                    pool_name: c.pool_name.clone(),
                    server_address: c.connect_options.server().0,
                    server_port: c.connect_options.server().1 as u32,
                    database: c.connect_options.database().to_string(),
                }
            })
        })
    }

    /// Starts (or stops) keeping the pool's timings for OpenTelemetry's histograms.
    #[napi(catch_unwind)]
    pub fn set_telemetry(&self, on: bool) {
        self.inner.pool().timings().set_enabled(on);
    }

    /// Statements' replies say how long they waited for a connection (spans carry it), or not.
    #[napi(catch_unwind)]
    pub fn set_tracing(&self, on: bool) {
        if let Some(dispatcher) = self.dispatcher.get() {
            dispatcher.set_with_wait(on);
        }
    }

    /// The timings kept since the last call (seconds), and the timeouts counted.
    #[napi(catch_unwind)]
    pub fn take_pool_timings(&self) -> NativePoolTimings {
        let taken = self.inner.pool().timings().take();
        NativePoolTimings {
            create: taken.create,
            wait: taken.wait,
            used: taken.used,
            immediate: taken.immediate as f64,
            timeouts: taken.timeouts as f64,
            dropped: taken.dropped as f64,
        }
    }

    #[napi(catch_unwind)]
    pub fn reset_stats(&self) {
        self.inner.reset_stats();
        self.services.reset();
    }

    /// Forgets the builder's schema cache (foreign keys, functions' return kinds), as PostgREST's
    /// `NOTIFY pgrst, 'reload schema'` does; the next request reads the catalog again.
    #[napi(catch_unwind)]
    pub fn reload_schema(&self) {
        self.schema.forget();
    }

    /// Whether the login role is a superuser, as the server reported at login; null until a
    /// connection has opened. User clients on such a login can reach any role with
    /// `set_config('role', …)` (README: security).
    #[napi(getter)]
    pub fn superuser_login(&self) -> Option<bool> {
        self.inner.superuser_login()
    }

    /// Whether a connection string was given (else SQL is refused, and REST goes over HTTP).
    #[napi(getter)]
    pub fn has_connection_string(&self) -> bool {
        self.inner.config().has_connection_string
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_closed() || self.dispatcher.get().is_some_and(|d| d.is_closing())
    }

    /// Stops admitting statements (they reject with `POOL_CLOSED`), lets every statement already
    /// accepted run (queued ones included) and open transactions end, and resolves once every
    /// connection is closed.
    #[napi]
    pub async fn close(&self) {
        let pool = self.inner.clone();
        let dispatcher = self.dispatcher.get().cloned();
        let _ = std::panic::AssertUnwindSafe(async move {
            if let Some(dispatcher) = dispatcher {
                dispatcher.close().await;
            }
            pool.close().await
        })
        .catch_unwind()
        .await;
    }
}

impl From<tokens::VerifiedToken> for NativeVerifiedToken {
    fn from(verified: tokens::VerifiedToken) -> Self {
        NativeVerifiedToken {
            role: verified.role,
            claims: verified.claims_json,
            expires_at: verified.expires_at.map(|s| s as f64),
        }
    }
}

fn value_style(to_json_style: Option<bool>) -> ValueStyle {
    if to_json_style.unwrap_or(false) {
        ValueStyle::ToJson
    } else {
        ValueStyle::Driver
    }
}

fn role_context(role: Option<String>, claims: Option<String>) -> Option<context::RoleContext> {
    role.map(|role| context::RoleContext {
        role,
        claims: claims.unwrap_or_else(|| "{}".to_string()),
    })
}

impl NativeDatabasePool {
    /// A statement's parameters, or the INVALID_ARGUMENT that refuses them (counted as a failed
    /// statement: its caller asked for one).
    fn read_params(
        &self,
        params: &js_params::ParamsArg,
    ) -> std::result::Result<Vec<params::Param>, PoolError> {
        params.read().inspect_err(|_| {
            self.inner.record(false, std::time::Instant::now());
        })
    }

    fn queue(
        &self,
        id: u32,
        work: submit::Work,
        role: Option<context::RoleContext>,
    ) -> napi::Result<(), String> {
        self.dispatcher()?.submit(submit::Submission {
            id,
            work,
            role,
            submitted: std::time::Instant::now(),
            retries: 0,
        });
        Ok(())
    }

    /// The engine's gauges, with statements still in the submission queue counted as waiting.
    fn snapshot(&self) -> snapshot::PoolSnapshot {
        let mut snapshot = self.inner.snapshot();
        if let Some(dispatcher) = self.dispatcher.get() {
            snapshot.waiting_requests += dispatcher.queued() as u64;
        }
        snapshot
    }

    /// This pool's part of `/metrics`.
    pub fn metrics(&self) -> crate::metrics::DbMetrics {
        crate::metrics::DbMetrics {
            pool: self.snapshot(),
            max_connections: self.inner.config().max_connections,
            min_connections: self.inner.config().min_connections,
            pool_name: self.inner.config().pool_name.clone(),
            services: self.services.snapshot(),
            http_connections: self.services.open_connections(),
        }
    }
}

/// PostgREST's error reply (`{ status, range, body }` as JSON text) for a request the facade
/// refuses before it reaches Postgres (a token that does not verify, `PGRST301`; one that
/// expired, `PGRST303`), with the status from the one table every reply uses.
#[napi(catch_unwind)]
pub fn rest_error_reply(code: String, message: String) -> napi::Result<String, String> {
    crate::error::sync_boundary(|| {
        let error = rest::error::pgrst(&code, message, None, None);
        Ok(rest::reply::error_reply(&error, true))
    })
}

//! The Prometheus exposition of both pools, rendered from the same snapshots as `getStats()`.
//!
//! The text is OpenMetrics 1.0 (what Prometheus negotiates first), written by the
//! `prometheus-client` crate rather than by hand: it owns the escaping of label values (a model
//! name is caller-supplied text), the `_total`/`_bucket`/`_sum`/`_count` suffixes and `# EOF`.
//! Each scrape builds a throw-away registry whose collectors hold one snapshot per pool, so what
//! `/metrics` reports is exactly what `getStats()` would report at that instant, nothing kept twice.
//!
//! Counters restart at zero after `resetStats()`; Prometheus treats that as a counter reset, which
//! `rate()` and `increase()` already handle.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::db::engine::snapshot::PoolSnapshot;
use crate::metrics_otel::{encode_seconds, OtelDb, OtelOpenAi};
use crate::openai::accounting::AccountingSnapshot;
use crate::stats::HistogramSnapshot;

/// Every metric name starts with this (`connection_pools_db_connections`, …).
pub const PREFIX: &str = "connection_pools";

/// What the Content-Type of the rendered text must say.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The database pool at one instant.
#[derive(Debug)]
pub struct DbMetrics {
    pub pool: PoolSnapshot,
    pub max_connections: u32,
    pub min_connections: u32,
    /// `db.client.connection.pool.name`.
    pub pool_name: String,
    /// The Supabase HTTP services (Auth, Storage, Functions, REST over HTTP).
    pub services: Vec<crate::services::ServiceSnapshot>,
    pub http_connections: u64,
}

/// The OpenAI pool at one instant.
#[derive(Debug)]
pub struct OpenAiMetrics {
    pub accounting: AccountingSnapshot,
    pub shared_limit_fallbacks: u64,
    pub queue_length: usize,
    pub in_flight: usize,
    pub max_concurrent: usize,
}

/// The whole exposition, ending in `# EOF`. A pool that is `None` (not configured) is left out.
pub fn render(db: Option<DbMetrics>, openai: Option<OpenAiMetrics>) -> String {
    let mut registry = Registry::default();
    // OpenTelemetry's names first (no prefix: they are the conventions' own).
    if let Some(db) = &db {
        registry.register_collector(Box::new(OtelDb {
            pool_name: db.pool_name.clone(),
            total: db.pool.total_connections,
            idle: db.pool.idle_connections,
            waiting: db.pool.waiting_requests,
            max: db.max_connections,
            min: db.min_connections,
            timeouts: db.pool.acquire_timeouts,
            durations: db.pool.outcomes.histogram.clone(),
            wait_time: db.pool.wait_time.clone(),
            use_time: db.pool.use_time.clone(),
        }));
    }
    if let Some(openai) = &openai {
        registry.register_collector(Box::new(OtelOpenAi {
            durations: openai.accounting.outcomes.histogram.clone(),
        }));
    }
    let ours = registry.sub_registry_with_prefix(PREFIX);
    if let Some(db) = db {
        ours.register_collector(Box::new(db));
    }
    if let Some(openai) = openai {
        ours.register_collector(Box::new(openai));
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// Descriptor-writing helpers: one call per metric family.
struct Families<'a>(DescriptorEncoder<'a>);

impl Families<'_> {
    fn gauge<N>(&mut self, name: &str, help: &str, value: N) -> std::fmt::Result
    where
        N: EncodeGaugeValue + std::fmt::Debug + Send + Sync + 'static,
    {
        let gauge = ConstGauge::new(value);
        gauge.encode(
            self.0
                .encode_descriptor(name, help, None, MetricType::Gauge)?,
        )
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) -> std::fmt::Result {
        let counter = ConstCounter::new(value);
        counter.encode(
            self.0
                .encode_descriptor(name, help, None, MetricType::Counter)?,
        )
    }

    /// One family with one label whose values are given with their samples.
    fn labelled(
        &mut self,
        name: &str,
        help: &str,
        metric_type: MetricType,
        label: &str,
        samples: &[(&str, i64)],
    ) -> std::fmt::Result {
        let mut family = self.0.encode_descriptor(name, help, None, metric_type)?;
        for (value, sample) in samples {
            let labels = [(label, *value)];
            let sample_encoder = family.encode_family(&labels)?;
            match metric_type {
                MetricType::Counter => ConstCounter::new(*sample as u64).encode(sample_encoder)?,
                _ => ConstGauge::new(*sample).encode(sample_encoder)?,
            }
        }
        Ok(())
    }

    /// A histogram per value of one label.
    fn labelled_seconds_histogram(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        histograms: &[(&str, &HistogramSnapshot)],
    ) -> std::fmt::Result {
        let mut family =
            self.0
                .encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
        for (value, histogram) in histograms {
            let labels = [(label, *value)];
            encode_seconds(family.encode_family(&labels)?, histogram)?;
        }
        Ok(())
    }

    fn seconds_histogram(
        &mut self,
        name: &str,
        help: &str,
        histogram: &HistogramSnapshot,
    ) -> std::fmt::Result {
        let family =
            self.0
                .encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
        encode_seconds(family, histogram)
    }
}

impl Collector for DbMetrics {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut f = Families(encoder);
        let total = self.pool.total_connections;
        let idle = self.pool.idle_connections;
        let outcomes = &self.pool.outcomes;
        f.labelled(
            "db_connections",
            "Open connections to Postgres by state (active = checked out by a statement).",
            MetricType::Gauge,
            "state",
            &[("active", (total - idle) as i64), ("idle", idle as i64)],
        )?;
        f.gauge(
            "db_connections_max",
            "The pool's maxConnections.",
            self.max_connections as i64,
        )?;
        f.gauge(
            "db_waiting_requests",
            "Statements waiting for a connection.",
            self.pool.waiting_requests as i64,
        )?;
        f.counter(
            "db_queries",
            "Statements run, successful or not.",
            outcomes.total,
        )?;
        f.counter(
            "db_query_failures",
            "Statements that ended in an error.",
            outcomes.failed,
        )?;
        f.counter(
            "db_acquire_timeouts",
            "Statements that gave up waiting for a connection (POOL_TIMEOUT).",
            self.pool.acquire_timeouts,
        )?;
        f.seconds_histogram(
            "db_query_duration",
            "Time from a statement's call to its result, including the wait for a connection.",
            &outcomes.histogram,
        )?;
        self.encode_services(&mut f)
    }
}

impl DbMetrics {
    fn encode_services(&self, f: &mut Families<'_>) -> std::fmt::Result {
        let by = |value: fn(&crate::services::ServiceSnapshot) -> i64| -> Vec<(&str, i64)> {
            self.services
                .iter()
                .map(|s| (s.service.name(), value(s)))
                .collect()
        };
        f.labelled(
            "supabase_http_requests",
            "Requests to the Supabase HTTP services (rest without a connection string, auth, storage, functions).",
            MetricType::Counter,
            "service",
            &by(|s| s.outcomes.total as i64),
        )?;
        f.labelled(
            "supabase_http_failures",
            "Requests to a Supabase service that failed: a transport error, a timeout or a 5xx.",
            MetricType::Counter,
            "service",
            &by(|s| s.outcomes.failed as i64),
        )?;
        f.labelled(
            "supabase_http_in_flight",
            "Requests to a Supabase service waiting for their answer.",
            MetricType::Gauge,
            "service",
            &by(|s| s.in_flight as i64),
        )?;
        f.gauge(
            "supabase_http_connections",
            "TCP connections open to the Supabase project (at most maxConnections).",
            self.http_connections as i64,
        )?;
        let histograms: Vec<(&str, &HistogramSnapshot)> = self
            .services
            .iter()
            .map(|s| (s.service.name(), &s.outcomes.histogram))
            .collect();
        f.labelled_seconds_histogram(
            "supabase_http_request_duration",
            "Time from a request to a Supabase service to its answer.",
            "service",
            &histograms,
        )
    }
}

impl Collector for OpenAiMetrics {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut f = Families(encoder);
        let a = &self.accounting;
        f.gauge(
            "openai_requests_in_flight",
            "API requests holding one of the maxConcurrentRequests slots.",
            self.in_flight as i64,
        )?;
        f.gauge(
            "openai_queue_length",
            "API requests waiting for a slot.",
            self.queue_length as i64,
        )?;
        f.gauge(
            "openai_max_concurrent_requests",
            "The pool's maxConcurrentRequests.",
            self.max_concurrent as i64,
        )?;
        f.counter(
            "openai_requests",
            "API calls made, successful or not (a retried call counts once).",
            a.outcomes.total,
        )?;
        f.counter(
            "openai_request_failures",
            "API calls that ended in an error after their retries.",
            a.outcomes.failed,
        )?;
        f.counter(
            "openai_rate_limited_responses",
            "429 responses received, retried or not.",
            a.rate_limited,
        )?;
        f.counter(
            "openai_retries",
            "Attempts beyond each call's first.",
            a.retries,
        )?;
        f.counter(
            "openai_shared_limit_fallbacks",
            "Requests that ran under this process's own limits because Redis could not be reached.",
            self.shared_limit_fallbacks,
        )?;
        f.counter(
            "openai_tokens",
            "Tokens reported in responses' usage.",
            a.tokens_total,
        )?;
        let by_model: Vec<(&str, i64)> = a
            .by_model
            .iter()
            .map(|(model, n)| (model.as_str(), *n as i64))
            .collect();
        f.labelled(
            "openai_model_requests",
            "API calls by model.",
            MetricType::Counter,
            "model",
            &by_model,
        )?;
        let limits = &a.rate_limit;
        for (name, help, value) in [
            (
                "openai_ratelimit_remaining_requests",
                "x-ratelimit-remaining-requests of the latest response.",
                limits.remaining_requests,
            ),
            (
                "openai_ratelimit_remaining_tokens",
                "x-ratelimit-remaining-tokens of the latest response.",
                limits.remaining_tokens,
            ),
            (
                "openai_ratelimit_limit_requests",
                "x-ratelimit-limit-requests of the latest response.",
                limits.limit_requests,
            ),
            (
                "openai_ratelimit_limit_tokens",
                "x-ratelimit-limit-tokens of the latest response.",
                limits.limit_tokens,
            ),
        ] {
            // Absent until a response has carried the header: no sample beats a made-up zero.
            if let Some(value) = value {
                f.gauge(name, help, value)?;
            }
        }
        f.seconds_histogram(
            "openai_request_duration",
            "Time from an API call to its result, including queueing and retries.",
            &a.outcomes.histogram,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::OutcomeCounters;

    fn db_metrics() -> DbMetrics {
        let counters = OutcomeCounters::default();
        counters.record(true, 0.7);
        counters.record(false, 30.0);
        DbMetrics {
            pool: PoolSnapshot {
                total_connections: 5,
                idle_connections: 3,
                waiting_requests: 4,
                acquire_timeouts: 1,
                outcomes: counters.snapshot(),
                wait_time: counters.snapshot().histogram,
                use_time: counters.snapshot().histogram,
            },
            max_connections: 10,
            min_connections: 2,
            pool_name: "db.internal:5432/app".into(),
            services: crate::services::Service::ALL
                .into_iter()
                .map(|service| crate::services::ServiceSnapshot {
                    service,
                    outcomes: counters.snapshot(),
                    in_flight: 1,
                })
                .collect(),
            http_connections: 2,
        }
    }

    fn sample<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        text.lines()
            .find(|line| line.split(' ').next() == Some(name))
            .and_then(|line| line.rsplit(' ').next())
    }

    #[test]
    fn open_telemetry_names_sit_beside_ours() {
        let text = render(Some(db_metrics()), None);
        let pool = r#"db_client_connection_pool_name="db.internal:5432/app""#;
        for line in [
            format!(r#"db_client_connection_count{{db_client_connection_state="idle",{pool}}} 3"#),
            format!(r#"db_client_connection_count{{db_client_connection_state="used",{pool}}} 2"#),
            format!("db_client_connection_max{{{pool}}} 10"),
            format!("db_client_connection_idle_max{{{pool}}} 10"),
            format!("db_client_connection_idle_min{{{pool}}} 2"),
            format!("db_client_connection_pending_requests{{{pool}}} 4"),
            format!("db_client_connection_timeouts_total{{{pool}}} 1"),
            format!(
                r#"db_client_operation_duration_seconds_count{{db_system_name="postgresql",{pool}}} 2"#
            ),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert_eq!(
            sample(&text, "connection_pools_db_connections_max"),
            Some("10")
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn database_families_carry_the_snapshot() {
        let text = render(Some(db_metrics()), None);
        let s = |name| sample(&text, name);
        assert_eq!(
            s("connection_pools_db_connections{state=\"active\"}"),
            Some("2")
        );
        assert_eq!(
            s("connection_pools_db_connections{state=\"idle\"}"),
            Some("3")
        );
        assert_eq!(s("connection_pools_db_connections_max"), Some("10"));
        assert_eq!(
            s("connection_pools_supabase_http_requests_total{service=\"auth\"}"),
            Some("2")
        );
        assert_eq!(
            s("connection_pools_supabase_http_in_flight{service=\"storage\"}"),
            Some("1")
        );
        assert_eq!(s("connection_pools_supabase_http_connections"), Some("2"));
        assert_eq!(
            s("connection_pools_supabase_http_request_duration_seconds_count{service=\"functions\"}"),
            Some("2")
        );
        assert_eq!(s("connection_pools_db_waiting_requests"), Some("4"));
        assert_eq!(s("connection_pools_db_queries_total"), Some("2"));
        assert_eq!(s("connection_pools_db_query_failures_total"), Some("1"));
        assert_eq!(s("connection_pools_db_acquire_timeouts_total"), Some("1"));
        assert_eq!(
            s("connection_pools_db_query_duration_seconds_bucket{le=\"0.001\"}"),
            Some("1")
        );
        assert_eq!(
            s("connection_pools_db_query_duration_seconds_bucket{le=\"+Inf\"}"),
            Some("2")
        );
        assert_eq!(
            s("connection_pools_db_query_duration_seconds_count"),
            Some("2")
        );
        assert!(text.contains("# UNIT connection_pools_db_query_duration_seconds seconds"));
        assert!(text.ends_with("# EOF\n"));
        assert!(!text.contains("openai"));
    }

    #[test]
    fn hostile_model_names_are_escaped_not_injected() {
        let mut accounting = AccountingSnapshot::default();
        accounting
            .by_model
            .insert("evil\"} 1\nconnection_pools_fake 9\\".into(), 3);
        let text = render(
            None,
            Some(OpenAiMetrics {
                accounting,
                shared_limit_fallbacks: 0,
                queue_length: 0,
                in_flight: 0,
                max_concurrent: 10,
            }),
        );
        assert!(!text.lines().any(|l| l.starts_with("connection_pools_fake")));
        assert!(text.contains(r#"model="evil\"} 1\nconnection_pools_fake 9\\"} 3"#));
    }

    #[test]
    fn rate_limit_gauges_appear_only_once_seen() {
        let mut accounting = AccountingSnapshot::default();
        let metrics = |accounting| OpenAiMetrics {
            accounting,
            shared_limit_fallbacks: 0,
            queue_length: 2,
            in_flight: 10,
            max_concurrent: 10,
        };
        let text = render(None, Some(metrics(accounting.clone())));
        assert!(!text.contains("ratelimit_remaining_requests"));
        assert_eq!(
            sample(&text, "connection_pools_openai_queue_length"),
            Some("2")
        );
        accounting.rate_limit.remaining_requests = Some(499.0);
        let text = render(None, Some(metrics(accounting)));
        assert_eq!(
            sample(
                &text,
                "connection_pools_openai_ratelimit_remaining_requests"
            ),
            Some("499.0")
        );
    }
}

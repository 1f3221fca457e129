//! The OpenTelemetry semantic conventions' pool metrics in Prometheus form, beside the
//! `connection_pools_*` families of `metrics.rs` (kept for one release, documented as
//! deprecated): the names as OpenTelemetry's Prometheus exporter writes them (dots to
//! underscores, the unit as a suffix, `_total` on counters), with their attributes as labels.
//! Rendered from the same snapshot, so both sets always agree.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::stats::HistogramSnapshot;

/// The database pool's figures under the `db.client.*` names.
#[derive(Debug)]
pub struct OtelDb {
    pub pool_name: String,
    pub total: u32,
    pub idle: u32,
    pub waiting: u64,
    pub max: u32,
    pub min: u32,
    pub timeouts: u64,
    pub durations: HistogramSnapshot,
    pub wait_time: HistogramSnapshot,
    pub use_time: HistogramSnapshot,
}

/// The OpenAI pool's figures under the `gen_ai.client.*` names.
#[derive(Debug)]
pub struct OtelOpenAi {
    pub durations: HistogramSnapshot,
}

const POOL: &str = "db_client_connection_pool_name";

impl Collector for OtelDb {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let pool = self.pool_name.as_str();
        let mut count = encoder.encode_descriptor(
            "db_client_connection_count",
            "The number of connections that are currently in state described by the state attribute.",
            None,
            MetricType::Gauge,
        )?;
        for (state, value) in [("idle", self.idle), ("used", self.total - self.idle)] {
            let labels = [("db_client_connection_state", state), (POOL, pool)];
            ConstGauge::new(value as i64).encode(count.encode_family(&labels)?)?;
        }
        for (name, help, value) in [
            (
                "db_client_connection_max",
                "The maximum number of open connections allowed.",
                self.max as i64,
            ),
            (
                "db_client_connection_idle_max",
                "The maximum number of idle open connections allowed.",
                self.max as i64,
            ),
            (
                "db_client_connection_idle_min",
                "The minimum number of idle open connections allowed.",
                self.min as i64,
            ),
            (
                "db_client_connection_pending_requests",
                "The number of current pending requests for an open connection.",
                self.waiting as i64,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(family.encode_family(&[(POOL, pool)])?)?;
        }
        let mut timeouts = encoder.encode_descriptor(
            "db_client_connection_timeouts",
            "The number of connection timeouts that have occurred trying to obtain a connection from the pool.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.timeouts).encode(timeouts.encode_family(&[(POOL, pool)])?)?;
        histogram(
            &mut encoder,
            "db_client_operation_duration",
            "Duration of database client operations.",
            &[("db_system_name", "postgresql"), (POOL, pool)],
            &self.durations,
        )?;
        histogram(
            &mut encoder,
            "db_client_connection_wait_time",
            "The time it took to obtain an open connection from the pool.",
            &[(POOL, pool)],
            &self.wait_time,
        )?;
        histogram(
            &mut encoder,
            "db_client_connection_use_time",
            "The time between borrowing a connection and returning it to the pool.",
            &[(POOL, pool)],
            &self.use_time,
        )
    }
}

impl Collector for OtelOpenAi {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        histogram(
            &mut encoder,
            "gen_ai_client_operation_duration",
            "GenAI operation duration.",
            &[("gen_ai_provider_name", "openai")],
            &self.durations,
        )
    }
}

fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    labels: &[(&str, &str)],
    histogram: &HistogramSnapshot,
) -> std::fmt::Result {
    let mut family =
        encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    encode_seconds(family.encode_family(&labels)?, histogram)
}

/// One histogram's samples (its buckets in seconds, sum and count): both expositions' one way.
pub fn encode_seconds(
    mut sample: MetricEncoder<'_>,
    histogram: &HistogramSnapshot,
) -> std::fmt::Result {
    sample.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        histogram.sum_seconds,
        histogram.count,
        &histogram.buckets,
        None,
    )
}

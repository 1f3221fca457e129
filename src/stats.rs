//! Counters and the latency window that both pools report through `getStats()`.
//!
//! Counters are atomics so the hot path (every statement, every request) never takes a lock for
//! them; the latency window is a fixed ring of the last `WINDOW` samples behind a mutex held only
//! for one store. Percentiles are computed when stats are read, not when samples arrive, because
//! reads are rare and writes are constant.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many recent samples the averages and percentiles cover (the seed's "last 1000 queries").
pub const WINDOW: usize = 1000;

/// A ring buffer of the most recent latencies, in milliseconds.
#[derive(Debug)]
pub struct LatencyWindow {
    samples: Vec<f64>,
    next: usize,
}

/// Average and nearest-rank percentiles of a window; all zero when it is empty.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    pub average_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        Self {
            samples: Vec::with_capacity(WINDOW),
            next: 0,
        }
    }
}

impl LatencyWindow {
    pub fn record(&mut self, ms: f64) {
        if self.samples.len() < WINDOW {
            self.samples.push(ms);
        } else {
            self.samples[self.next] = ms;
        }
        self.next = (self.next + 1) % WINDOW;
    }

    pub fn clear(&mut self) {
        self.samples.clear();
        self.next = 0;
    }

    pub fn summary(&self) -> LatencySummary {
        if self.samples.is_empty() {
            return LatencySummary::default();
        }
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        let average_ms = sorted.iter().sum::<f64>() / sorted.len() as f64;
        LatencySummary {
            average_ms,
            p50_ms: nearest_rank(&sorted, 50.0),
            p95_ms: nearest_rank(&sorted, 95.0),
            p99_ms: nearest_rank(&sorted, 99.0),
        }
    }
}

/// The nearest-rank percentile of an ascending, non-empty slice.
fn nearest_rank(sorted: &[f64], percentile: f64) -> f64 {
    let rank = ((percentile / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds since the Unix epoch, as JS `Date.now()` gives them.
pub fn epoch_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Upper bounds, in seconds, of the latency histogram's buckets (the last one is +Inf).
///
/// One set for both pools, wide enough for a sub-millisecond primary-key lookup and for a
/// two-minute completion: Prometheus can only aggregate histograms whose buckets match.
pub const BUCKET_BOUNDS_SECONDS: [f64; 18] = [
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    f64::INFINITY,
];

/// Cumulative-since-reset latency counts per bucket, for Prometheus (the window above is for
/// `getStats()`: it forgets, a histogram must not).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Non-cumulative count per bucket of `BUCKET_BOUNDS_SECONDS`.
    counts: [AtomicU64; BUCKET_BOUNDS_SECONDS.len()],
    /// Sum of all samples in microseconds (an integer so that it can be one atomic add).
    sum_us: AtomicU64,
}

/// A copy of the histogram: `(upper bound in seconds, count in that bucket alone)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl LatencyHistogram {
    pub fn record(&self, ms: f64) {
        let seconds = ms / 1000.0;
        let bucket = BUCKET_BOUNDS_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKET_BOUNDS_SECONDS.len() - 1);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((ms * 1000.0).round().max(0.0) as u64, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for count in &self.counts {
            count.store(0, Ordering::Relaxed);
        }
        self.sum_us.store(0, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = BUCKET_BOUNDS_SECONDS
            .iter()
            .zip(&self.counts)
            .map(|(bound, count)| (*bound, count.load(Ordering::Relaxed)))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
            sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1_000_000.0,
        }
    }
}

/// The outcome counters shared by both pools: totals, last activity and the latency window.
#[derive(Debug, Default)]
pub struct OutcomeCounters {
    total: AtomicU64,
    successful: AtomicU64,
    failed: AtomicU64,
    /// Epoch ms of the last completed operation; 0 means none yet.
    last_at_ms: AtomicU64,
    latency: Mutex<LatencyWindow>,
    histogram: LatencyHistogram,
}

/// A consistent-enough copy of the counters for one `getStats()` answer.
#[derive(Debug, Clone, Default)]
pub struct OutcomeSnapshot {
    pub total: u64,
    pub successful: u64,
    pub failed: u64,
    pub last_at_ms: Option<u64>,
    pub latency: LatencySummary,
    pub histogram: HistogramSnapshot,
}

impl OutcomeCounters {
    pub fn record(&self, succeeded: bool, elapsed_ms: f64) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if succeeded {
            self.successful.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.last_at_ms.store(epoch_ms_now(), Ordering::Relaxed);
        self.histogram.record(elapsed_ms);
        self.latency
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record(elapsed_ms);
    }

    pub fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.successful.store(0, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
        self.last_at_ms.store(0, Ordering::Relaxed);
        self.histogram.reset();
        self.latency
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    pub fn snapshot(&self) -> OutcomeSnapshot {
        let last = self.last_at_ms.load(Ordering::Relaxed);
        OutcomeSnapshot {
            total: self.total.load(Ordering::Relaxed),
            successful: self.successful.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            last_at_ms: (last != 0).then_some(last),
            latency: self
                .latency
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .summary(),
            histogram: self.histogram.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_window_is_all_zero() {
        assert_eq!(
            LatencyWindow::default().summary(),
            LatencySummary::default()
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut w = LatencyWindow::default();
        for ms in 1..=100 {
            w.record(ms as f64);
        }
        let s = w.summary();
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p95_ms, 95.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.average_ms, 50.5);
    }

    #[test]
    fn window_keeps_only_the_last_thousand() {
        let mut w = LatencyWindow::default();
        for _ in 0..WINDOW {
            w.record(1000.0);
        }
        for _ in 0..WINDOW {
            w.record(1.0);
        }
        let s = w.summary();
        assert_eq!(s.average_ms, 1.0);
        assert_eq!(s.p99_ms, 1.0);
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let mut w = LatencyWindow::default();
        w.record(7.5);
        let s = w.summary();
        assert_eq!((s.p50_ms, s.p95_ms, s.p99_ms), (7.5, 7.5, 7.5));
    }

    #[test]
    fn counters_count_and_reset() {
        let c = OutcomeCounters::default();
        c.record(true, 2.0);
        c.record(false, 4.0);
        let s = c.snapshot();
        assert_eq!((s.total, s.successful, s.failed), (2, 1, 1));
        assert_eq!(s.latency.average_ms, 3.0);
        assert!(s.last_at_ms.is_some());
        c.reset();
        let s = c.snapshot();
        assert_eq!((s.total, s.successful, s.failed), (0, 0, 0));
        assert_eq!(s.last_at_ms, None);
        assert_eq!(s.latency, LatencySummary::default());
        assert_eq!(s.histogram.count, 0);
    }

    #[test]
    fn histogram_puts_each_sample_in_the_first_bucket_that_holds_it() {
        let h = LatencyHistogram::default();
        h.record(0.5); // exactly 0.0005 s: the first bucket (bounds are inclusive)
        h.record(0.6);
        h.record(200.0);
        h.record(1_000_000.0); // beyond 120 s: +Inf
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.0005, 1));
        assert_eq!(s.buckets[1], (0.001, 1));
        assert_eq!(s.buckets[8], (0.25, 1));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((s.sum_seconds - 1000.2011).abs() < 1e-9);
        h.reset();
        assert_eq!(h.snapshot().count, 0);
    }

    #[test]
    fn histogram_counts_match_the_outcome_totals() {
        let c = OutcomeCounters::default();
        for ms in [1.0, 10.0, 100.0] {
            c.record(true, ms);
        }
        let s = c.snapshot();
        assert_eq!(s.histogram.count, s.total);
    }
}

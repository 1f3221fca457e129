//! The pool's timings for OpenTelemetry's connection histograms (`db.client.connection.create_time`,
//! `.wait_time`, `.use_time`): each event's duration, kept until the JS layer takes them and
//! records them in its histograms.
//!
//! The lists are off until telemetry asks for them (a meter provider is registered), so a pool
//! nobody observes pays one relaxed load per event for them. The wait and use histograms (two
//! atomic adds per event) are always kept: `getStats()`, `/metrics` and the dashboard read them. While on, JS takes them at every reply batch, so the buffers
//! stay small; `CAP` bounds them if JS stops taking, and what did not fit is counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::stats::{HistogramSnapshot, LatencyHistogram};

/// Most events of one kind kept between two takes.
const CAP: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Opening a connection, from the first byte sent to ready.
    Create,
    /// From asking for a place on a connection to getting one.
    Wait,
    /// From getting a place to giving it back.
    Use,
}

/// Durations in seconds, by kind.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Taken {
    pub create: Vec<f64>,
    pub wait: Vec<f64>,
    pub used: Vec<f64>,
    /// Places had at once, without waiting (each a wait of 0 s): counted, not listed.
    pub immediate: u64,
    /// Callers that gave up waiting for a connection (`POOL_TIMEOUT`).
    pub timeouts: u64,
    /// Events not kept because a buffer was full.
    pub dropped: u64,
}

#[derive(Default)]
pub struct PoolTimings {
    enabled: AtomicBool,
    events: Mutex<Taken>,
    /// The submitting thread's places had at once: an atomic, not the lock the connections'
    /// tasks take for their use times.
    immediate: AtomicU64,
    dropped: AtomicU64,
    wait_histogram: LatencyHistogram,
    use_histogram: LatencyHistogram,
}

impl PoolTimings {
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
        if !on {
            *self.lock() = Taken::default();
            self.immediate.store(0, Ordering::Relaxed);
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn record(&self, timing: Timing, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        match timing {
            Timing::Wait => self.wait_histogram.record(ms),
            Timing::Use => self.use_histogram.record(ms),
            Timing::Create => {}
        }
        if !self.is_enabled() {
            return;
        }
        let mut events = self.lock();
        let list = match timing {
            Timing::Create => &mut events.create,
            Timing::Wait => &mut events.wait,
            Timing::Use => &mut events.used,
        };
        if list.len() < CAP {
            list.push(took.as_secs_f64());
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A place had at once (a wait of 0 s).
    pub fn count_immediate(&self) {
        self.wait_histogram.record(0.0);
        if self.is_enabled() {
            self.immediate.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn count_timeout(&self) {
        if self.is_enabled() {
            self.lock().timeouts += 1;
        }
    }

    /// The wait and use histograms since the last `reset_histograms`.
    pub fn histograms(&self) -> (HistogramSnapshot, HistogramSnapshot) {
        (
            self.wait_histogram.snapshot(),
            self.use_histogram.snapshot(),
        )
    }

    /// `resetStats()`.
    pub fn reset_histograms(&self) {
        self.wait_histogram.reset();
        self.use_histogram.reset();
    }

    /// Everything recorded since the last take.
    pub fn take(&self) -> Taken {
        let mut taken = std::mem::take(&mut *self.lock());
        taken.dropped = self.dropped.swap(0, Ordering::Relaxed);
        taken.immediate = self.immediate.swap(0, Ordering::Relaxed);
        taken
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Taken> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_while_off() {
        let timings = PoolTimings::default();
        timings.record(Timing::Wait, Duration::from_millis(3));
        assert_eq!(timings.take(), Taken::default());
    }

    #[test]
    fn events_are_kept_by_kind_until_taken() {
        let timings = PoolTimings::default();
        timings.set_enabled(true);
        timings.record(Timing::Create, Duration::from_millis(20));
        timings.record(Timing::Wait, Duration::from_millis(1));
        timings.record(Timing::Use, Duration::from_millis(2));
        timings.record(Timing::Use, Duration::from_millis(4));
        timings.count_timeout();
        timings.count_immediate();
        let taken = timings.take();
        assert_eq!((taken.timeouts, taken.immediate), (1, 1));
        assert_eq!(taken.create, vec![0.02]);
        assert_eq!(taken.wait, vec![0.001]);
        assert_eq!(taken.used, vec![0.002, 0.004]);
        assert_eq!(timings.take(), Taken::default());
    }

    #[test]
    fn the_histograms_are_kept_whether_or_not_telemetry_is_on() {
        let timings = PoolTimings::default();
        timings.record(Timing::Wait, Duration::from_millis(3));
        timings.count_immediate();
        timings.record(Timing::Use, Duration::from_millis(2));
        let (wait, used) = timings.histograms();
        assert_eq!((wait.count, used.count), (2, 1));
        timings.reset_histograms();
        assert_eq!(timings.histograms().0.count, 0);
    }

    #[test]
    fn a_full_buffer_counts_what_it_drops() {
        let timings = PoolTimings::default();
        timings.set_enabled(true);
        for _ in 0..CAP + 3 {
            timings.record(Timing::Wait, Duration::ZERO);
        }
        let taken = timings.take();
        assert_eq!((taken.wait.len(), taken.dropped), (CAP, 3));
    }

    #[test]
    fn turning_off_forgets_what_was_kept() {
        let timings = PoolTimings::default();
        timings.set_enabled(true);
        timings.record(Timing::Use, Duration::from_millis(1));
        timings.set_enabled(false);
        assert_eq!(timings.take(), Taken::default());
    }
}

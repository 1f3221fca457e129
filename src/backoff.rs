//! The one backoff policy of both pools: waits that double from a base, optionally starting
//! with an immediate retry (a dead pooled connection says nothing about the next one), optionally
//! capped, with up to 25% jitter taken off so that clients that failed together do not come back
//! together.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    /// The first retry goes at once; the doubling starts from the second.
    pub first_immediate: bool,
    /// No wait is longer (a base longer than the cap is kept).
    pub cap: Option<Duration>,
}

impl Backoff {
    /// The wait before retry number `retry` (0 for the first); `jitter` in [0, 1] takes up to a
    /// quarter off (0 takes nothing).
    pub fn wait(&self, retry: u32, jitter: f64) -> Duration {
        let doublings = match (self.first_immediate, retry) {
            (true, 0) => return Duration::ZERO,
            (true, n) => n - 1,
            (false, n) => n,
        };
        let exponential = self
            .base
            .saturating_mul(2u32.saturating_pow(doublings.min(16)));
        let capped = match self.cap {
            Some(cap) => exponential.min(cap.max(self.base)),
            None => exponential,
        };
        capped.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate_first_then_doubling_uncapped() {
        let policy = Backoff {
            base: Duration::from_millis(100),
            first_immediate: true,
            cap: None,
        };
        assert_eq!(policy.wait(0, 0.0), Duration::ZERO);
        assert_eq!(policy.wait(1, 0.0), Duration::from_millis(100));
        assert_eq!(policy.wait(2, 0.0), Duration::from_millis(200));
        assert_eq!(policy.wait(4, 0.0), Duration::from_millis(800));
        assert!(
            policy.wait(60, 0.0) > Duration::from_secs(3600),
            "saturates, no overflow"
        );
    }

    #[test]
    fn doubling_with_jitter_and_a_cap() {
        let policy = Backoff {
            base: Duration::from_millis(1000),
            first_immediate: false,
            cap: Some(Duration::from_secs(8)),
        };
        assert_eq!(policy.wait(0, 0.0), Duration::from_millis(1000));
        assert_eq!(policy.wait(1, 0.0), Duration::from_millis(2000));
        assert_eq!(policy.wait(2, 1.0), Duration::from_millis(3000));
        assert_eq!(policy.wait(30, 0.0), Duration::from_secs(8));
        assert_eq!(policy.wait(u32::MAX, 0.5), Duration::from_secs(7));
    }
}

//! What the OpenAI pool counts: the seed's stats plus tokens, retries, models and rate limits.
//!
//! A call counts once however many attempts it took; every 429 received counts in
//! `rateLimitedRequests`, every extra attempt in `retries`. Tokens come from the response's
//! `usage` (or a stream's usage chunk); the model from the request body or `executeRequest`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::ratelimit::RateLimit;
use crate::stats::{OutcomeCounters, OutcomeSnapshot};

#[derive(Debug, Default)]
pub struct Accounting {
    pub outcomes: OutcomeCounters,
    rate_limited: AtomicU64,
    retries: AtomicU64,
    tokens_total: AtomicU64,
    /// Calls whose response reported usage (the denominator of averageTokensUsed).
    calls_with_usage: AtomicU64,
    by_model: Mutex<BTreeMap<String, u64>>,
    rate_limit: Mutex<RateLimit>,
}

#[derive(Debug, Clone, Default)]
pub struct AccountingSnapshot {
    pub outcomes: OutcomeSnapshot,
    pub rate_limited: u64,
    pub retries: u64,
    pub tokens_total: u64,
    pub average_tokens: f64,
    pub by_model: BTreeMap<String, u64>,
    pub rate_limit: RateLimit,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Accounting {
    pub fn count_model(&self, model: &str) {
        let mut by_model = lock(&self.by_model);
        match by_model.get_mut(model) {
            Some(count) => *count += 1,
            None => {
                by_model.insert(model.to_string(), 1);
            }
        }
    }

    pub fn count_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_tokens(&self, tokens: u64) {
        self.tokens_total.fetch_add(tokens, Ordering::Relaxed);
        self.calls_with_usage.fetch_add(1, Ordering::Relaxed);
    }

    pub fn update_rate_limit(&self, header: &dyn Fn(&str) -> Option<String>) {
        lock(&self.rate_limit).update(header);
    }

    pub fn reset(&self) {
        self.outcomes.reset();
        for counter in [
            &self.rate_limited,
            &self.retries,
            &self.tokens_total,
            &self.calls_with_usage,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        lock(&self.by_model).clear();
    }

    pub fn snapshot(&self) -> AccountingSnapshot {
        let tokens_total = self.tokens_total.load(Ordering::Relaxed);
        let with_usage = self.calls_with_usage.load(Ordering::Relaxed);
        AccountingSnapshot {
            outcomes: self.outcomes.snapshot(),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            tokens_total,
            average_tokens: if with_usage == 0 {
                0.0
            } else {
                tokens_total as f64 / with_usage as f64
            },
            by_model: lock(&self.by_model).clone(),
            rate_limit: lock(&self.rate_limit).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_tokens_over_calls_that_reported_usage() {
        let a = Accounting::default();
        a.add_tokens(100);
        a.add_tokens(50);
        a.count_model("gpt-4o");
        a.count_model("gpt-4o");
        a.count_rate_limited();
        let s = a.snapshot();
        assert_eq!(s.tokens_total, 150);
        assert_eq!(s.average_tokens, 75.0);
        assert_eq!(s.by_model.get("gpt-4o"), Some(&2));
        assert_eq!(s.rate_limited, 1);
        a.reset();
        let s = a.snapshot();
        assert_eq!(
            (s.tokens_total, s.rate_limited, s.by_model.len()),
            (0, 0, 0)
        );
    }
}

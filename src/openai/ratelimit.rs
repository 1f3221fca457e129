//! The `x-ratelimit-*` headers OpenAI sends with every response, read into numbers.
//!
//! Limits and remaining counts are integers; resets are Go-style durations (`6m0s`, `1s`,
//! `12ms`, `1h2m3.5s`), turned into milliseconds. A header that does not parse is left as it was.

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub limit_requests: Option<f64>,
    pub remaining_requests: Option<f64>,
    pub reset_requests_ms: Option<f64>,
    pub limit_tokens: Option<f64>,
    pub remaining_tokens: Option<f64>,
    pub reset_tokens_ms: Option<f64>,
}

impl RateLimit {
    /// Updates from one response's headers; values not present keep their previous reading.
    pub fn update(&mut self, header: &dyn Fn(&str) -> Option<String>) {
        let number = |name: &str| header(name).and_then(|v| v.trim().parse::<f64>().ok());
        let duration = |name: &str| header(name).and_then(|v| parse_duration_ms(&v));
        let fields = [
            (
                &mut self.limit_requests,
                number("x-ratelimit-limit-requests"),
            ),
            (
                &mut self.remaining_requests,
                number("x-ratelimit-remaining-requests"),
            ),
            (
                &mut self.reset_requests_ms,
                duration("x-ratelimit-reset-requests"),
            ),
            (&mut self.limit_tokens, number("x-ratelimit-limit-tokens")),
            (
                &mut self.remaining_tokens,
                number("x-ratelimit-remaining-tokens"),
            ),
            (
                &mut self.reset_tokens_ms,
                duration("x-ratelimit-reset-tokens"),
            ),
        ];
        for (field, value) in fields {
            if value.is_some() {
                *field = value;
            }
        }
    }
}

/// The longest pause a response's reset headers can cause: past it one request probes whether
/// the budget is back (`Pause::probe`), as for `retry-after`.
pub const MAX_PAUSE: std::time::Duration = super::retry::MAX_RETRY_AFTER;

/// A pause a response asks for: how long, and whether it was cut to `MAX_PAUSE` (then one
/// request goes first when it ends, and the rest wait for its answer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pause {
    pub wait: std::time::Duration,
    pub probe: bool,
}

impl Pause {
    /// A wait of `ms` milliseconds, capped.
    pub fn of_ms(ms: f64) -> Self {
        let wait = super::retry::capped_seconds(ms / 1000.0).unwrap_or_default();
        Pause {
            wait,
            // NaN too: a reset that does not read as a number is not trusted.
            probe: ms.is_nan() || ms / 1000.0 > MAX_PAUSE.as_secs_f64(),
        }
    }
}

/// How long until a budget the response says is spent (`x-ratelimit-remaining-* = 0`) resets;
/// the longer of the two when both are.
pub fn exhausted_for(header: &dyn Fn(&str) -> Option<String>) -> Option<Pause> {
    let spent = |remaining: &str, reset: &str| {
        let zero = header(remaining).and_then(|v| v.trim().parse::<f64>().ok()) == Some(0.0);
        zero.then(|| header(reset).and_then(|v| parse_duration_ms(&v)))
            .flatten()
    };
    [
        spent(
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ),
        spent("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ]
    .into_iter()
    .flatten()
    .reduce(f64::max)
    .map(Pause::of_ms)
}

/// `6m0s` → 360000, `1s` → 1000, `12ms` → 12, `1h2m3.5s` → 3723500, `250us` → 0.25.
pub fn parse_duration_ms(text: &str) -> Option<f64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let value: f64 = rest[..number_len]
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())?;
        rest = &rest[number_len..];
        let (unit_ms, unit_len) = [
            ("ms", 1.0),
            ("us", 0.001),
            ("µs", 0.001),
            ("ns", 0.000001),
            ("h", 3_600_000.0),
            ("m", 60_000.0),
            ("s", 1000.0),
        ]
        .iter()
        .find(|(unit, _)| rest.starts_with(unit))
        .map(|(unit, ms)| (*ms, unit.len()))?;
        total += value * unit_ms;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_become_milliseconds() {
        assert_eq!(parse_duration_ms("6m0s"), Some(360_000.0));
        assert_eq!(parse_duration_ms("1s"), Some(1000.0));
        assert_eq!(parse_duration_ms("12ms"), Some(12.0));
        assert_eq!(parse_duration_ms("1h2m3.5s"), Some(3_723_500.0));
        assert_eq!(parse_duration_ms("0.5s"), Some(500.0));
        for bad in ["", "s", "5x", "1m2", "abc"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_reset_far_away_pauses_at_most_a_minute_then_probes() {
        let spent = |reset: &'static str| {
            move |name: &str| match name {
                "x-ratelimit-remaining-requests" => Some("0".to_string()),
                "x-ratelimit-reset-requests" => Some(reset.to_string()),
                _ => None,
            }
        };
        let far = exhausted_for(&spent("99999999h")).unwrap();
        assert_eq!(
            far,
            Pause {
                wait: MAX_PAUSE,
                probe: true
            }
        );
        let near = exhausted_for(&spent("1.5s")).unwrap();
        assert_eq!(near.wait, std::time::Duration::from_millis(1500));
        assert!(!near.probe);
        assert!(!exhausted_for(&spent("60s")).unwrap().probe);
        assert_eq!(parse_duration_ms("1e400s"), None);
        assert!(parse_duration_ms(&"9".repeat(400)).is_none());
    }

    #[test]
    fn headers_update_only_what_they_carry() {
        let mut limits = RateLimit::default();
        let first = |name: &str| match name {
            "x-ratelimit-limit-requests" => Some("500".to_string()),
            "x-ratelimit-remaining-requests" => Some("499".to_string()),
            "x-ratelimit-reset-requests" => Some("120ms".to_string()),
            "x-ratelimit-reset-tokens" => Some("6m0s".to_string()),
            _ => None,
        };
        limits.update(&first);
        assert_eq!(limits.limit_requests, Some(500.0));
        assert_eq!(limits.remaining_requests, Some(499.0));
        assert_eq!(limits.reset_requests_ms, Some(120.0));
        assert_eq!(limits.reset_tokens_ms, Some(360_000.0));
        assert_eq!(limits.limit_tokens, None);
        limits.update(&|name: &str| {
            (name == "x-ratelimit-remaining-requests").then(|| "498".to_string())
        });
        assert_eq!(limits.remaining_requests, Some(498.0));
        assert_eq!(limits.limit_requests, Some(500.0));
    }
}
